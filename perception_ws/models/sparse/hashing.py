"""Voxel coordinates -> int64 keys, and a vectorised hash lookup (sort + searchsorted) beside a dict reference.

A coordinate row is (batch, x, y, z) in int32. Packing it into one int64 key turns "is this voxel occupied,
and at which row?" into a sorted-array search, which runs on CPU and GPU without any custom kernel. Each
axis sits in its own bit field with a margin to spare, so moving a voxel by a kernel offset adds one
constant to its key (``offset_delta``): the shifted keys of a sorted table are still sorted, and no
coordinate is packed twice.
"""

from __future__ import annotations

import functools

import torch

from perception_ws.errors import SparseTensorError

#: Bits per spatial axis (signed, centred) and for the batch index: 3 x 16 + 15 = 63 bits, so a key stays >= 0.
AXIS_BITS = 16
BATCH_BITS = 15
_AXIS_OFFSET = 1 << (AXIS_BITS - 1)
#: Coordinates stay this far inside the bit field, so adding a kernel offset never carries into the next axis.
OFFSET_MARGIN = 1 << 10
_AXIS_LIMIT = (1 << (AXIS_BITS - 1)) - OFFSET_MARGIN


def pack_keys(coords: torch.Tensor, check: bool = True) -> torch.Tensor:
    """(N, 4) int (batch, x, y, z) -> (N,) int64 keys; one key per distinct row, order-free.

    ``check=False`` skips the range check (one host sync) for coordinates derived from checked ones.
    """
    c = coords.to(torch.int64)
    if check and c.numel():
        xyz, batch = c[:, 1:], c[:, 0]
        # one host sync for the whole check (four int() reads cost four on a GPU); the message reads the rest
        outside = (xyz < -_AXIS_LIMIT) | (xyz >= _AXIS_LIMIT)
        if bool(outside.any() | (batch < 0).any() | (batch >= 1 << BATCH_BITS).any()):
            if bool(outside.any()):
                raise SparseTensorError(
                    f"voxel coordinates must lie in [{-_AXIS_LIMIT}, {_AXIS_LIMIT});"
                    f" got {int(xyz.min())}..{int(xyz.max())} (use a larger voxel size)"
                )
            raise SparseTensorError(f"batch indices must lie in [0, {1 << BATCH_BITS}); got {int(batch.max())}")
    key = c[:, 0]
    for axis in (1, 2, 3):
        key = (key << AXIS_BITS) | (c[:, axis] + _AXIS_OFFSET)
    return key


def offset_delta(offset: list[int]) -> int:
    """The key change of a move by ``offset`` (dx, dy, dz), each within ``OFFSET_MARGIN``."""
    if max(abs(o) for o in offset) > OFFSET_MARGIN:
        raise SparseTensorError(f"kernel offsets must stay within {OFFSET_MARGIN} voxels; got {offset}")
    dx, dy, dz = offset
    return (dx << (2 * AXIS_BITS)) + (dy << AXIS_BITS) + dz


@functools.lru_cache(maxsize=256)
def device_ints(values: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``values`` as an int64 tensor on ``device``, copied there once per process (a host-to-device copy of
    fresh host memory may wait for the GPU); shared between callers, so never change it in place.
    """
    return torch.tensor(values, dtype=torch.int64).to(device)


class KeyTable:
    """The rows of a coordinate set, found by key: ``lookup(keys)`` gives each key's row or -1."""

    def __init__(self, keys: torch.Tensor) -> None:
        self.sorted_keys, self.rows = torch.sort(keys)

    def shifted_matches(self, queries: KeyTable, delta: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (ours, theirs) where a key of ``queries`` plus ``delta`` is one of ours; sorted queries
        stay sorted after the shift, which keeps the binary search cache-friendly.
        """
        shifted = queries.sorted_keys + delta
        if self.sorted_keys.numel() == 0:
            empty = shifted.new_zeros(0)
            return empty, empty
        pos = torch.searchsorted(self.sorted_keys, shifted).clamp_(max=self.sorted_keys.numel() - 1)
        hit = self.sorted_keys[pos] == shifted
        return self.rows[pos[hit]], queries.rows[hit]

    def shifted_matches_all(self, queries: KeyTable, deltas: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """``shifted_matches`` for every delta in one pass: rows (ours, theirs) of all deltas concatenated in
        ``deltas`` order, and how many belong to each. One search and one host sync (the per-delta counts) for
        the whole kernel, where a loop costs a sync and a few launches per offset.
        """
        n = queries.sorted_keys.numel()
        if self.sorted_keys.numel() == 0 or n == 0 or not deltas:
            empty = queries.sorted_keys.new_zeros(0)
            return empty, empty, [0] * len(deltas)
        shift = device_ints(tuple(deltas), queries.sorted_keys.device)
        shifted = (queries.sorted_keys.unsqueeze(0) + shift.unsqueeze(1)).reshape(-1)  # (K*N,), sorted per delta
        pos = torch.searchsorted(self.sorted_keys, shifted).clamp_(max=self.sorted_keys.numel() - 1)
        hit = self.sorted_keys[pos] == shifted
        counts = hit.view(len(deltas), n).sum(dim=1).tolist()  # the one host sync: pairs per delta
        where = torch.nonzero_static(hit, size=sum(counts)).squeeze(1)  # its size is known now: no second sync
        return self.rows[pos[where]], queries.rows[where % n], counts

    def lookup(self, queries: torch.Tensor) -> torch.Tensor:
        if self.sorted_keys.numel() == 0:
            return torch.full_like(queries, -1)
        pos = torch.searchsorted(self.sorted_keys, queries).clamp_(max=self.sorted_keys.numel() - 1)
        found = self.sorted_keys[pos] == queries
        return torch.where(found, self.rows[pos], torch.full_like(pos, -1))


def lookup_reference(table_keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """The plain version of ``KeyTable(table_keys).lookup(queries)``: a Python dict, for the tests."""
    rows = {int(k): i for i, k in enumerate(table_keys.tolist())}
    return torch.tensor([rows.get(int(q), -1) for q in queries.tolist()], dtype=torch.int64)


def unique_rows(coords: torch.Tensor, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct coordinate rows (sorted by key) and, for every input row, the index of its distinct row
    (``check``: as ``pack_keys``; ``torch.unique`` itself is a host sync, its output size depends on the data).
    """
    keys = pack_keys(coords, check)
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((uniq.numel(),), keys.numel(), dtype=torch.int64, device=keys.device)
    first.scatter_reduce_(0, inverse, torch.arange(keys.numel(), device=keys.device), reduce="amin")
    return coords[first], inverse
