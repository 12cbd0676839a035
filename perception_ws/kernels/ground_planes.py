"""Hot loops of ground removal (numba), each beside a plain numpy reference.

* ``segment_moments``: per segment, the count, mean (3,) and covariance (3, 3) of the selected
  points (two passes, mean then centred products, to stay accurate far from the origin).
* ``near_plane_moments``: ``segment_moments`` of the points within a distance of their segment's plane, in one
  pass (LATTE's refit step; sums about each segment's previous mean keep it accurate).
* ``near_planes``: whether each point lies within a distance of its segment's plane.
* ``lowest_mean``: per segment, the mean height of its lowest ``fraction`` of points.
* ``polar_segments``: each point's segment (range ring x azimuth sector), from its azimuth.

``nogil``: ground removal runs beside a GPU segmentation on another thread (pipeline.py), so its kernels let
the thread that drives the GPU go on.
"""

from __future__ import annotations

import numba as nb
import numpy as np


def segment_moments_reference(
    xyz: np.ndarray, segment: np.ndarray, selected: np.ndarray, segments: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy reference of :func:`segment_moments`: count, mean and covariance of the selected points per segment."""
    w = selected.astype(np.float64)
    count = np.bincount(segment, w, segments)
    safe = np.maximum(count, 1.0)
    mean = np.stack([np.bincount(segment, w * xyz[:, a], segments) for a in range(3)], axis=1) / safe[:, None]
    centred = xyz - mean[segment]
    cov = np.empty((segments, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            cov[:, a, b] = cov[:, b, a] = np.bincount(segment, w * centred[:, a] * centred[:, b], segments) / safe
    return count, mean, cov


@nb.njit(cache=True, nogil=True)
def segment_moments(
    xyz: np.ndarray, segment: np.ndarray, selected: np.ndarray, segments: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count (S,), mean (S, 3) and covariance (S, 3, 3) of the ``selected`` points of each segment."""
    count = np.zeros(segments)
    mean = np.zeros((segments, 3))
    for i in range(len(xyz)):
        if selected[i]:
            s = segment[i]
            count[s] += 1.0
            for a in range(3):
                mean[s, a] += xyz[i, a]
    for s in range(segments):
        for a in range(3):
            mean[s, a] /= max(count[s], 1.0)
    cov = np.zeros((segments, 3, 3))
    for i in range(len(xyz)):
        if selected[i]:
            s = segment[i]
            d = (xyz[i, 0] - mean[s, 0], xyz[i, 1] - mean[s, 1], xyz[i, 2] - mean[s, 2])
            for a in range(3):
                for b in range(a, 3):
                    cov[s, a, b] += d[a] * d[b]
    for s in range(segments):
        scale = 1.0 / max(count[s], 1.0)
        for a in range(3):
            for b in range(a, 3):
                cov[s, a, b] *= scale
                cov[s, b, a] = cov[s, a, b]
    return count, mean, cov


def plane_distances_reference(
    xyz: np.ndarray, segment: np.ndarray, normal: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """Signed distance of each point to its segment's plane ``normal . x = offset`` (the fast kernels' reference)."""
    return np.einsum("na,na->n", xyz, normal[segment]) - offset[segment]


@nb.njit(cache=True, nogil=True, inline="always")
def _plane_distance(xyz: np.ndarray, i: int, normal: np.ndarray, offset: np.ndarray, s: int) -> float:
    """Signed distance of point ``i`` to plane ``s`` (one function, so both kernels compute the same number)."""
    return xyz[i, 0] * normal[s, 0] + xyz[i, 1] * normal[s, 1] + xyz[i, 2] * normal[s, 2] - offset[s]


def near_plane_moments_reference(
    xyz: np.ndarray, segment: np.ndarray, normal: np.ndarray, offset: np.ndarray, distance: float, about: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy reference of :func:`near_plane_moments` (``about`` only serves the fast version's accuracy)."""
    near = np.abs(plane_distances_reference(xyz, segment, normal, offset)) < distance
    return segment_moments_reference(xyz, segment, near, len(offset))


@nb.njit(cache=True, nogil=True)
def near_plane_moments(
    xyz: np.ndarray, segment: np.ndarray, normal: np.ndarray, offset: np.ndarray, distance: float, about: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count (S,), mean (S, 3) and covariance (S, 3, 3) of the points closer than ``distance`` to their segment's
    plane ``normal . x = offset``, in one pass: sums of ``x - about[s]`` and of their products, ``about`` a point
    near each segment's points (the previous fit's mean), so the covariance's subtraction loses no precision.
    """
    segments = len(offset)
    count = np.zeros(segments)
    first = np.zeros((segments, 3))
    second = np.zeros((segments, 3, 3))
    for i in range(len(xyz)):
        s = segment[i]
        if abs(_plane_distance(xyz, i, normal, offset, s)) < distance:
            u = (xyz[i, 0] - about[s, 0], xyz[i, 1] - about[s, 1], xyz[i, 2] - about[s, 2])
            count[s] += 1.0
            for a in range(3):
                first[s, a] += u[a]
                for b in range(a, 3):
                    second[s, a, b] += u[a] * u[b]
    mean = np.empty((segments, 3))
    cov = np.empty((segments, 3, 3))
    for s in range(segments):
        scale = 1.0 / max(count[s], 1.0)
        for a in range(3):
            mean[s, a] = about[s, a] + first[s, a] * scale if count[s] else 0.0
        for a in range(3):
            for b in range(a, 3):
                cov[s, a, b] = second[s, a, b] * scale - first[s, a] * scale * first[s, b] * scale
                cov[s, b, a] = cov[s, a, b]
    return count, mean, cov


@nb.njit(cache=True, nogil=True)
def near_planes(
    xyz: np.ndarray, segment: np.ndarray, normal: np.ndarray, offset: np.ndarray, distance: float
) -> np.ndarray:
    """True where a point is closer than ``distance`` to its segment's plane (``abs(plane_distances) < distance``)."""
    out = np.empty(len(xyz), dtype=np.bool_)
    for i in range(len(xyz)):
        out[i] = abs(_plane_distance(xyz, i, normal, offset, segment[i])) < distance
    return out


def lowest_mean_reference(z: np.ndarray, segment: np.ndarray, segments: int, fraction: float) -> np.ndarray:
    """Mean of the lowest ``int(count * fraction)`` (at least 1) heights per segment (0 if empty)."""
    out = np.zeros(segments)
    for s in range(segments):
        values = np.sort(z[segment == s])
        if len(values):
            out[s] = values[: max(1, int(len(values) * fraction))].mean()
    return out


@nb.njit(cache=True, nogil=True)
def lowest_mean(z: np.ndarray, segment: np.ndarray, segments: int, fraction: float) -> np.ndarray:
    """Mean of the lowest ``int(count * fraction)`` (at least 1) heights per segment (0 if empty)."""
    # counting sort by segment, then a selection among each segment's heights only
    count = np.zeros(segments + 1, dtype=np.int64)
    for i in range(len(z)):
        count[segment[i] + 1] += 1
    for s in range(segments):
        count[s + 1] += count[s]
    grouped = np.empty(len(z))
    fill = count[:-1].copy()
    for i in range(len(z)):
        grouped[fill[segment[i]]] = z[i]
        fill[segment[i]] += 1
    out = np.zeros(segments)
    for s in range(segments):
        n = count[s + 1] - count[s]
        if n:
            # the lowest k by selection, not a full sort: 4-5x faster on a 360 deg HDL-64E scan (160 segments)
            k = max(1, int(n * fraction))
            out[s] = np.partition(grouped[count[s] : count[s + 1]], k - 1)[:k].mean()
    return out


def polar_segments_reference(xyz: np.ndarray, azimuth: np.ndarray, ring_edges: np.ndarray, sectors: int) -> np.ndarray:
    """numpy reference of :func:`polar_segments`."""
    squared_edges = ring_edges * ring_edges
    ring = np.searchsorted(squared_edges, xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1], side="right") - 1
    sector = np.minimum(((azimuth + np.pi) / (2 * np.pi) * sectors).astype(np.int64), sectors - 1)
    return np.asarray(ring * sectors + sector)


@nb.njit(cache=True, nogil=True)
def polar_segments(xyz: np.ndarray, azimuth: np.ndarray, ring_edges: np.ndarray, sectors: int) -> np.ndarray:
    """Segment id per point, ring-major: the ring is the last of the increasing ``ring_edges`` (from 0) whose square
    is at most the point's squared horizontal range, the sector the ``azimuth``'s (``arctan2(y, x)``, computed by
    numpy's vectorised loop beforehand) ``sectors``-th of the turn from -pi.
    """
    out = np.empty(len(xyz), dtype=np.int64)
    squared_edges = ring_edges * ring_edges
    last = len(ring_edges) - 1
    for i in range(len(xyz)):
        reach = xyz[i, 0] * xyz[i, 0] + xyz[i, 1] * xyz[i, 1]
        ring = last
        while ring > 0 and squared_edges[ring] > reach:  # a handful of edges: a scan down from the outermost
            ring -= 1
        sector = min(int((azimuth[i] + np.pi) / (2 * np.pi) * sectors), sectors - 1)
        out[i] = ring * sectors + sector
    return out
