"""Oriented boxes around clusters: search-based rectangle fitting (LATTE, after Zhang et al., IV 2017),
with PCA and minimum-area rectangles as alternatives. The height comes from the points' z range.

A rectangle is found in the top view (x, y): a heading ``theta`` and the extents of the points
along ``e1 = (cos theta, sin theta)`` and ``e2 = (-sin theta, cos theta)``. Only a quarter turn of
headings is distinct (the rectangle's edges are the same for theta and theta + pi/2).

Search-based fitting scores each heading of a quarter turn by how well the points hug two
perpendicular edges. The points are projected on e1 and e2; along each axis the edge they are
closer to *as a whole* (min or max of the projections, smaller L2 norm of the distances) is the
visible one; every point then belongs to whichever of the two visible edges is nearer. The
variance criterion prefers headings where the distances within each group vary least: Zhang et al.
maximise ``-Var(E1) - Var(E2)``. The thesis prints the cost with a minus sign inside an arg-min,
which maximises the variance; on the real KITTI boxes the minimising sign is the one that fits (see
docs/instances.md), so the variance is minimised here.

The search runs the costs in a numba kernel (kernels/box_headings.py, :func:`heading_costs`);
:func:`heading_costs_reference` is the plain numpy version it is tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from perception_ws.boxes import Box3D
from perception_ws.errors import CloudFormatError, PerceptionError
from perception_ws.instances.config import BoxMethod
from perception_ws.instances.inputs import as_xyz
from perception_ws.kernels.box_headings import AREA, CLOSENESS, VARIANCE, heading_costs_kernel, search_rectangles

Criterion = Literal["variance", "closeness", "area"]
_CRITERION_CODES = {"variance": VARIANCE, "closeness": CLOSENESS, "area": AREA}
#: closeness criterion: distances below this (m) count as this, so one point on an edge cannot dominate.
_CLOSENESS_FLOOR_M = 0.01
#: (points x headings) evaluated at once, to bound memory on large clusters.
_CHUNK_ELEMENTS = 1 << 18


def _edge_distances(c: np.ndarray) -> np.ndarray:
    """(n, T) projections -> distances (>= 0) of every point to the visible edge of each heading."""
    to_max = c.max(axis=0) - c
    to_min = c - c.min(axis=0)
    use_max = np.einsum("nt,nt->t", to_max, to_max) < np.einsum("nt,nt->t", to_min, to_min)
    return np.asarray(np.where(use_max, to_max, to_min))


def _masked_variance(d: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Population variance per column of the masked entries (0 for an empty column)."""
    count = mask.sum(axis=0)
    safe = np.maximum(count, 1)
    mean = np.where(mask, d, 0.0).sum(axis=0) / safe
    mean_sq = np.where(mask, d * d, 0.0).sum(axis=0) / safe
    return np.where(count > 0, mean_sq - mean * mean, 0.0)


