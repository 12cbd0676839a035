"""Point <-> voxel: voxelise by averaging the points of each voxel, devoxelise by trilinear interpolation.

A point at float coordinates p (finest-voxel units) lies in the voxel ``floor(p / t) * t`` at stride t. A voxel
``v`` at stride t covers ``[v, v + t)`` per axis and stands at its centre ``v + t/2`` for interpolation: a point
takes the 8 voxels around it (centres on the stride-t grid), weighted by ``prod(1 - |offset|)``; corners that
are not occupied get weight 0 and the rest are renormalised to sum 1 (the point's own voxel is always one of
the 8, so the sum is never 0). The point rows and weights per stride are cached like kernel maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own alias

from perception_ws.errors import SparseTensorError
from perception_ws.models.sparse.hashing import OFFSET_MARGIN, device_ints, offset_delta, pack_keys, unique_rows
from perception_ws.models.sparse.tensor import PointTensor, SparseTensor

#: The 8 corners around a point, (x, y, z) steps of 0 or 1, the first axis fastest.
_CORNERS = tuple((x, y, z) for z in (0, 1) for y in (0, 1) for x in (0, 1))


def scatter_mean(feats: torch.Tensor, rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Mean of the ``feats`` rows that share a target row; rows < 0 are dropped, empty targets get 0."""
    # dropped rows land on a spare row past the end instead of being masked out: no host sync for the mask's size
    target = torch.where(rows >= 0, rows, num_rows)
    total = feats.new_zeros(num_rows + 1, feats.shape[1]).index_add_(0, target, feats)[:num_rows]
    count = feats.new_zeros(num_rows + 1).index_add_(0, target, feats.new_ones(rows.shape[0]))[:num_rows]
    return total / count.clamp(min=1).unsqueeze(1)


def _voxel_of(points: PointTensor, stride: int) -> torch.Tensor:
    """(N, 4) int64: batch and the stride-``stride`` voxel holding each point."""
    cell = torch.floor(points.coords[:, 1:] / stride).to(torch.int64) * stride
    return torch.cat([points.coords[:, :1].to(torch.int64), cell], dim=1)


def _cells_in_range(x: SparseTensor, points: PointTensor) -> bool:
    """Whether the keys of the points' cells at ``x``'s stride may skip the range check: the points were
    voxelised on this cache (``initial_voxelize`` checked their voxels), and a cell at stride t lies within
    2t voxels of a point's own voxel, inside the keys' margin.
    """
    return points.cache is x.cache and 1 in x.cache.point_rows and 2 * x.stride < OFFSET_MARGIN


def initial_voxelize(points: PointTensor) -> SparseTensor:
    """The stride-1 sparse tensor of the occupied voxels, each with the mean of its points' features."""
    if points.coords.shape[0] == 0:
        raise SparseTensorError("cannot voxelise an empty point tensor")
    coords, inverse = unique_rows(_voxel_of(points, 1))
    points.cache.point_rows[1] = inverse
    points.cache.checked.add(1)  # unique_rows checked them
    feats = scatter_mean(points.feats, inverse, coords.shape[0])
    return SparseTensor(feats, coords.to(torch.int32), 1, points.cache)


def point_to_voxel(x: SparseTensor, points: PointTensor) -> SparseTensor:
    """The voxels of ``x`` with the mean features of the points inside them (voxels without points get 0)."""
    rows = points.cache.point_rows.get(x.stride) if points.cache is x.cache else None
    if rows is None:
        rows = x.key_table().lookup(pack_keys(_voxel_of(points, x.stride), check=not _cells_in_range(x, points)))
        if points.cache is x.cache:
            points.cache.point_rows[x.stride] = rows
    return x.with_feats(scatter_mean(points.feats, rows, x.coords.shape[0]))


def trilinear_weights(x: SparseTensor, points: PointTensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 8) rows of the corner voxels (0 where absent) and (N, 8) weights summing to 1 per point."""
    t = x.stride
    grid = points.coords[:, 1:] / t - 0.5  # centres of the stride-t voxels sit on the integers of this grid
    base = torch.floor(grid)
    frac = grid - base
    device = points.coords.device
    corners = device_ints(tuple(step for corner in _CORNERS for step in corner), device).view(8, 3)
    # the 8 corners' keys are the base corner's key plus a constant each (hashing's bit fields): no (N, 8, 4) coords
    base_cells = torch.cat([points.coords[:, :1].to(torch.int64), base.to(torch.int64) * t], dim=1)
    deltas = device_ints(tuple(offset_delta([c * t for c in corner]) for corner in _CORNERS), device)
    keys = pack_keys(base_cells, check=not _cells_in_range(x, points)).unsqueeze(1) + deltas
    rows = x.key_table().lookup(keys.reshape(-1)).view(-1, 8)
    per_axis = torch.where(corners.bool(), frac.unsqueeze(1), 1 - frac.unsqueeze(1))  # (N, 8, 3)
    weights = per_axis.prod(dim=2) * (rows >= 0)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=torch.finfo(weights.dtype).tiny)
    return rows.clamp(min=0), weights.to(x.feats.dtype)


def voxel_to_point(x: SparseTensor, points: PointTensor) -> PointTensor:
    """Point features interpolated trilinearly from the voxels of ``x`` (differentiable in ``x.feats``)."""
    key = ("trilinear", x.stride)
    shared = points.cache is x.cache
    if shared and key in x.cache.kernel_maps:
        rows, weights = x.cache.kernel_maps[key]
    else:
        rows, weights = trilinear_weights(x, points)
        if shared:
            x.cache.kernel_maps[key] = (rows, weights)
    # one fused weighted gather-sum over the 8 corners (the bag of each point): never holds an (N, 8, C) tensor
    # (hundreds of MB for a full scan) and reads each point's corners once, where a loop over corners reads and
    # writes the (N, C) result 8 times; same sums in the same corner order, differentiable in ``x.feats``
    feats = F.embedding_bag(rows, x.feats, per_sample_weights=weights, mode="sum")
    return points.with_feats(feats)


def voxel_to_point_reference(x: SparseTensor, points: PointTensor) -> torch.Tensor:
    """``voxel_to_point`` with Python loops and a dict, for the tests (small inputs only)."""
    where = {tuple(c): i for i, c in enumerate(x.coords.tolist())}
    t = x.stride
    out = []
    for b, *p in points.coords.tolist():
        acc = [0.0] * x.feats.shape[1]
        found: list[tuple[int, float]] = []
        for corner in _CORNERS:
            weight = 1.0
            cell = []
            for axis in range(3):
                g = p[axis] / t - 0.5
                lo = int(torch.floor(torch.tensor(g)))
                cell.append((lo + corner[axis]) * t)
                weight *= (g - lo) if corner[axis] else (1 - (g - lo))
            row = where.get((int(b), *cell))
            if row is not None:
                found.append((row, weight))
        total = sum(w for _, w in found)
        for row, w in found:
            for c, value in enumerate(x.feats[row].tolist()):
                acc[c] += w / total * value
        out.append(acc)
    return torch.tensor(out, dtype=x.feats.dtype)
