"""Range-image projection in torch, for the point array already on the network's device (GPU, or CPU torch).

The same rules as the numpy reference beside it (:mod:`perception_ws.kernels.projection`), written as whole-array
tensor operations in float64 so that every point lands in exactly the pixel the reference gives it:

* rows: given (ring field / storage order, computed on the host), the beam table (brute-force argmin over the
  beams, first minimum on ties, in chunks of points), or uniform bins;
* columns: ``phi = atan2(y, x)`` binned from the right edge of the field of view, column 0 at the left edge;
* pixel conflicts: the nearest point wins, ties to the lower index: two ``scatter_reduce`` passes (smallest range
  per pixel, then the smallest index among the points at that range), so the result does not depend on the order
  in which a GPU's threads arrive.

Each product and sum is its own tensor operation (no fused multiply-add), as in numpy. ``atan2`` is the device's
libm: it may differ from numpy's by one unit in the last place, which changes a column only for a point within
about 1e-16 rad of a column edge (none in the real scans the tests compare on).

:func:`hidden_point_sources` is the back-projection's nearest-owner step for the points that lost their pixel
to a nearer one (:attr:`perception_ws.projection.Projection.source_pixels` does it with a k-d tree): a search over
every row of a few columns around the point's own column, exact because a closer owner cannot lie more columns
away than its distance allows (see the function), and a brute-force search for the few points where it could.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from perception_ws.kernels.projection import IMAGE_CHANNELS, ROWS_GIVEN, ROWS_TABLE, ColumnRule

#: points per chunk of the beam-table argmin (a chunk x beams float64 matrix: 32 MiB for 64 beams).
TABLE_CHUNK = 1 << 16
#: half-widths (columns) of the windows the nearest-owner search tries before searching every owner.
OWNER_WINDOWS = (4, 24)
#: point x candidate pairs per chunk of the nearest-owner searches (bounds the temporary memory).
PAIRS_PER_CHUNK = 1 << 22


@dataclass(frozen=True)
class DeviceRowRule:
    """:class:`~perception_ws.kernels.projection.RowRule` with its arrays on the device."""

    kind: int
    #: ROWS_GIVEN: (N,) int32 row of every point.
    given_rows: torch.Tensor | None = None
    #: ROWS_TABLE: float64 tan(elevation) and origin height of each beam, row order.
    tan_elevations: torch.Tensor | None = None
    beam_heights: torch.Tensor | None = None
    #: ROWS_UNIFORM: elevation of row 0 and the row spacing (radians).
    top_rad: float = 0.0
    step_rad: float = 0.0


@dataclass(frozen=True)
class ProjectedTensors:
    """Per-point rows/columns (int32, -1 where not in view), float64 ranges (0 where invalid), (H, W) int32 owners."""

    rows: torch.Tensor
    cols: torch.Tensor
    ranges: torch.Tensor
    owner: torch.Tensor


def project_torch(
    x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, rule: DeviceRowRule, columns: ColumnRule, height: int
) -> ProjectedTensors:
    """Rows, columns, ranges and pixel owners of every point (the reference's rules; see the module doc)."""
    xs, ys, zs = (v.to(torch.float64) for v in (x, y, z))
    rho2 = xs * xs + ys * ys
    ranges = torch.sqrt(rho2 + zs * zs)
    rho = torch.sqrt(rho2)
    valid = torch.isfinite(xs) & torch.isfinite(ys) & torch.isfinite(zs) & (ranges > 0)
    rows = _rows(zs, rho, rule, height)
    d = torch.atan2(ys, xs) - columns.right_rad
    d = torch.where(d < 0, d + 2.0 * math.pi, d)
    bins = torch.clamp(torch.floor(d / (columns.span_rad / columns.width)), max=columns.width - 1)
    cols = torch.where(valid & (d <= columns.span_rad), columns.width - 1 - bins, -1).to(torch.int32)
    in_view = valid & (cols >= 0) & (rows >= 0)
    rows = torch.where(in_view, rows, -1)
    cols = torch.where(in_view, cols, -1)
    ranges = torch.where(valid, ranges, 0.0)
    return ProjectedTensors(rows, cols, ranges, _owners(rows, cols, ranges, in_view, height, columns.width))


def _rows(zs: torch.Tensor, rho: torch.Tensor, rule: DeviceRowRule, height: int) -> torch.Tensor:
    """(N,) int32 row of every point by the rule (meaningless where the point is invalid: masked by the caller)."""
    if rule.kind == ROWS_GIVEN:
        assert rule.given_rows is not None
        return rule.given_rows.to(torch.int32)
    if rule.kind == ROWS_TABLE:
        assert rule.tan_elevations is not None and rule.beam_heights is not None
        rows = torch.empty(len(zs), dtype=torch.int32, device=zs.device)
        for start in range(0, len(zs), TABLE_CHUNK):
            end = start + TABLE_CHUNK
            # |(h + rho tan e) - z| is the reference's |z - (h + rho tan e)| exactly (negation is exact)
            gap = rho[start:end, None] * rule.tan_elevations[None, :]
            gap += rule.beam_heights[None, :]
            gap -= zs[start:end, None]
            rows[start:end] = gap.abs_().argmin(dim=1).to(torch.int32)  # the first minimum, as numpy's argmin
        return rows
    theta = torch.atan2(zs, rho)
    return torch.clamp(torch.floor((rule.top_rad - theta) / rule.step_rad + 0.5), 0, height - 1).to(torch.int32)


def _owners(
    rows: torch.Tensor, cols: torch.Tensor, ranges: torch.Tensor, in_view: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """(H, W) int32 index of the nearest point of each pixel (ties: the lower index), -1 where empty."""
    n, pixels = len(rows), height * width
    # points out of view go to one extra bin past the image, dropped at the end
    pixel = torch.where(in_view, rows.to(torch.int64) * width + cols, pixels)
    inf = torch.full((pixels + 1,), math.inf, dtype=torch.float64, device=rows.device)
    nearest = inf.scatter_reduce(0, pixel, ranges, "amin")
    index = torch.arange(n, device=rows.device)
    at_nearest = torch.where(in_view & (ranges == nearest[pixel]), index, n)
    first = torch.full((pixels + 1,), n, dtype=torch.int64, device=rows.device).scatter_reduce(
        0, pixel, at_nearest, "amin"
    )
    return torch.where(first < n, first, -1)[:pixels].to(torch.int32).view(height, width)


def gather_image_torch(
    owner: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    intensity: torch.Tensor | None,
    ranges: torch.Tensor,
) -> torch.Tensor:
    """(H, W, 6) float32 image x, y, z, intensity, range, mask from the pixel owners (empty = 0), as the reference."""
    filled = owner >= 0
    if len(x) == 0:
        return torch.zeros((*owner.shape, IMAGE_CHANNELS), dtype=torch.float32, device=owner.device)
    who = owner.clamp(min=0).to(torch.int64)
    zero = torch.zeros((), dtype=torch.float32, device=owner.device)

    def channel(values: torch.Tensor | None) -> torch.Tensor:
        return zero.expand(owner.shape) if values is None else torch.where(filled, values[who].to(torch.float32), zero)

    return torch.stack([channel(x), channel(y), channel(z), channel(intensity), channel(ranges), filled.float()], -1)


def hidden_point_sources(
    xyz: torch.Tensor, hidden: torch.Tensor, owner: torch.Tensor, cols: torch.Tensor, columns: ColumnRule
) -> torch.Tensor:
    """(M,) flat pixel of the owner nearest in 3D to each hidden point (the reference's k-d tree query).

    ``xyz``: (N, 3) float32 coordinates; ``hidden``: (M,) indices of points in view that lost their pixel;
    ``owner``: the (H, W) owner map; ``cols``: every point's column. A window of ``2K + 1`` columns around the
    point's own column, every row, gives a nearest owner at distance ``d``. Any owner at most ``d`` away lies within
    ``asin(d / rho)`` of the point's azimuth (``rho``: its horizontal distance), so at most
    ``floor(asin(d / rho) / dphi) + 1`` columns from its column; with one column of margin for rounding, the
    window's answer is the exact one when that is <= K. Points where it is not try the next window, then every owner.
    Distances in float64 of the float32 coordinates, summed x, y, z in that order (as the k-d tree does).
    """
    width = owner.shape[1]
    points = xyz[hidden].to(torch.float64)
    owner_xyz = torch.where(  # the empty pixels infinitely far away
        (owner >= 0)[..., None], xyz[owner.clamp(min=0).to(torch.int64)].to(torch.float64), math.inf
    )
    found = torch.full((len(hidden),), -1, dtype=torch.int64, device=xyz.device)
    todo = torch.arange(len(hidden), device=xyz.device)
    full_turn = columns.span_rad >= 2.0 * math.pi - 1e-12  # columns 0 and W-1 are neighbours
    dphi = columns.span_rad / columns.width
    for half in OWNER_WINDOWS:
        if len(todo) == 0:
            break
        pixel, distance = _window_nearest(points[todo], cols[hidden[todo]], owner_xyz, half, full_turn)
        rho = torch.sqrt(points[todo, 0] * points[todo, 0] + points[todo, 1] * points[todo, 1])
        reach = torch.floor(torch.asin(torch.clamp(distance / rho, max=1.0)) / dphi) + 2
        exact = ((distance < rho) & (reach <= half)) | (2 * half + 1 >= width)
        found[todo] = torch.where(exact, pixel, -1)
        todo = todo[~exact]  # a device sync: the next window's size
    if len(todo):
        found[todo] = _nearest_of_all(points[todo], owner_xyz.view(-1, 3), owner.view(-1) >= 0)
    return found


def _squared_distances(candidates: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """|c - p|^2 over the last axis, summed x, y, z in that order; ``points`` broadcast against ``candidates``."""
    d = candidates - points
    return d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]


def _window_nearest(
    points: torch.Tensor, cols: torch.Tensor, owner_xyz: torch.Tensor, half: int, full_turn: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat pixel, distance) of the nearest owner in every row of columns ``col - half .. col + half``."""
    height, width, _ = owner_xyz.shape
    offsets = torch.arange(-half, half + 1, device=points.device)
    pixel = torch.empty(len(points), dtype=torch.int64, device=points.device)
    distance = torch.empty(len(points), dtype=torch.float64, device=points.device)
    step = max(1, PAIRS_PER_CHUNK // (height * len(offsets)))
    for start in range(0, len(points), step):
        window = cols[start : start + step, None].to(torch.int64) + offsets  # (m, 2K+1)
        outside = (window < 0) | (window >= width)
        window = torch.remainder(window, width)
        candidates = owner_xyz[:, window]  # (H, m, 2K+1, 3)
        if not full_turn:  # no columns beyond the edges of a partial view
            candidates = torch.where(outside[None, ..., None], math.inf, candidates)
        d2 = _squared_distances(candidates, points[None, start : start + step, None, :])
        d2 = d2.permute(1, 0, 2).reshape(len(window), -1)  # (m, H * (2K+1)), row by row
        best = d2.argmin(dim=1)
        row, slot = best // len(offsets), best % len(offsets)
        pixel[start : start + step] = row * width + window.gather(1, slot[:, None])[:, 0]
        distance[start : start + step] = torch.sqrt(d2.gather(1, best[:, None])[:, 0])
    return pixel, distance


def _nearest_of_all(points: torch.Tensor, pixel_xyz: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """Flat pixel of the nearest owner to each point, by brute force over every filled pixel."""
    owned = torch.nonzero(filled).view(-1)
    coordinates = pixel_xyz[owned]
    out = torch.empty(len(points), dtype=torch.int64, device=points.device)
    step = max(1, PAIRS_PER_CHUNK // max(1, len(owned)))
    for start in range(0, len(points), step):
        d2 = _squared_distances(coordinates[None, :, :], points[start : start + step, None, :])
        out[start : start + step] = owned[d2.argmin(dim=1)]
    return out