def heading_costs_reference(
    xy: np.ndarray, thetas: np.ndarray, criterion: Criterion = "variance", maximize_variance: bool = False
) -> np.ndarray:
    """Cost (lower is better) of each heading in ``thetas`` (T,) for points ``xy`` (n, 2): the plain numpy
    reference of :func:`heading_costs` (the tests hold the kernel to it).

    ``maximize_variance`` flips the sign of the variance criterion, as printed in the thesis; it is
    there to compare the two on real boxes.
    """
    xy = xy - xy.mean(axis=0)
    cos, sin = np.cos(thetas), np.sin(thetas)
    costs = np.empty(len(thetas))
    step = max(1, _CHUNK_ELEMENTS // max(len(xy), 1))
    for lo in range(0, len(thetas), step):
        sl = slice(lo, lo + step)
        c1 = np.outer(xy[:, 0], cos[sl]) + np.outer(xy[:, 1], sin[sl])
        c2 = -np.outer(xy[:, 0], sin[sl]) + np.outer(xy[:, 1], cos[sl])
        if criterion == "area":
            costs[sl] = np.ptp(c1, axis=0) * np.ptp(c2, axis=0)
            continue
        d1, d2 = _edge_distances(c1), _edge_distances(c2)
        if criterion == "closeness":
            costs[sl] = -(1.0 / np.maximum(np.minimum(d1, d2), _CLOSENESS_FLOOR_M)).sum(axis=0)
        else:
            # a partition (ties go to the first edge), as in the thesis: U and V cover every point
            variance = _masked_variance(d1, d1 <= d2) + _masked_variance(d2, d2 < d1)
            costs[sl] = -variance if maximize_variance else variance
    return costs


def heading_costs(
    xy: np.ndarray, thetas: np.ndarray, criterion: Criterion = "variance", maximize_variance: bool = False
) -> np.ndarray:
    """:func:`heading_costs_reference`, computed by a numba kernel (several times faster, no matrices)."""
    if criterion not in _CRITERION_CODES:
        raise PerceptionError(f"unknown heading criterion {criterion!r}; expected one of {list(_CRITERION_CODES)}")
    pts = np.ascontiguousarray(xy, dtype=np.float64)
    if len(pts) == 0:
        return np.zeros(len(thetas))
    angles = np.asarray(thetas, dtype=np.float64)
    sign = -1.0 if maximize_variance else 1.0
    return heading_costs_kernel(
        pts, np.cos(angles), np.sin(angles), _CRITERION_CODES[criterion], sign, _CLOSENESS_FLOOR_M
    )


HeadingCosts = Callable[[np.ndarray, np.ndarray, Criterion, bool], np.ndarray]


#: the heading search looks at no more than this many points (evenly spread over the input): the
#: heading of a car is as well defined by 512 of its points as by thousands (measured on ray-cast
#: cars: same mean IoU to 0.003), and the cost grows with points x headings.
SEARCH_MAX_POINTS = 512


def _search_subset(count: int) -> np.ndarray | None:
    """Indices of the points the heading search looks at among ``count`` (None: all of them)."""
    if count <= SEARCH_MAX_POINTS:
        return None
    return np.linspace(0, count - 1, SEARCH_MAX_POINTS).astype(np.int64)


def _headings(steps: int) -> np.ndarray:
    """The search's grid: ``steps`` headings over a quarter turn, from 0."""
    return np.arange(steps) * (np.pi / 2 / steps)


def heading_search(
    xy: np.ndarray,
    steps: int = 90,
    criterion: Criterion = "variance",
    maximize_variance: bool = False,
    costs: HeadingCosts = heading_costs,
) -> float:
    """The best heading in [0, pi/2) on a grid of ``steps`` headings (``costs``: the kernel, or the reference)."""
    subset = _search_subset(len(xy))
    if subset is not None:
        xy = xy[subset]
    thetas = _headings(steps)
    return float(thetas[np.argmin(costs(xy, thetas, criterion, maximize_variance))])


def heading_pca(xy: np.ndarray) -> float:
    """Direction of the largest spread (principal axis of the top-view covariance)."""
    if len(xy) < 2:
        return 0.0
    _, vectors = np.linalg.eigh(np.cov(xy, rowvar=False))
    major = vectors[:, -1]
    return float(np.arctan2(major[1], major[0]))


def heading_min_area(xy: np.ndarray) -> float:
    """Heading of the minimum-area enclosing rectangle: one of its edges lies on a convex hull edge."""
    try:
        hull = xy[ConvexHull(xy).vertices]
    except (QhullError, ValueError):
        return heading_pca(xy)  # fewer than 3 points, or all on one line: the line's direction
    edges = np.roll(hull, -1, axis=0) - hull
    thetas = np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2)
    cos, sin = np.cos(thetas), np.sin(thetas)
    c1 = np.outer(hull[:, 0], cos) + np.outer(hull[:, 1], sin)
    c2 = -np.outer(hull[:, 0], sin) + np.outer(hull[:, 1], cos)
    return float(thetas[np.argmin(np.ptp(c1, axis=0) * np.ptp(c2, axis=0))])


