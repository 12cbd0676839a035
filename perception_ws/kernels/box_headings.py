"""Heading costs of the search-based rectangle fit (numba); the numpy reference is
:func:`perception_ws.instances.box_fit.heading_costs_reference`, which documents the criteria.

The reference builds (points x headings) matrices; this kernel streams the points three times per
call with one accumulator per heading, headings in the inner loop (independent lanes, so LLVM
vectorises them without reordering any sum):

1. the extents (min, max) of the projections on e1 and e2;
2. the squared distances to either edge, to pick the visible edge of each axis;
3. per criterion: the variance of each edge's group, or the closeness sum (the area needs only 1).

:func:`search_rectangles` runs the whole search-based fit (heading search, then the enclosing rectangle) for
every object of a scan in one call; its reference is ``box_fit.fit_box`` per object.

Projections are recomputed in every pass by one inlined function (:func:`_project`), so they are the
same numbers each time. Sums run over the points in order, as numpy sums axis 0 of a C-ordered matrix, so the
costs match the reference to rounding (the visible-edge sums of squares may round differently).
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: criterion codes of :func:`heading_costs_kernel` (names as in box_fit.Criterion).
VARIANCE, CLOSENESS, AREA = 0, 1, 2


@nb.njit(cache=True, nogil=True)
def heading_costs_kernel(
    xy: np.ndarray, cos: np.ndarray, sin: np.ndarray, criterion: int, variance_sign: float, floor: float
) -> np.ndarray:
    """Cost (lower is better) per heading for points ``xy`` (n >= 1, 2) and headings given by their
    ``cos`` and ``sin`` (T,); ``criterion`` one of VARIANCE, CLOSENESS, AREA; ``variance_sign`` +1
    (minimise the variance) or -1; ``floor``: the closeness criterion's smallest distance.
    """
    n = xy.shape[0]
    steps = cos.shape[0]
    # centre first (as the reference does): projections of far-away clusters keep their precision
    mean_x = 0.0
    mean_y = 0.0
    for i in range(n):
        mean_x += xy[i, 0]
        mean_y += xy[i, 1]
    mean_x /= n
    mean_y /= n
    x = np.empty(n)
    y = np.empty(n)
    for i in range(n):
        x[i] = xy[i, 0] - mean_x
        y[i] = xy[i, 1] - mean_y

    lo1 = np.full(steps, np.inf)
    hi1 = np.full(steps, -np.inf)
    lo2 = np.full(steps, np.inf)
    hi2 = np.full(steps, -np.inf)
    for i in range(n):
        xi, yi = x[i], y[i]
        for t in range(steps):
            c1, c2 = _project(xi, yi, cos[t], sin[t])
            lo1[t] = c1 if c1 < lo1[t] else lo1[t]
            hi1[t] = c1 if c1 > hi1[t] else hi1[t]
            lo2[t] = c2 if c2 < lo2[t] else lo2[t]
            hi2[t] = c2 if c2 > hi2[t] else hi2[t]
    costs = np.empty(steps)
    if criterion == AREA:
        for t in range(steps):
            costs[t] = (hi1[t] - lo1[t]) * (hi2[t] - lo2[t])
        return costs

    # pass 2: the visible edge of each axis is the one the points are closer to as a whole
    to_max1 = np.zeros(steps)
    to_min1 = np.zeros(steps)
    to_max2 = np.zeros(steps)
    to_min2 = np.zeros(steps)
    for i in range(n):
        xi, yi = x[i], y[i]
        for t in range(steps):
            c1, c2 = _project(xi, yi, cos[t], sin[t])
            a = hi1[t] - c1
            b = c1 - lo1[t]
            to_max1[t] += a * a
            to_min1[t] += b * b
            a = hi2[t] - c2
            b = c2 - lo2[t]
            to_max2[t] += a * a
            to_min2[t] += b * b
    use_max1 = to_max1 < to_min1
    use_max2 = to_max2 < to_min2

    # pass 3: each point belongs to the nearer visible edge (ties to the first)
    count1 = np.zeros(steps)
    sum1 = np.zeros(steps)
    sq1 = np.zeros(steps)
    sum2 = np.zeros(steps)
    sq2 = np.zeros(steps)
    for i in range(n):
        xi, yi = x[i], y[i]
        for t in range(steps):
            c1, c2 = _project(xi, yi, cos[t], sin[t])
            d1 = hi1[t] - c1 if use_max1[t] else c1 - lo1[t]
            d2 = hi2[t] - c2 if use_max2[t] else c2 - lo2[t]
            if criterion == CLOSENESS:
                nearest = d1 if d1 < d2 else d2
                sum1[t] += 1.0 / (nearest if nearest > floor else floor)
            else:
                first = d1 <= d2
                count1[t] += 1.0 if first else 0.0
                sum1[t] += d1 if first else 0.0
                sq1[t] += d1 * d1 if first else 0.0
                sum2[t] += 0.0 if first else d2
                sq2[t] += 0.0 if first else d2 * d2
    for t in range(steps):
        if criterion == CLOSENESS:
            costs[t] = -sum1[t]
        else:
            costs[t] = variance_sign * (
                _variance(count1[t], sum1[t], sq1[t]) + _variance(n - count1[t], sum2[t], sq2[t])
            )
    return costs


@nb.njit(cache=True, nogil=True, inline="always")
def _project(x: float, y: float, cos: float, sin: float) -> tuple[float, float]:
    """The point's coordinates along e1 and e2 of a heading: one expression for every pass, so each pass
    gets the same numbers.
    """
    return x * cos + y * sin, -(x * sin) + y * cos


@nb.njit(cache=True, nogil=True, inline="always")
def _variance(count: float, total: float, total_sq: float) -> float:
    """Population variance from a count and the sums of values and squares (0 for no values)."""
    if count <= 0:
        return 0.0
    mean = total / count
    return total_sq / count - mean * mean


@nb.njit(cache=True, nogil=True)
def search_rectangles(
    xyz: np.ndarray,
    members: np.ndarray,
    member_starts: np.ndarray,
    searched: np.ndarray,
    searched_starts: np.ndarray,
    thetas: np.ndarray,
    cos: np.ndarray,
    sin: np.ndarray,
    criterion: int,
    variance_sign: float,
    floor: float,
) -> np.ndarray:
    """Per object g (points ``members[member_starts[g]:member_starts[g + 1]]`` of ``xyz``, of which the heading
    search looks at ``searched[searched_starts[g]:searched_starts[g + 1]]``): (G, 7) rows centre x, y, z,
    length, width, height, yaw of the box ``box_fit.rectangle_box`` fits at the best heading of ``thetas``.
    """
    groups = len(member_starts) - 1
    out = np.empty((groups, 7))
    for g in range(groups):
        picked = searched[searched_starts[g] : searched_starts[g + 1]]
        xy = np.empty((len(picked), 2))
        for i in range(len(picked)):
            xy[i, 0] = xyz[picked[i], 0]
            xy[i, 1] = xyz[picked[i], 1]
        theta = thetas[np.argmin(heading_costs_kernel(xy, cos, sin, criterion, variance_sign, floor))]
        e1x, e1y = np.cos(theta), np.sin(theta)
        lo1, hi1, lo2, hi2 = np.inf, -np.inf, np.inf, -np.inf
        low, high = np.inf, -np.inf
        for i in members[member_starts[g] : member_starts[g + 1]]:
            x, y, z = xyz[i, 0], xyz[i, 1], xyz[i, 2]
            c1 = x * e1x + y * e1y
            c2 = x * -e1y + y * e1x
            lo1, hi1 = min(lo1, c1), max(hi1, c1)
            lo2, hi2 = min(lo2, c2), max(hi2, c2)
            low, high = min(low, z), max(high, z)
        mid1, mid2 = (lo1 + hi1) / 2, (lo2 + hi2) / 2
        along, across = hi1 - lo1, hi2 - lo2
        yaw = theta if along >= across else theta + np.pi / 2
        out[g, 0] = mid1 * e1x + mid2 * -e1y
        out[g, 1] = mid1 * e1y + mid2 * e1x
        out[g, 2] = (low + high) / 2
        out[g, 3] = max(along, across)
        out[g, 4] = min(along, across)
        out[g, 5] = high - low
        out[g, 6] = (yaw + np.pi / 2) % np.pi - np.pi / 2
    return out
