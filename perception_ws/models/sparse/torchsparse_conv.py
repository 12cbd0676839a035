"""``sparse.engine: torchsparse``: torchsparse's conv kernels behind our ``Conv3d`` interface.

Our tensors stay the networks' currency (the point-voxel ops, norms and the U-Net's skips need our cache);
each conv hands its input to torchsparse, shares torchsparse's own coordinate and kernel-map caches across
the layers of one forward pass, and puts the output back on our cached voxel order. torchsparse cannot be
installed from this project's registries, so this module has never run here (docs/models.md).
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from perception_ws.models.sparse.interop import rows_of
from perception_ws.models.sparse.tensor import SparseTensor

_SHARED = ("torchsparse",)  # key in SparseCache.kernel_maps: the last torchsparse tensor of this forward pass


def _share_caches(target: Any, source: Any) -> None:
    """Give ``target`` the coordinate / kernel-map caches of ``source`` (torchsparse 2.1 and 2.0 names)."""
    if hasattr(source, "_caches"):
        target._caches = source._caches
    for name in ("cmaps", "kmaps", "hashmaps"):
        if hasattr(source, name):
            setattr(target, name, getattr(source, name))


class TorchsparseConv3d(nn.Module):
    """``Conv3d(in, out, kernel_size, stride, bias=, transposed=)`` computed by ``torchsparse.nn.Conv3d``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        bias: bool = False,
        transposed: bool = False,
    ) -> None:
        super().__init__()
        spnn = importlib.import_module("torchsparse.nn")
        conv = spnn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, bias=bias, transposed=transposed)
        self._torchsparse = [conv]  # a list: the parameters below are registered under our names only
        self.kernel = conv.kernel
        self.bias = conv.bias
        self.kernel_size, self.stride, self.transposed = kernel_size, stride, transposed

    def forward(self, x: SparseTensor) -> SparseTensor:
        torchsparse = importlib.import_module("torchsparse")
        tensor = torchsparse.SparseTensor(x.feats, x.coords, x.stride)
        previous = x.cache.kernel_maps.get(_SHARED)
        if previous is not None:
            _share_caches(tensor, previous)
        out = self._torchsparse[0](tensor)
        x.cache.kernel_maps[_SHARED] = out
        stride = out.stride if isinstance(out.stride, int) else int(out.stride[0])
        coords = out.coords.to(torch.int32)
        ours = x.cache.coords.setdefault(stride, coords)
        return SparseTensor(out.feats[rows_of(coords, ours)], ours, stride, x.cache)
