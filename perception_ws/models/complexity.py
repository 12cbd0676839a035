"""Parameters and multiply-accumulates (MACs) of a model, counted with forward hooks.

Conventions of the thesis (ch. 1): batch size 1; a conv's MACs are ``outputs x (C_in / groups) x kh x kw``;
bias additions, activations, pooling and normalisation are not MACs. A transposed conv scatters every input
element through its kernel: ``inputs x (C_out / groups) x kh x kw``. The CRF's message passing is a
locally connected op, not a conv: per iteration it multiplies each of the N window neighbours of each pixel
and class twice (bilateral and angular message), ``2 x N x K x H x W`` MACs, plus its compatibility transform,
counted as the 1x1 conv it is (``K x K x H x W``; the layer applies it as a matrix product, so no conv hook sees it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from perception_ws.models.crf import RecurrentCRF


@dataclass(frozen=True)
class LayerCost:
    """The multiply-accumulates of one layer in one forward pass."""

    name: str
    kind: str
    macs: int


@dataclass
class Complexity:
    """Total parameters (trainable + frozen, no buffers) and MACs of one forward pass."""

    params: int
    macs: int
    layers: list[LayerCost] = field(default_factory=list)

    def macs_of(self, prefix: str) -> int:
        """MACs of the layers whose qualified name starts with ``prefix`` (e.g. ``"crf"``)."""
        return sum(layer.macs for layer in self.layers if layer.name.startswith(prefix))


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return output[0].numel() * (module.in_channels // module.groups) * kh * kw


def _deconv_macs(module: nn.ConvTranspose2d, inputs: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return inputs[0].numel() * (module.out_channels // module.groups) * kh * kw


def count_parameters(model: nn.Module) -> int:
    """All parameters of ``model``, trainable or frozen (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def model_complexity(model: nn.Module, example: torch.Tensor) -> Complexity:
    """Run ``model(example)`` once (eval mode, batch 1) and add up the MACs of every conv, deconv and CRF."""
    example = example[:1]
    layers: list[LayerCost] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(
                module.register_forward_hook(
                    lambda m, i, o, n=name: layers.append(LayerCost(n, "conv", _conv_macs(m, o)))
                )
            )
        elif isinstance(module, nn.ConvTranspose2d):
            handles.append(
                module.register_forward_hook(
                    lambda m, i, o, n=name: layers.append(LayerCost(n, "deconv", _deconv_macs(m, i[0])))
                )
            )
        elif isinstance(module, RecurrentCRF):
            handles.append(
                module.register_forward_hook(
                    lambda m, i, o, n=name: layers.append(
                        LayerCost(
                            n + ".messages", "crf", (2 * len(m.offsets) + m.num_classes) * o[0].numel() * m.iterations
                        )
                    )
                )
            )
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return Complexity(params=count_parameters(model), macs=sum(layer.macs for layer in layers), layers=layers)
