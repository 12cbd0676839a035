"""Weight layouts of other sparse-conv libraries, so the same weights can be loaded into them (tests, benchmarks)."""

from __future__ import annotations

import torch

from perception_ws.models.sparse.hashing import KeyTable, pack_keys
from perception_ws.models.sparse.tensor import SparseTensor


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


def spconv_conv(
    x: SparseTensor, kernel: torch.Tensor, kernel_size: int, stride: int = 1, transposed: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv ``Conv3d(..., kernel_size, stride, transposed)`` with weights ``kernel`` run by spconv 2.x (the
    numerical reference; needs the ``sparse`` extra). Returns (coords in our units and stride, features).

    spconv's submanifold / strided (padding k//2 for odd k, 0 for even) / inverse convs have our geometry
    once our coordinates are shifted to non-negative grid indices of the tensor's stride.
    """
    import spconv.pytorch as spconv  # the reference only: not a dependency of the engine

    out_stride = x.stride // stride if transposed else x.stride * stride
    fine_stride = min(x.stride, out_stride)
    grid = 2 * max(x.stride, out_stride)  # shift by a multiple of the coarse stride: the grids stay aligned
    fine_coords = x.cache.coords[fine_stride] if transposed else x.coords
    origin = torch.div(fine_coords[:, 1:].min(dim=0).values, grid, rounding_mode="floor") * grid - grid
    extent = int(((fine_coords[:, 1:] - origin).max() // fine_stride).item()) + 2 * kernel_size + 2
    batch = int(fine_coords[:, 0].max().item()) + 1

    def to_spconv(coords: torch.Tensor, feats: torch.Tensor, t: int) -> spconv.SparseConvTensor:
        idx = torch.cat([coords[:, :1], torch.div(coords[:, 1:] - origin, t, rounding_mode="floor")], dim=1)
        return spconv.SparseConvTensor(feats, idx.int(), [extent // (t // fine_stride) + 1] * 3, batch)

    def from_spconv(t: spconv.SparseConvTensor, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = t.indices.to(torch.int64)
        return torch.cat([idx[:, :1], idx[:, 1:] * s + origin], dim=1).int(), t.features

    c_in, c_out = kernel.shape[1], kernel.shape[2]
    weight = to_spconv_weight(kernel.detach(), kernel_size)
    with torch.no_grad():
        if not transposed and stride == 1:
            layer = spconv.SubMConv3d(c_in, c_out, kernel_size, bias=False, indice_key="ref")
            layer.weight.copy_(weight)
            return from_spconv(layer(to_spconv(x.coords, x.feats, x.stride)), x.stride)
        padding = kernel_size // 2 if kernel_size % 2 else 0
        fine = to_spconv(fine_coords, fine_coords.new_zeros(fine_coords.shape[0], 1).float(), fine_stride)
        down = spconv.SparseConv3d(
            1 if transposed else c_in,
            1 if transposed else c_out,
            kernel_size,
            stride,
            padding=padding,
            bias=False,
            indice_key="ref",
        )
        if not transposed:
            down.weight.copy_(weight)
            return from_spconv(down(to_spconv(x.coords, x.feats, x.stride)), out_stride)
        coarse = down(fine)  # only its indices and pairs are used; our features go on spconv's coarse rows
        coarse_coords, _ = from_spconv(coarse, x.stride)
        coarse = coarse.replace_feature(x.feats[rows_of(x.coords, coarse_coords)])
        inverse = spconv.SparseInverseConv3d(c_in, c_out, kernel_size, bias=False, indice_key="ref")
        inverse.weight.copy_(weight)
        return from_spconv(inverse(coarse), out_stride)
