"""Parameters and MACs of a sparse point-voxel network on a given scan (counted with forward hooks).

A sparse conv's MACs are ``pairs x C_in x C_out`` (its kernel map's (input, output) pairs; they depend on
the scan), a linear layer's ``N x C_in x C_out``; norms and activations are not MACs (the convention of
``models.complexity``). Parameters are those the forward pass used (a SPVNAS sub-network's slices; the
whole model for SPVCNN and MinkUNet): conv and linear weights and biases, batch-norm scale and shift.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from perception_ws.models.complexity import Complexity, LayerCost
from perception_ws.models.sparse.conv import Conv3d, conv_pairs
from perception_ws.models.sparse.layers import BatchNorm
from perception_ws.models.sparse.tensor import PointTensor, SparseTensor
from perception_ws.models.spvnas.elastic import ElasticBatchNorm


def _conv_cost(module: Conv3d, x: SparseTensor, y: SparseTensor) -> tuple[int, int]:
    kernel = getattr(module, "active_kernel", module.kernel_size)
    c_in, c_out = x.feats.shape[1], y.feats.shape[1]
    pairs = conv_pairs(x, kernel, module.stride, module.transposed)
    params = kernel**3 * c_in * c_out + (c_out if module.bias is not None else 0)
    return pairs * c_in * c_out, params


def _cost(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> tuple[str, int, int] | None:
    """(kind, MACs, parameters) of one call of a counted layer; None for the rest."""
    if isinstance(module, Conv3d):
        return ("sparse_conv", *_conv_cost(module, inputs[0], output))
    if isinstance(module, nn.Linear):
        rows, c_in = inputs[0].shape
        c_out = output.shape[1]
        return "linear", rows * c_in * c_out, c_in * c_out + (c_out if module.bias is not None else 0)
    if isinstance(module, BatchNorm | ElasticBatchNorm | nn.BatchNorm1d):
        feats = output.feats if isinstance(output, SparseTensor) else output
        return "norm", 0, 2 * feats.shape[1]
    return None


@torch.no_grad()
def sparse_model_complexity(model: nn.Module, points: PointTensor) -> Complexity:
    """Run ``model(points)`` once in eval mode and add up the MACs and used parameters of every layer."""
    layers: list[LayerCost] = []
    used_params = [0]

    def hook(name: str) -> Any:
        def record(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            cost = _cost(module, inputs, output)
            if cost is not None:
                layers.append(LayerCost(name, cost[0], cost[1]))
                used_params[0] += cost[2]

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if not list(m.children())]
    was_training = model.training
    model.eval()
    try:
        model(points)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return Complexity(params=used_params[0], macs=sum(layer.macs for layer in layers), layers=layers)
