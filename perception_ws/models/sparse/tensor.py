"""SparseTensor and PointTensor: the two data types of point-voxel networks (torchsparse's names and fields).

Coordinates are int32 rows (batch, x, y, z) in units of the finest voxel; a tensor at stride ``s`` holds
multiples of ``s`` only. A ``SparseCache`` is shared by every tensor derived from one input: the coordinates
seen at each stride and the kernel maps built between them, so a U-Net's decoder reuses the encoder's maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from perception_ws.errors import SparseTensorError
from perception_ws.models.sparse.hashing import KeyTable, pack_keys


@dataclass
class SparseCache:
    """What one forward pass has already computed: coordinates per stride, kernel maps per conv geometry."""

    coords: dict[int, torch.Tensor] = field(default_factory=dict)
    kernel_maps: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    #: (stride) -> for every point, the row of its voxel at that stride (-1: none); filled by point_voxel.
    point_rows: dict[int, torch.Tensor] = field(default_factory=dict)
    #: (stride) -> the sorted keys of ``coords[stride]``: built once, shared by kernel maps and point-voxel ops.
    tables: dict[int, KeyTable] = field(default_factory=dict)
    #: strides whose coordinates passed ``pack_keys``' range check, or derive from ones that did: keys of these
    #: skip the check (a host sync on a GPU each)
    checked: set[int] = field(default_factory=set)

    def key_table(self, stride: int) -> KeyTable:
        """The hash table of ``coords[stride]``, built on first use."""
        table = self.tables.get(stride)
        if table is None:
            table = self.tables[stride] = KeyTable(pack_keys(self.coords[stride], check=stride not in self.checked))
            self.checked.add(stride)
        return table

    def check_range(self, stride: int) -> None:
        """Raise ``SparseTensorError`` if ``coords[stride]`` lie outside the keys' fields (once per stride)."""
        if stride not in self.checked:
            pack_keys(self.coords[stride])
            self.checked.add(stride)


def _check_coords(coords: torch.Tensor, rows: int, what: str) -> None:
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise SparseTensorError(f"{what} coordinates must be (N, 4) rows (batch, x, y, z); got {tuple(coords.shape)}")
    if coords.shape[0] != rows:
        raise SparseTensorError(f"{what} has {rows} feature rows but {coords.shape[0]} coordinate rows")


class TorchsparseNames:
    """torchsparse's short attribute names, ``F`` (features) and ``C`` (coordinates), for code written against it."""

    feats: torch.Tensor
    coords: torch.Tensor

    @property
    def F(self) -> torch.Tensor:  # noqa: N802 - torchsparse's attribute name
        return self.feats

    @property
    def C(self) -> torch.Tensor:  # noqa: N802 - torchsparse's attribute name
        return self.coords


class SparseTensor(TorchsparseNames):
    """Features (N, C) of the occupied voxels at ``coords`` (N, 4) int32, at one integer ``stride``."""

    def __init__(
        self, feats: torch.Tensor, coords: torch.Tensor, stride: int = 1, cache: SparseCache | None = None
    ) -> None:
        if feats.dim() != 2:
            raise SparseTensorError(f"sparse features must be (N, C); got {tuple(feats.shape)}")
        _check_coords(coords, feats.shape[0], "sparse tensor")
        if coords.is_floating_point():
            raise SparseTensorError(f"sparse coordinates must be integers; got {coords.dtype}")
        if stride < 1:
            raise SparseTensorError(f"stride must be a positive integer; got {stride}")
        self.feats = feats
        self.coords = coords.to(torch.int32)
        self.stride = stride
        self.cache = cache if cache is not None else SparseCache()
        self.cache.coords.setdefault(stride, self.coords)

    @property
    def s(self) -> int:  # torchsparse's name for the stride
        return self.stride

    def key_table(self) -> KeyTable:
        """The hash table of these voxels: the cache's when they are the cache's voxels at this stride."""
        if self.cache.coords.get(self.stride) is not self.coords:  # other voxels than the cached ones: not shared
            return KeyTable(pack_keys(self.coords))
        return self.cache.key_table(self.stride)

    def with_feats(self, feats: torch.Tensor) -> SparseTensor:
        """The same voxels (and cache) with other features (e.g. after a norm or an activation)."""
        return SparseTensor(feats, self.coords, self.stride, self.cache)

    def __add__(self, other: SparseTensor) -> SparseTensor:
        if other.stride != self.stride or other.coords.shape != self.coords.shape:
            raise SparseTensorError("added sparse tensors must share stride and coordinates")
        return self.with_feats(self.feats + other.feats)


class PointTensor(TorchsparseNames):
    """Features (N, C) of points at float ``coords`` (N, 4): batch, then x, y, z in units of the finest voxel."""

    def __init__(self, feats: torch.Tensor, coords: torch.Tensor, cache: SparseCache | None = None) -> None:
        if feats.dim() != 2:
            raise SparseTensorError(f"point features must be (N, C); got {tuple(feats.shape)}")
        _check_coords(coords, feats.shape[0], "point tensor")
        self.feats = feats
        self.coords = coords
        self.cache = cache if cache is not None else SparseCache()

    def with_feats(self, feats: torch.Tensor) -> PointTensor:
        return PointTensor(feats, self.coords, self.cache)
