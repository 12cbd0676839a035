"""Inference-only rewrites of a trained model: batch norm folded into its conv, channels-last layout.

Folding: in eval mode ``BN(conv(x)) = conv'(x)`` with ``W' = W * g / s`` and ``b' = (b - mean) * g / s + beta``
(``s = sqrt(var + eps)``, ``g`` the BN scale), so every conv/deconv -> BN pair becomes one conv with a bias
and the BN disappears: the same outputs (to float rounding) at less memory traffic. The folded copy has no
batch norm left, so it is for inference only (training or progressive domain calibration need the original).

Channels-last (NHWC) makes oneDNN convs and element-wise ops markedly faster on these wide, short images.
``compile=True`` adds ``torch.compile`` (inductor), which fuses the element-wise work (ReLU, skip additions,
CAM gates, the CRF's updates) around the convs: about 25 % faster again on 2 CPU cores, after a compilation of
about a minute per input size (see docs/models.md for measured numbers).
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn


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


def prepare_for_inference(
    model: nn.Module,
    *,
    channels_last: bool = True,
    fold_bn: bool = True,
    compile: bool = False,
    compile_mode: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """An eval-mode copy ready to serve: BN folded, weights channels-last, moved to ``device`` / cast to ``dtype``
    when given, optionally compiled (``compile_mode``: torch.compile's mode, e.g. 'reduce-overhead', which on a
    GPU also replays the network as CUDA graphs). Feed it channels-last inputs of that dtype too
    (``x.contiguous(memory_format=torch.channels_last)``) for the full effect.
    """
    out = fold_batch_norm(model) if fold_bn else copy.deepcopy(model).eval()
    if channels_last:
        out = out.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if device is not None or dtype is not None:
        out = out.to(device=device, dtype=dtype)
    if compile:
        out = torch.compile(out, mode=compile_mode)  # type: ignore[assignment]
    return out
