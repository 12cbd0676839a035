"""Sparse 3D convolution by gather - matmul - scatter, and its module (torchsparse's ``nn.Conv3d``).

Weights are (k^3, C_in, C_out), offsets in ``kernel_map.kernel_offsets`` order. Every op is a plain torch
op (index_select, mm, index_add_), so autograd differentiates it and it runs wherever torch runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own alias
from torch import nn

from perception_ws.errors import SparseTensorError
from perception_ws.models.sparse.kernel_map import (
    KernelMap,
    downsampled_coords,
    strided_map,
    submanifold_map,
)
from perception_ws.models.sparse.offset_groups import apply_groups
from perception_ws.models.sparse.tensor import SparseTensor

#: Devices whose convs batch the offsets into a few ``bmm`` calls (``offset_groups.py``): a GPU, where each launch
#: costs more than its arithmetic. A CPU keeps one matmul per offset, measured faster there (each offset's
#: gather, product and scatter stay in cache; docs/models.md, "Speed").
GROUPED_DEVICES: set[str] = {"cuda"}


def apply_kernel_map(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """``out[o] = sum over offsets k and pairs (i, o) of feats[i] @ weight[k]``: (N_in, C_in) -> (N_out, C_out)."""
    if feats.device.type in GROUPED_DEVICES:
        return apply_grouped(feats, weight, kmap)
    return apply_per_offset(feats, weight, kmap)


def apply_per_offset(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """``apply_kernel_map`` one offset at a time: gather, matmul, scatter-add (also the grouped path's reference)."""
    # the identity offset maps every row onto itself: a plain matmul, no gather, no scatter
    identity = kmap.identity
    out = feats @ weight[identity] if identity is not None else feats.new_zeros(kmap.num_out, weight.shape[2])
    for k, (rows_in, rows_out) in enumerate(zip(kmap.in_rows, kmap.out_rows, strict=True)):
        if k != kmap.identity and rows_in.numel():
            # in place is autograd-safe here: index_add_'s backward needs neither ``out`` nor its old value
            out.index_add_(0, rows_out, feats.index_select(0, rows_in) @ weight[k])
    return out


def apply_grouped(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """``apply_kernel_map`` with the offsets batched into a few ``bmm`` calls (same sums; per output row the
    order of the additions may differ from the per-offset loop's, so floats agree to rounding).
    """
    if kmap.identity is not None:  # one spare row past the end takes the padded pairs' products
        out = F.pad(feats @ weight[kmap.identity], (0, 0, 0, 1))
    else:
        out = feats.new_zeros(kmap.num_out + 1, weight.shape[2])
    return apply_groups(feats, weight, kmap.offset_groups, out)[: kmap.num_out]


def _map_and_coords(
    x: SparseTensor, kernel_size: int, stride: int, transposed: bool
) -> tuple[KernelMap, torch.Tensor, int]:
    """The kernel map (from the cache or built and cached), the output coordinates and the output stride."""
    cache = x.cache
    key: tuple[object, ...]
    if stride == 1 and not transposed:
        key = ("submanifold", x.stride, kernel_size)
        if key not in cache.kernel_maps:
            cache.kernel_maps[key] = submanifold_map(x.coords, x.stride, kernel_size, x.key_table())
        return cache.kernel_maps[key], x.coords, x.stride
    if not transposed:
        out_stride = x.stride * stride
        cache.check_range(x.stride)  # once per stride; what derives from checked coordinates skips the check
        if out_stride not in cache.coords:
            cache.coords[out_stride] = downsampled_coords(x.coords, x.stride, kernel_size, stride, check=False)
            cache.checked.add(out_stride)
        key = ("strided", x.stride, kernel_size, stride)
        if key not in cache.kernel_maps:
            tables = (x.key_table, lambda: cache.key_table(out_stride))
            cache.kernel_maps[key] = strided_map(
                x.coords, cache.coords[out_stride], x.stride, kernel_size, stride, tables
            )
        return cache.kernel_maps[key], cache.coords[out_stride], out_stride
    if x.stride % stride:
        raise SparseTensorError(f"a transposed conv of stride {stride} cannot leave tensor stride {x.stride}")
    fine = x.stride // stride
    if fine not in cache.coords:
        raise SparseTensorError(f"a transposed conv needs the coordinates of stride {fine}; none were seen")
    key = ("strided", fine, kernel_size, stride)
    if key not in cache.kernel_maps:
        cache.check_range(fine)
        tables = (lambda: cache.key_table(fine), x.key_table)
        cache.kernel_maps[key] = strided_map(cache.coords[fine], x.coords, fine, kernel_size, stride, tables)
    fine_coords = cache.coords[fine]
    return cache.kernel_maps[key].transposed(fine_coords.shape[0]), fine_coords, fine


def conv_pairs(x: SparseTensor, kernel_size: int, stride: int = 1, transposed: bool = False) -> int:
    """How many (input, output) pairs the conv multiplies: its MACs are ``pairs * C_in * C_out``."""
    return _map_and_coords(x, kernel_size, stride, transposed)[0].pairs


def sparse_conv3d(
    x: SparseTensor,
    weight: torch.Tensor,
    kernel_size: int,
    stride: int = 1,
    transposed: bool = False,
    bias: torch.Tensor | None = None,
) -> SparseTensor:
    """One sparse conv of ``x`` with ``weight`` (k^3, C_in, C_out); the functional form (SPVNAS slices weights)."""
    if weight.dim() != 3 or weight.shape[0] != kernel_size**3 or weight.shape[1] != x.feats.shape[1]:
        raise SparseTensorError(
            f"conv weight must be ({kernel_size**3}, {x.feats.shape[1]}, C_out) for these features;"
            f" got {tuple(weight.shape)}"
        )
    kmap, coords, out_stride = _map_and_coords(x, kernel_size, stride, transposed)
    out = apply_kernel_map(x.feats, weight, kmap)
    if bias is not None:
        out = out + bias
    return SparseTensor(out, coords, out_stride, x.cache)


class Conv3d(nn.Module):
    """torchsparse's ``nn.Conv3d(in_channels, out_channels, kernel_size, stride, transposed=, bias=)``.

    Stride 1 is submanifold (outputs at the input voxels); stride s > 1 downsamples; ``transposed=True``
    upsamples back onto the voxels that the matching strided conv came from.
    """

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
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.transposed = kernel_size, stride, transposed
        self.kernel = nn.Parameter(torch.empty(kernel_size**3, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        bound = 1.0 / math.sqrt(in_channels * kernel_size**3)  # fan-in uniform, as torchsparse
        nn.init.uniform_(self.kernel, -bound, bound)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return sparse_conv3d(x, self.kernel, self.kernel_size, self.stride, self.transposed, self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
            f", transposed={self.transposed}"
        )
