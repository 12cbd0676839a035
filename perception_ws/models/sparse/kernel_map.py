"""Kernel maps: for each kernel offset, which input rows feed which output rows (built by hashing).

A sparse convolution is ``out[o] += in[i] @ W[k]`` over the (i, o) pairs of each offset k. The pairs come
from hash lookups of shifted coordinates (``hashing.KeyTable``), vectorised over all rows per offset, on
any device. ``kernel_map_reference`` builds the same pairs with Python loops and a dict, for the tests.

Geometry (torchsparse's, with coordinates in finest-voxel units): at tensor stride ``t`` the offsets of a
kernel of size ``k`` are ``d * t`` for ``d`` in ``-(k//2)..k//2`` (odd k) or ``0..k-1`` (even k), the first
axis fastest. Submanifold (stride 1): outputs at the input voxels, ``out[p] += in[p + d t] W[d]``. Strided
(stride s): output stride ``t s``; output voxels are every multiple ``o`` of ``t s`` with an input at some
``o + d t``. Transposed: the strided map read backwards, from the coarse voxels to the cached fine ones.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from perception_ws.errors import SparseTensorError
from perception_ws.models.sparse.hashing import KeyTable, pack_keys, unique_rows


@dataclass(frozen=True)
class KernelMap:
    """Per kernel offset, the input rows and the output rows they feed; ``identity`` marks the offset that maps
    every row onto itself (a submanifold conv's centre), which the conv applies without gather or scatter.
    """

    in_rows: list[torch.Tensor]
    out_rows: list[torch.Tensor]
    num_out: int
    identity: int | None = None

    def transposed(self, num_out: int) -> KernelMap:
        """The map read from outputs to inputs (a transposed conv over the same pairs)."""
        return KernelMap(self.out_rows, self.in_rows, num_out, self.identity)

    @property
    def pairs(self) -> int:
        return sum(int(r.numel()) for r in self.in_rows)


def kernel_offsets(kernel_size: int, device: torch.device | None = None) -> torch.Tensor:
    """(k^3, 3) int64 offsets in units of the tensor stride, the first axis fastest (torchsparse's order)."""
    if kernel_size < 1:
        raise SparseTensorError(f"kernel size must be >= 1; got {kernel_size}")
    axis = range(-(kernel_size // 2), kernel_size // 2 + 1) if kernel_size % 2 else range(kernel_size)
    rows = [(x, y, z) for z, y, x in itertools.product(axis, axis, axis)]
    return torch.tensor(rows, dtype=torch.int64, device=device)


def _shift(coords: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Coordinates (N, 4) int64 moved by a spatial offset (3,), batch unchanged."""
    shifted = coords.clone()
    shifted[:, 1:] += offset
    return shifted


def _map_by_lookup(table: KeyTable, out_coords: torch.Tensor, offsets: torch.Tensor) -> tuple[list[torch.Tensor], ...]:
    """For each offset, the table rows found at ``out + offset`` and the output rows that found one."""
    out64 = out_coords.to(torch.int64)
    every_out = torch.arange(out64.shape[0], device=out64.device)
    in_rows, out_rows = [], []
    for offset in offsets:
        rows = table.lookup(pack_keys(_shift(out64, offset)))
        hit = rows >= 0
        in_rows.append(rows[hit])
        out_rows.append(every_out[hit])
    return in_rows, out_rows


def submanifold_map(coords: torch.Tensor, stride: int, kernel_size: int) -> KernelMap:
    """Pairs of a submanifold conv: outputs at the input voxels themselves."""
    offsets = kernel_offsets(kernel_size, coords.device) * stride
    table = KeyTable(pack_keys(coords))
    in_rows, out_rows = _map_by_lookup(table, coords, offsets)
    centre = (offsets.shape[0] // 2) if kernel_size % 2 else None
    return KernelMap(in_rows, out_rows, coords.shape[0], centre)


def downsampled_coords(coords: torch.Tensor, stride: int, kernel_size: int, conv_stride: int) -> torch.Tensor:
    """Output voxels of a strided conv: the multiples of ``stride * conv_stride`` that some kernel offset reaches."""
    out_stride = stride * conv_stride
    c64 = coords.to(torch.int64)
    candidates = []
    for offset in kernel_offsets(kernel_size, coords.device) * stride:
        moved = _shift(c64, -offset)
        on_grid = (torch.remainder(moved[:, 1:], out_stride) == 0).all(dim=1)
        candidates.append(moved[on_grid])
    out, _ = unique_rows(torch.cat(candidates))
    return out.to(torch.int32)


def strided_map(coords: torch.Tensor, out_coords: torch.Tensor, stride: int, kernel_size: int) -> KernelMap:
    """Pairs of a strided conv from ``coords`` (tensor stride ``stride``) to the coarser ``out_coords``."""
    offsets = kernel_offsets(kernel_size, coords.device) * stride
    in_rows, out_rows = _map_by_lookup(KeyTable(pack_keys(coords)), out_coords, offsets)
    return KernelMap(in_rows, out_rows, out_coords.shape[0])


def kernel_map_reference(
    in_coords: torch.Tensor, out_coords: torch.Tensor, stride: int, kernel_size: int
) -> list[set[tuple[int, int]]]:
    """The (input row, output row) pairs of every offset, by brute force with a dict: the tests' reference."""
    where = {tuple(c): i for i, c in enumerate(in_coords.tolist())}
    pairs: list[set[tuple[int, int]]] = []
    for dx, dy, dz in (kernel_offsets(kernel_size) * stride).tolist():
        found = set()
        for o, (b, x, y, z) in enumerate(out_coords.tolist()):
            i = where.get((b, x + dx, y + dy, z + dz))
            if i is not None:
                found.add((i, o))
        pairs.append(found)
    return pairs
