"""Elastic layers of the SPVNAS super-network: each holds the largest weights and runs on a slice of them.

A layer's active input width is the width of what comes in; its active output width (``active_out``) and,
for convs, kernel size (``active_kernel``, the centre of the largest kernel) are set by
``SPVNAS.set_subnet``. Slices are views of the super-network's tensors: a sub-network shares (never copies)
the weights, so training a sampled sub-network trains the super-network.
"""

from __future__ import annotations

import torch
from torch import nn

from perception_ws.errors import SparseTensorError
from perception_ws.models.sparse.conv import Conv3d, sparse_conv3d
from perception_ws.models.sparse.kernel_map import kernel_offsets
from perception_ws.models.sparse.tensor import SparseTensor


def centre_offsets(kernel_size: int, sub_size: int) -> torch.Tensor:
    """Indices (into the ``kernel_size`` offsets) of the offsets of the centred ``sub_size`` kernel."""
    if sub_size > kernel_size or sub_size % 2 != kernel_size % 2:
        raise SparseTensorError(f"kernel {sub_size} is not a centred part of kernel {kernel_size}")
    big = kernel_offsets(kernel_size).tolist()
    return torch.tensor([big.index(o) for o in kernel_offsets(sub_size).tolist()])


class ElasticConv3d(Conv3d):
    """A sparse conv whose output width and (odd) kernel size can shrink at run time."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, transposed: bool = False
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, bias=False, transposed=transposed)
        self.active_out = out_channels
        self.active_kernel = kernel_size

    def active_weight(self, in_channels: int) -> torch.Tensor:
        """The (k'^3, in, out) slice in use: a view when the whole kernel is used."""
        weight = self.kernel[:, :in_channels, : self.active_out]
        if self.active_kernel != self.kernel_size:
            weight = weight[centre_offsets(self.kernel_size, self.active_kernel)]  # 1 of 27 rows: tiny gather
        return weight

    def forward(self, x: SparseTensor) -> SparseTensor:
        weight = self.active_weight(x.feats.shape[1])
        return sparse_conv3d(x, weight, self.active_kernel, self.stride, self.transposed)


class ElasticBatchNorm(nn.BatchNorm1d):
    """Batch norm on the first C channels of its parameters and running statistics (C = the input's width).

    Running statistics are updated in place through the slice views, as the full layer would.
    """

    def _norm(self, feats: torch.Tensor) -> torch.Tensor:
        c = feats.shape[1]
        assert self.running_mean is not None and self.running_var is not None  # track_running_stats is on
        return nn.functional.batch_norm(
            feats,
            self.running_mean[:c],
            self.running_var[:c],
            self.weight[:c],
            self.bias[:c],
            self.training,
            self.momentum if self.momentum is not None else 0.1,
            self.eps,
        )

    def forward(self, x: SparseTensor | torch.Tensor) -> SparseTensor | torch.Tensor:  # type: ignore[override]
        if isinstance(x, SparseTensor):
            return x.with_feats(self._norm(x.feats))
        return self._norm(x)


class ElasticLinear(nn.Linear):
    """A linear layer (point-branch MLP) on the first ``in`` inputs and ``active_out`` outputs."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.active_out = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias[: self.active_out] if self.bias is not None else None
        return nn.functional.linear(x, self.weight[: self.active_out, : x.shape[1]], bias)


def set_active(layer: nn.Module, out_channels: int, kernel_size: int | None = None) -> None:
    """Point an elastic conv or linear layer at its first ``out_channels`` outputs (and a centred kernel)."""
    if not isinstance(layer, ElasticConv3d | ElasticLinear):
        raise SparseTensorError(f"{type(layer).__name__} is not elastic: only an SPVNAS super-network has sub-networks")
    layer.active_out = out_channels
    if kernel_size is not None and isinstance(layer, ElasticConv3d):
        layer.active_kernel = kernel_size
