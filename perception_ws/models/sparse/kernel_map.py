"""Kernel maps: for each kernel offset, which input rows feed which output rows (built by hashing).

A sparse convolution is ``out[o] += in[i] @ W[k]`` over the (i, o) pairs of each offset k. The pairs come
from hash lookups of shifted coordinates (``hashing.KeyTable``), vectorised over all rows and all offsets at
once (one search, two host syncs per map), on any device. ``kernel_map_reference`` builds the same pairs with
Python loops and a dict, for the tests.

Geometry (torchsparse's, with coordinates in finest-voxel units): at tensor stride ``t`` the offsets of a
kernel of size ``k`` are ``d * t`` for ``d`` in ``-(k//2)..k//2`` (odd k) or ``0..k-1`` (even k), the first
axis fastest. Submanifold (stride 1): outputs at the input voxels, ``out[p] += in[p + d t] W[d]``. Strided
(stride s): output stride ``t s``; output voxels are every multiple ``o`` of ``t s`` with an input at some
``o + d t``. Transposed: the strided map read backwards, from the coarse voxels to the cached fine ones.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from perception_ws.errors import SparseTensorError
from perception_ws.models.sparse.hashing import KeyTable, offset_delta, pack_keys, unique_rows
from perception_ws.models.sparse.offset_groups import OffsetGroup, group_offsets


@dataclass(frozen=True)
class KernelMap:
    """Per kernel offset, the input rows and the output rows they feed; ``identity`` marks the offset that maps
    every row onto itself (a submanifold conv's centre), which the conv applies without gather or scatter.
    """

    in_rows: list[torch.Tensor]
    out_rows: list[torch.Tensor]
    num_out: int
    identity: int | None = None
    # built on first use and kept with the map (which the SparseCache keeps for the forward pass)
    _transposed: dict[int, KernelMap] = field(default_factory=dict, compare=False, repr=False)

    def transposed(self, num_out: int) -> KernelMap:
        """The map read from outputs to inputs (a transposed conv over the same pairs)."""
        if num_out not in self._transposed:
            self._transposed[num_out] = KernelMap(self.out_rows, self.in_rows, num_out, self.identity)
        return self._transposed[num_out]

    @functools.cached_property
    def offset_groups(self) -> list[OffsetGroup]:
        """The offsets batched for ``bmm`` (``offset_groups.py``), built on first use and kept with the map."""
        return group_offsets(self.in_rows, self.out_rows, self.num_out, self.identity)

    @property
    def pairs(self) -> int:
        return sum(int(r.numel()) for r in self.in_rows)


def _offset_steps(kernel_size: int) -> list[tuple[int, int, int]]:
    """The offsets as host ints, in units of the tensor stride, the first axis fastest (torchsparse's order)."""
    if kernel_size < 1:
        raise SparseTensorError(f"kernel size must be >= 1; got {kernel_size}")
    axis = range(-(kernel_size // 2), kernel_size // 2 + 1) if kernel_size % 2 else range(kernel_size)
    return [(x, y, z) for z, y, x in itertools.product(axis, axis, axis)]


def kernel_offsets(kernel_size: int, device: torch.device | None = None) -> torch.Tensor:
    """(k^3, 3) int64 offsets in units of the tensor stride, the first axis fastest (torchsparse's order)."""
    return torch.tensor(_offset_steps(kernel_size), dtype=torch.int64, device=device)


#: What returns a coordinate set's key table (a cached one, or one built on the call).
TableOf = Callable[[], KeyTable]


def _table_of(coords: torch.Tensor) -> TableOf:
    return lambda: KeyTable(pack_keys(coords))


def _offset_deltas(kernel_size: int, stride: int) -> list[int]:
    """The key change of every kernel offset at tensor stride ``stride``, in ``kernel_offsets`` order (host ints,
    no tensor: building them touches no device).
    """
    return [offset_delta([step * stride for step in offset]) for offset in _offset_steps(kernel_size)]


def _split(rows: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
    return list(torch.split(rows, counts))


def submanifold_map(coords: torch.Tensor, stride: int, kernel_size: int, table: KeyTable | None = None) -> KernelMap:
    """Pairs of a submanifold conv: outputs at the input voxels themselves (``table``: ``coords``' keys, if built).

    Offsets d and -d have mirrored pairs (i at o + d  <=>  o at i - d), so only the offsets before the centre are
    looked up (all at once); the centre of an odd kernel maps every row onto itself and needs no lookup.
    """
    table = table if table is not None else KeyTable(pack_keys(coords))
    deltas = _offset_deltas(kernel_size, stride)
    count = len(deltas)
    centre = count // 2 if kernel_size % 2 else None
    looked = deltas[:centre] if centre is not None else deltas
    found, at, counts = table.shifted_matches_all(table, looked)
    in_rows, out_rows = _split(found, counts), _split(at, counts)
    if centre is not None:  # odd kernels: offsets are symmetric about the centre in this order
        mirrored = range(centre - 1, -1, -1)
        in_rows, out_rows = (
            in_rows + [table.rows] + [out_rows[m] for m in mirrored],
            out_rows + [table.rows] + [in_rows[m] for m in mirrored],
        )
    return KernelMap(in_rows, out_rows, coords.shape[0], centre)


def _window_corner(coords: torch.Tensor, out_stride: int) -> torch.Tensor:
    """(N, 4) int64: each voxel's coarse voxel when windows do not overlap (kernel = stride): a floor."""
    corner = coords.to(torch.int64).clone()
    corner[:, 1:] = torch.div(corner[:, 1:], out_stride, rounding_mode="floor") * out_stride
    return corner


def downsampled_coords(
    coords: torch.Tensor, stride: int, kernel_size: int, conv_stride: int, check: bool = True
) -> torch.Tensor:
    """Output voxels of a strided conv: the multiples of ``stride * conv_stride`` that some kernel offset reaches
    (``check=False``: ``coords`` passed the range check already, so the derived ones skip it).
    """
    out_stride = stride * conv_stride
    if kernel_size == conv_stride:  # non-overlapping windows (MinkUNet's k2 s2): each voxel reaches one corner
        return unique_rows(_window_corner(coords, out_stride), check)[0].to(torch.int32)
    c64 = coords.to(torch.int64)
    offsets = kernel_offsets(kernel_size, coords.device) * stride
    moved = c64.unsqueeze(0).repeat(offsets.shape[0], 1, 1)  # (K, N, 4): every voxel moved back by every offset
    moved[:, :, 1:] -= offsets.unsqueeze(1)
    moved = moved.reshape(-1, 4)
    candidates = moved[(torch.remainder(moved[:, 1:], out_stride) == 0).all(dim=1)]
    out, _ = unique_rows(candidates, check)
    return out.to(torch.int32)


def _window_map(
    coords: torch.Tensor, out_coords: torch.Tensor, stride: int, kernel_size: int, out_table: KeyTable, check: bool
) -> KernelMap:
    """``strided_map`` for kernel = stride: one lookup per voxel (its corner), the offset read off the remainder."""
    corner = _window_corner(coords, stride * kernel_size)
    out_rows = out_table.lookup(pack_keys(corner, check))
    step = torch.div(coords[:, 1:].to(torch.int64) - corner[:, 1:], stride, rounding_mode="floor")
    offsets = kernel_size**3
    offset_index = step[:, 0] + kernel_size * step[:, 1] + kernel_size**2 * step[:, 2]  # kernel_offsets' order
    # voxels without an output sort after every offset: one stable sort groups the pairs by offset, rows ascending
    offset_index = torch.where(out_rows >= 0, offset_index, offsets)
    per_offset = torch.zeros(offsets + 1, dtype=torch.int64, device=coords.device)
    per_offset.scatter_add_(0, offset_index, torch.ones_like(offset_index))
    counts: list[int] = per_offset[:offsets].tolist()  # the one host sync
    in_sorted = torch.argsort(offset_index, stable=True)[: sum(counts)]
    in_rows = _split(in_sorted, counts)
    return KernelMap(in_rows, [out_rows[r] for r in in_rows], out_coords.shape[0])


def strided_map(
    coords: torch.Tensor,
    out_coords: torch.Tensor,
    stride: int,
    kernel_size: int,
    conv_stride: int = 0,
    tables: tuple[TableOf, TableOf] | None = None,
) -> KernelMap:
    """Pairs of a strided conv (``conv_stride``) from ``coords`` (tensor stride ``stride``) to ``out_coords``;
    ``tables``: where given, what returns the keys of ``coords`` and of ``out_coords`` (called only if needed),
    from a caller that has range-checked ``coords`` (so keys derived from them skip the check).
    """
    in_table, out_table = tables if tables is not None else (_table_of(coords), _table_of(out_coords))
    if conv_stride == kernel_size:
        return _window_map(coords, out_coords, stride, kernel_size, out_table(), check=tables is None)
    found, at, counts = in_table().shifted_matches_all(out_table(), _offset_deltas(kernel_size, stride))
    return KernelMap(_split(found, counts), _split(at, counts), out_coords.shape[0])


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