def rectangle_box(xyz: np.ndarray, theta: float) -> Box3D:
    """The box of heading ``theta`` that encloses the points; length is the longer side, yaw in [-pi/2, pi/2)."""
    e1 = np.array([np.cos(theta), np.sin(theta)])
    e2 = np.array([-np.sin(theta), np.cos(theta)])
    c1, c2 = xyz[:, :2] @ e1, xyz[:, :2] @ e2
    lo1, hi1, lo2, hi2 = c1.min(), c1.max(), c2.min(), c2.max()
    centre_xy = (lo1 + hi1) / 2 * e1 + (lo2 + hi2) / 2 * e2
    zmin, zmax = float(xyz[:, 2].min()), float(xyz[:, 2].max())
    along, across = hi1 - lo1, hi2 - lo2
    yaw = theta if along >= across else theta + np.pi / 2
    yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2
    return Box3D(
        center=np.array([centre_xy[0], centre_xy[1], (zmin + zmax) / 2]),
        size=np.array([max(along, across), min(along, across), zmax - zmin]),
        yaw=yaw,
        num_points=len(xyz),
    )


def fit_box(
    xyz: np.ndarray, method: BoxMethod = "search", heading_steps: int = 90, criterion: Criterion = "variance"
) -> Box3D:
    """An oriented Box3D around the points (N >= 1, 3) of one object.

    ``method``: "search" (LATTE's search-based rectangle fit with ``criterion``), "pca" or
    "min_area". The yaw is only known modulo pi (points do not tell front from back).
    """
    pts = as_xyz(xyz, "box fitting input")
    if len(pts) == 0:
        raise CloudFormatError("box fitting input: no points; a box needs at least one point")
    xy = pts[:, :2]
    if method == "search":
        if heading_steps < 1:
            raise PerceptionError(f"box fitting heading_steps must be >= 1; got {heading_steps}")
        theta = heading_search(xy, heading_steps, criterion)
    elif method == "pca":
        theta = heading_pca(xy)
    elif method == "min_area":
        theta = heading_min_area(xy)
    else:
        raise PerceptionError(f"unknown box fitting method {method!r}; expected 'search', 'pca' or 'min_area'")
    return rectangle_box(pts, theta)


def fit_boxes(xyz: np.ndarray, groups: list[np.ndarray], heading_steps: int = 90) -> list[Box3D]:
    """``fit_box(xyz[group], "search", heading_steps)`` for every group of point indices (each non-empty), in one
    numba call (kernels/box_headings.py ``search_rectangles``): a scan's objects without a Python step per object.
    The boxes equal ``fit_box``'s to float rounding (the tests hold them to it).
    """
    if heading_steps < 1:
        raise PerceptionError(f"box fitting heading_steps must be >= 1; got {heading_steps}")
    if not groups:
        return []
    pts = np.ascontiguousarray(xyz, dtype=np.float64)
    searched = []
    for group in groups:
        subset = _search_subset(len(group))
        searched.append(group if subset is None else group[subset])
    member_starts = np.concatenate([[0], np.cumsum([len(g) for g in groups])])
    searched_starts = np.concatenate([[0], np.cumsum([len(g) for g in searched])])
    thetas = _headings(heading_steps)
    rows = search_rectangles(
        pts,
        np.concatenate(groups).astype(np.int64, copy=False),
        member_starts,
        np.concatenate(searched).astype(np.int64, copy=False),
        searched_starts,
        thetas,
        np.cos(thetas),
        np.sin(thetas),
        VARIANCE,
        1.0,
        _CLOSENESS_FLOOR_M,
    )
    return [
        Box3D(center=row[:3], size=row[3:6], yaw=row[6], num_points=len(group))
        for row, group in zip(rows, groups, strict=True)
    ]
