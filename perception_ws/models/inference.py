"""Inference-only rewrites of a trained model: batch norm folded into its conv, channels-last layout.

Folding: in eval mode ``BN(conv(x)) = conv'(x)`` with ``W' = W * g / s`` and ``b' = (b - mean) * g / s + beta``
(``s = sqrt(var + eps)``, ``g`` the BN scale), so every conv/deconv -> BN pair becomes one conv with a bias
and the BN disappears: the same outputs (to float rounding) at less memory traffic. The folded copy has no
batch norm left, so it is for inference only (training or progressive domain calibration need the original).

Channels-last (NHWC) makes oneDNN convs and element-wise ops markedly faster on these wide, short images.
Merged expands (``merge_expand``, for a GPU): a fire module's parallel 1x1 and 3x3 expand convs of the same input,
concatenated, are one 3x3 conv whose first output channels have only their centre tap (the 1x1 weights) and zeros
around it: the same outputs from one kernel launch instead of two and a concatenation. It costs 9x the 1x1 half's
multiply-adds, which a launch-bound GPU at batch 1 does not feel and a CPU does.

``compile=True`` adds ``torch.compile`` (inductor), which fuses the element-wise work (ReLU, skip additions,
CAM gates, the CRF's updates) around the convs: about 25 % faster again on 2 CPU cores, after a compilation of
about a minute per input size (see docs/models.md for measured numbers).
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from perception_ws.models.fire import FireExpand


def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Module:
    fused = copy.deepcopy(conv)
    mean = bn.running_mean
    var = bn.running_var
    if mean is None or var is None:
        raise ValueError("cannot fold a batch norm that keeps no running statistics")
    scale = bn.weight.detach() / torch.sqrt(var + bn.eps) if bn.weight is not None else 1.0 / torch.sqrt(var + bn.eps)
    shift = bn.bias.detach() if bn.bias is not None else torch.zeros_like(mean)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(mean)
    # Conv2d weight is (out, in, kh, kw); ConvTranspose2d is (in, out, kh, kw): scale the OUT axis.
    shape = (-1, 1, 1, 1) if isinstance(conv, nn.Conv2d) else (1, -1, 1, 1)
    fused.weight = nn.Parameter(conv.weight.detach() * scale.reshape(shape))
    fused.bias = nn.Parameter((bias - mean) * scale + shift)
    return fused


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with every conv/deconv directly followed by a BatchNorm2d inside an
    ``nn.Sequential`` folded into one conv.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = _fold(conv, bn)
                module._modules[second] = nn.Identity()
    return folded


def _merged_expand(expand: FireExpand) -> nn.Module | None:
    """One 3x3 conv + ReLU computing a folded ``FireExpand`` (both halves conv -> (Identity) -> ReLU), else None."""
    halves = []
    for block in (expand.expand1x1, expand.expand3x3):
        layers = [layer for layer in block if not isinstance(layer, nn.Identity)]
        if len(layers) != 2 or not isinstance(layers[0], nn.Conv2d) or not isinstance(layers[1], nn.ReLU):
            return None  # batch norm not folded, or another block: left as it is
        halves.append(layers[0])
    one, three = halves
    if one.bias is None or three.bias is None or three.padding != (1, 1) or one.stride != three.stride:
        return None
    stride = (three.stride[0], three.stride[1])
    merged = nn.Conv2d(one.in_channels, one.out_channels + three.out_channels, 3, stride=stride, padding=1)
    with torch.no_grad():
        merged.weight.zero_()
        merged.weight[: one.out_channels, :, 1, 1] = one.weight[:, :, 0, 0]
        merged.weight[one.out_channels :] = three.weight
        merged.bias = nn.Parameter(torch.cat([one.bias, three.bias]))
    return nn.Sequential(merged.to(three.weight.dtype), nn.ReLU(inplace=True))


def merge_fire_expands(model: nn.Module) -> nn.Module:
    """In place: every fire module's (batch-norm folded) expand pair replaced by one conv; returns ``model``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FireExpand) and (merged := _merged_expand(child)) is not None:
                setattr(parent, name, merged)
    return model


def prepare_for_inference(
    model: nn.Module,
    *,
    channels_last: bool = True,
    fold_bn: bool = True,
    merge_expand: bool = False,
    compile: bool = False,
    compile_mode: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """An eval-mode copy ready to serve: BN folded (and with ``merge_expand`` the fire expands merged), weights
    channels-last, moved to ``device`` / cast to ``dtype``
    when given, optionally compiled (``compile_mode``: torch.compile's mode, e.g. 'reduce-overhead', which on a
    GPU also replays the network as CUDA graphs). Feed it channels-last inputs of that dtype too
    (``x.contiguous(memory_format=torch.channels_last)``) for the full effect.
    """
    out = fold_batch_norm(model) if fold_bn else copy.deepcopy(model).eval()
    if merge_expand:
        merge_fire_expands(out)
    if channels_last:
        out = out.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if device is not None or dtype is not None:
        out = out.to(device=device, dtype=dtype)
    if compile:
        out = torch.compile(out, mode=compile_mode)  # type: ignore[assignment]
    return out
