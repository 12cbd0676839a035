"""Ground removal as in LATTE: planes fitted by SVD from the lowest points, refined by iteration.

The ground is a patchwork of planes ``n . p = d``, one per polar segment (range ring x azimuth
sector), so that slopes, crowns and kerbs are followed. In each segment the lowest points give a
first plane: the normal is the singular vector of the smallest singular value of their covariance.
Then the points within ``distance_m`` of the plane are re-selected and the plane refitted, a few
times. A segment whose plane is too steep or too thinly supported borrows its neighbour's plane.
All segments are fitted at once with per-segment sums (no loop over points or segments).
"""

from __future__ import annotations

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.instances.config import GroundConfig
from perception_ws.instances.inputs import as_xyz
from perception_ws.kernels.ground_planes import (
    lowest_mean,
    near_plane_moments,
    near_planes,
    polar_segments,
    segment_moments,
)


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane of (N >= 3, 3) points: unit normal (pointing up, +z) and offset d."""
    pts = as_xyz(points, "plane points")
    if len(pts) < 3:
        raise PerceptionError(f"a plane needs at least 3 points; got {len(pts)}")
    _, mean, cov = segment_moments(pts, np.zeros(len(pts), dtype=np.int64), np.ones(len(pts), dtype=bool), 1)
    normals, offsets = _planes(mean, cov)
    return normals[0], float(offsets[0])


def _planes(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Planes (normal (S, 3) pointing up, offset (S,)) through points of these means and covariances."""
    # the right singular vector of the smallest singular value (eigh is faster, but where points lie near a line,
    # e.g. one scan ring far out, the two smallest values nearly tie and it picks another, equally valid normal)
    _, _, vt = np.linalg.svd(cov)
    normal = np.ascontiguousarray(vt[:, 2, :])
    normal *= np.where(normal[:, 2:3] < 0, -1.0, 1.0)
    return normal, np.einsum("sa,sa->s", normal, mean)


def _segments(xyz: np.ndarray, config: GroundConfig) -> tuple[np.ndarray, int]:
    """Polar segment id per point (ring-major) and the number of segments."""
    edges = np.asarray(config.ring_edges_m, dtype=np.float64)
    azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
    return polar_segments(xyz, azimuth, edges, config.sectors), len(edges) * config.sectors


def _seed_mask(z: np.ndarray, segment: np.ndarray, segments: int, config: GroundConfig) -> np.ndarray:
    """Points at most ``seed_height_m`` above the mean height of their segment's lowest points."""
    base = lowest_mean(z, segment, segments, config.seed_fraction)
    return np.asarray(z <= base[segment] + config.seed_height_m)


def _fit_segments(
    pts: np.ndarray, segment: np.ndarray, segments: int, config: GroundConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LATTE's iteration in every segment at once: planes (S, 3), (S,) and whether each is trusted (S,)."""
    count, mean, cov = segment_moments(pts, segment, _seed_mask(pts[:, 2], segment, segments, config), segments)
    normal, offset = _planes(mean, cov)
    for _ in range(config.iterations - 1):  # refit on the points near the last planes
        count, mean, cov = near_plane_moments(pts, segment, normal, offset, config.distance_m, mean)
        normal, offset = _planes(mean, cov)
    trusted = (count >= config.min_points) & (normal[:, 2] >= np.cos(np.radians(config.max_slope_deg)))
    return normal, offset, trusted


def _borrow_planes(normal: np.ndarray, offset: np.ndarray, trusted: np.ndarray) -> None:
    """In place, per sector (last axis): each untrusted ring takes the plane of the nearest trusted ring inside it,
    else (none inside) of the nearest outside it (the ground near the car is the best observed); a sector with no
    trusted ring keeps its planes, untrusted.
    """
    ring = np.arange(len(trusted))[:, None]
    inside = np.maximum.accumulate(np.where(trusted, ring, -1), axis=0)  # the last trusted ring up to each ring
    lender = np.where(inside >= 0, inside, np.argmax(trusted, axis=0))  # else the sector's innermost trusted one
    sector = np.arange(trusted.shape[1])
    any_trusted = trusted.any(axis=0)
    normal[:, any_trusted] = normal[lender, sector][:, any_trusted]
    offset[:, any_trusted] = offset[lender, sector][:, any_trusted]
    trusted[:, any_trusted] = True


def _borrow_planes_reference(normal: np.ndarray, offset: np.ndarray, trusted: np.ndarray) -> None:
    """The loop :func:`_borrow_planes` replaces: ring by ring from the inside, each untrusted ring takes the
    plane of the first trusted ring among the rings inside it (nearest first), then those outside it.
    """
    rings = len(normal)
    for ring in range(rings):
        for other in [*range(ring - 1, -1, -1), *range(ring + 1, rings)]:
            take = ~trusted[ring] & trusted[other]
            normal[ring][take] = normal[other][take]
            offset[ring][take] = offset[other][take]
            trusted[ring] |= take


def ground_planes(xyz: np.ndarray, config: GroundConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fitted ground planes: segment id per point (N,), normals (S, 3) and offsets (S,), S segments."""
    return _ground_planes(as_xyz(xyz, "ground removal input"), config or GroundConfig())


def _ground_planes(pts: np.ndarray, config: GroundConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    segment, segments = _segments(pts, config)
    normal, offset, trusted = _fit_segments(pts, segment, segments, config)
    if not trusted.any():
        # nothing trustworthy anywhere (a tiny or odd cloud): one plane for the whole cloud
        one, one_offset, _ = _fit_segments(pts, np.zeros(len(pts), dtype=np.int64), 1, config)
        return segment, np.repeat(one, segments, axis=0), np.repeat(one_offset, segments)
    rings = segments // config.sectors
    normal = normal.reshape(rings, config.sectors, 3)
    offset = offset.reshape(rings, config.sectors)
    trusted = trusted.reshape(rings, config.sectors)
    _borrow_planes(normal, offset, trusted)
    # a sector without any trusted ring: a level plane at the median height of the trusted ones
    normal[~trusted] = (0.0, 0.0, 1.0)
    offset[~trusted] = np.median(offset[trusted])
    return segment, normal.reshape(-1, 3), offset.reshape(-1)


def ground_mask(xyz: np.ndarray, config: GroundConfig | None = None) -> np.ndarray:
    """True for ground points: within ``distance_m`` of their segment's ground plane. (N,) bool."""
    config = config or GroundConfig()
    pts = as_xyz(xyz, "ground removal input")
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    segment, normal, offset = _ground_planes(pts, config)
    return near_planes(pts, segment, normal, offset, config.distance_m)
