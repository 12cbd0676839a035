"""spconv 2.x as the numerical reference and the benchmark baseline: our weights in its layout, and
``SpconvConv3d``, a drop-in for ``Conv3d`` that runs spconv's kernels on our tensors (inference only).

spconv's submanifold / strided (padding k//2 for odd k, 0 for even) / inverse convs have our geometry once
our coordinates are shifted to non-negative grid indices of the tensor's stride. spconv is imported only
here and only when used (the ``sparse`` extra).

spconv 2.3.8's CPU kernels race when torch runs more than one thread: now and then some output rows come out
wrong (differences up to 0.4 on unit-scale inputs, never with one thread), so every spconv call here runs on
one torch thread, whatever the caller set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from perception_ws.models.sparse.hashing import KeyTable, pack_keys
from perception_ws.models.sparse.tensor import SparseCache, SparseTensor


def to_spconv_weight(kernel: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Our (k^3, C_in, C_out) kernel (first axis fastest) -> spconv 2.x's (C_out, k, k, k, C_in)."""
    k = kernel_size
    c_in, c_out = kernel.shape[1], kernel.shape[2]
    if k == 1:  # spconv 2.3.8 runs a 1x1x1 conv as a matmul that reads the weight's memory as (C_in, C_out)
        return kernel.reshape(c_out, 1, 1, 1, c_in).contiguous()
    # our flat index is x + k*y + k*k*z, so the view is (z, y, x, in, out); spconv wants (out, x, y, z, in)
    return kernel.reshape(k, k, k, c_in, c_out).permute(4, 2, 1, 0, 3).contiguous()


def to_spconv_inverse_weight(kernel: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """A transposed conv's (k^3, C_in, C_out) kernel -> spconv's SparseInverseConv3d weight (C_out, k, k, k, C_in)."""
    return to_spconv_weight(kernel, kernel_size)


def rows_of(coords: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """For each row of ``reference`` (M, 4), its row in ``coords`` (N, 4); -1 where it is absent."""
    return KeyTable(pack_keys(coords)).lookup(pack_keys(reference))


@dataclass
class _SpconvState:
    """What spconv needs across the layers of one forward pass: one grid origin and its index pairs."""

    origin: torch.Tensor
    extent: int
    batch: int
    indice_dict: dict[str, Any] = field(default_factory=dict)


#: The grid origin is a multiple of this, so every stride up to 32 keeps spconv's grid aligned with ours.
_ALIGN = 64


def _state(cache: SparseCache) -> _SpconvState:
    state = cache.kernel_maps.get(("spconv",))
    if state is None:
        finest = cache.coords[min(cache.coords)]
        origin = torch.div(finest[:, 1:].min(dim=0).values, _ALIGN, rounding_mode="floor") * _ALIGN - _ALIGN
        extent = int((finest[:, 1:] - origin).max().item()) + 2 * _ALIGN
        state = _SpconvState(origin, extent, int(finest[:, 0].max().item()) + 1)
        cache.kernel_maps[("spconv",)] = state
    assert isinstance(state, _SpconvState)
    return state


class SpconvConv3d(nn.Module):
    """``Conv3d(in, out, kernel_size, stride, transposed=)`` run by spconv: same weights (``kernel``, our
    layout), same output voxels; the reference and baseline (no gradient reaches ``kernel``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, transposed: bool = False
    ) -> None:
        super().__init__()
        import spconv.pytorch as spconv  # the reference only: not a dependency of the engine

        self.kernel_size, self.stride, self.transposed = kernel_size, stride, transposed
        self.kernel = nn.Parameter(torch.zeros(kernel_size**3, in_channels, out_channels))
        if transposed:
            layer = spconv.SparseInverseConv3d(in_channels, out_channels, kernel_size, bias=False, indice_key="")
        elif stride == 1:
            layer = spconv.SubMConv3d(in_channels, out_channels, kernel_size, bias=False)
        else:
            padding = kernel_size // 2 if kernel_size % 2 else 0
            layer = spconv.SparseConv3d(in_channels, out_channels, kernel_size, stride, padding=padding, bias=False)
        self._spconv = [layer]  # a list: spconv's own weight stays out of our state dict

    def _to_spconv(
        self, state: _SpconvState, coords: torch.Tensor, feats: torch.Tensor, stride: int, shape: Any = None
    ) -> Any:
        import spconv.pytorch as spconv

        idx = torch.cat([coords[:, :1], torch.div(coords[:, 1:] - state.origin, stride, rounding_mode="floor")], 1)
        shape = shape if shape is not None else [state.extent // stride + 1] * 3
        return spconv.SparseConvTensor(feats, idx.int(), shape, state.batch, indice_dict=state.indice_dict)

    @staticmethod
    def _from_spconv(state: _SpconvState, indices: torch.Tensor, stride: int) -> torch.Tensor:
        idx = indices.to(torch.int64)
        return torch.cat([idx[:, :1], idx[:, 1:] * stride + state.origin], dim=1).int()

    @torch.no_grad()
    def forward(self, x: SparseTensor) -> SparseTensor:
        with _one_cpu_thread(x.feats.device):
            return self._forward(x)

    def _forward(self, x: SparseTensor) -> SparseTensor:
        layer = self._spconv[0]
        layer.to(x.feats.device).weight.copy_(to_spconv_weight(self.kernel, self.kernel_size))
        state, cache = _state(x.cache), x.cache
        k, s = self.kernel_size, self.stride
        if not self.transposed and s == 1:
            layer.indice_key = f"subm{x.stride}_{k}"
            out = layer(self._to_spconv(state, x.coords, x.feats, x.stride))
            return x.with_feats(out.features)
        if not self.transposed:
            layer.indice_key = f"down{x.stride}_{k}_{s}"
            state.indice_dict.pop(layer.indice_key, None)  # spconv reuses submanifold pairs only: rebuilt each call
            out = layer(self._to_spconv(state, x.coords, x.feats, x.stride))
            state.indice_dict.update(out.indice_dict)  # spconv hands its pairs on in the output tensor
            coords = self._from_spconv(state, out.indices, x.stride * s)
            cache.coords.setdefault(x.stride * s, coords)
            rows = rows_of(coords, cache.coords[x.stride * s])  # onto the cached order (identity when spconv made it)
            return SparseTensor(out.features[rows], cache.coords[x.stride * s], x.stride * s, cache)
        fine = x.stride // s
        key = f"down{fine}_{k}_{s}"
        if key not in state.indice_dict:  # spconv's pairs come from its own strided conv of the fine voxels
            down = SpconvConv3d(1, 1, k, s)
            down(SparseTensor(x.feats.new_zeros(cache.coords[fine].shape[0], 1), cache.coords[fine], fine, cache))
        pairs = state.indice_dict[key]
        coarse = self._from_spconv(state, pairs.out_indices, x.stride)
        layer.indice_key = key
        feats = x.feats[rows_of(x.coords, coarse)]
        out = layer(self._to_spconv(state, coarse, feats, x.stride, pairs.out_spatial_shape))
        return SparseTensor(out.features, cache.coords[fine], fine, cache)  # spconv keeps the fine input's row order


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """One torch thread inside (on a CPU), the caller's count restored after; see the module doc for why."""
    previous = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def spconv_conv(
    x: SparseTensor, kernel: torch.Tensor, kernel_size: int, stride: int = 1, transposed: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Conv3d(..., kernel_size, stride, transposed)`` with weights ``kernel`` on ``x``, run by spconv:
    (output coordinates, output features).
    """
    layer = SpconvConv3d(kernel.shape[1], kernel.shape[2], kernel_size, stride, transposed)
    layer.kernel.data.copy_(kernel.detach())
    cache = SparseCache(coords=dict(x.cache.coords))  # spconv's own coarse voxels must not replace ours
    out = layer(SparseTensor(x.feats, x.coords, x.stride, cache))
    return out.coords, out.feats
