"""Range-image projection hot loops: a numba fast path beside a plain numpy reference.

Both versions take the coordinates as float32/float64 1-D arrays (strided views of a structured
cloud are fine), do all arithmetic in float64, and give identical results (tests check this on
real scans). What they compute, per point:

* validity: x, y, z finite and range ``r = sqrt(x² + y² + z²) > 0``;
* row (:class:`RowRule`): given (ring field), from the beam table, or uniform bins. The beam-table
  row is the beam whose ray passes vertically closest to the point at the point's horizontal
  distance ``rho``: ``argmin_i |z - (h_i + rho * tan(e_i))|`` (``e_i`` elevation, ``h_i`` height of
  beam i's origin), ties to the upper row. Uniform bins: nearest of ``height`` equally spaced
  elevations from the top to the bottom beam (``theta = atan2(z, rho)``), clipped to the image;
* column (:class:`ColumnRule`): ``phi = atan2(y, x)``; ``d = phi - right`` (plus 2π when negative),
  in view when ``d <= span``; column ``width - 1 - min(floor(d / dphi), width - 1)``, so column 0 is
  the left edge of the field of view and columns grow clockwise seen from above;
* pixel conflicts: the nearest point (smallest range) wins, ties to the lower point index.

The fast path avoids the two costly operations of the reference. The beam-table argmin becomes a
search for the first beam line at or below the point (the lines keep their row order beyond a small
``rho``, see :func:`beam_lines_sorted_beyond`; the previous point's row is tried before a binary
search), then an exact comparison of that line and the one above. ``atan2`` becomes a polynomial
accurate to 1e-7 rad; the rare points whose column it cannot decide (within 1e-6 rad of a column
edge) get the exact ``atan2``. It runs in two passes: range and column of every point (branch-free,
so it vectorises), then row and the nearest-wins scatter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba as nb
import numpy as np

ROWS_GIVEN, ROWS_TABLE, ROWS_UNIFORM = 0, 1, 2
#: channels of the image the gather functions fill: x, y, z, intensity, range, mask.
IMAGE_CHANNELS = 6


@dataclass(frozen=True)
class RowRule:
    """How a point's row is chosen; build one with :meth:`given`, :meth:`table` or :meth:`uniform`."""

    kind: int
    #: ROWS_GIVEN: the row of every point (int32, N).
    given_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    #: ROWS_TABLE: tan(elevation) and origin height of each beam, row order (top beam first).
    tan_elevations: np.ndarray = field(default_factory=lambda: np.empty(0))
    beam_heights: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: ROWS_TABLE: beyond this horizontal distance the beam lines never change their row order.
    sorted_beyond: float = 0.0
    #: ROWS_UNIFORM: elevation of row 0 and the spacing of rows (radians).
    top_rad: float = 0.0
    step_rad: float = 0.0

    @classmethod
    def given(cls, rows: np.ndarray) -> RowRule:
        return cls(ROWS_GIVEN, given_rows=np.ascontiguousarray(rows, dtype=np.int32))

    @classmethod
    def table(cls, elevations_rad: np.ndarray, beam_heights: np.ndarray) -> RowRule:
        tan_e = np.ascontiguousarray(np.tan(np.asarray(elevations_rad, dtype=np.float64)))
        heights = np.ascontiguousarray(beam_heights, dtype=np.float64)
        return cls(
            ROWS_TABLE,
            tan_elevations=tan_e,
            beam_heights=heights,
            sorted_beyond=beam_lines_sorted_beyond(tan_e, heights),
        )

    @classmethod
    def uniform(cls, top_rad: float, bottom_rad: float, height: int) -> RowRule:
        step = (top_rad - bottom_rad) / (height - 1) if height > 1 else 1.0
        return cls(ROWS_UNIFORM, top_rad=float(top_rad), step_rad=float(step))


@dataclass(frozen=True)
class ColumnRule:
    """Azimuth bins: ``width`` columns over ``span_rad`` clockwise from the left edge.

    ``right_rad`` (the right edge, in [-π, π)) and ``span_rad`` (0, 2π] describe the same field of
    view as (left, right) = (right + span, right).
    """

    right_rad: float
    span_rad: float
    width: int


@dataclass(frozen=True)
class Projected:
    """Per-point rows/columns (-1 where not in view), ranges (0 where invalid) and pixel owners."""

    rows: np.ndarray
    cols: np.ndarray
    ranges: np.ndarray
    #: (H, W) index of the point that won each pixel, -1 where empty.
    owner: np.ndarray


def beam_lines_sorted_beyond(tan_elevations: np.ndarray, beam_heights: np.ndarray) -> float:
    """A horizontal distance beyond which the beam lines ``z_i(rho) = h_i + rho tan(e_i)`` keep row order.

    Two beams i above j (tan e_i > tan e_j) only swap when the lower one starts higher
    (h_j > h_i); they cross at ``rho = (h_j - h_i) / (tan e_i - tan e_j)``. Twice the largest crossing
    leaves a margin far above rounding; for the fitted HDL-64E it is a few centimetres, for sensors
    without beam heights zero.
    """
    t = np.asarray(tan_elevations, dtype=np.float64)
    h = np.asarray(beam_heights, dtype=np.float64)
    upper, lower = np.triu_indices(len(t), k=1)
    rises = h[lower] > h[upper]
    if not np.any(rises):
        return 0.0
    crossing = (h[lower] - h[upper])[rises] / (t[upper] - t[lower])[rises]
    return float(2.0 * crossing.max())


# -- numpy reference ---------------------------------------------------------------------------


def table_rows_reference(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, tan_e: np.ndarray, heights: np.ndarray, chunk: int = 16384
) -> np.ndarray:
    """Beam-table rows by brute force: argmin over all beams (float64, ties to the upper row)."""
    rows = np.empty(len(x), dtype=np.int32)
    for start in range(0, len(x), chunk):
        xs = np.asarray(x[start : start + chunk], dtype=np.float64)
        ys = np.asarray(y[start : start + chunk], dtype=np.float64)
        zs = np.asarray(z[start : start + chunk], dtype=np.float64)
        rho = np.sqrt(xs * xs + ys * ys)
        gap = np.abs(zs[:, None] - (heights[None, :] + rho[:, None] * tan_e[None, :]))
        rows[start : start + chunk] = np.argmin(gap, axis=1)
    return rows


def project_reference(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, rule: RowRule, columns: ColumnRule, height: int
) -> Projected:
    """The plain numpy version of :func:`project_fast` (same arguments, identical results)."""
    xs, ys, zs = (np.asarray(v, dtype=np.float64) for v in (x, y, z))
    with np.errstate(invalid="ignore", over="ignore"):
        rho2 = xs * xs + ys * ys
        ranges = np.sqrt(rho2 + zs * zs)
        rho = np.sqrt(rho2)
        valid = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(zs) & (ranges > 0)
    n = len(xs)
    rows = np.full(n, -1, dtype=np.int32)
    if rule.kind == ROWS_GIVEN:
        rows[valid] = rule.given_rows[valid]
    elif rule.kind == ROWS_TABLE:
        rows[valid] = table_rows_reference(xs[valid], ys[valid], zs[valid], rule.tan_elevations, rule.beam_heights)
    else:
        theta = np.arctan2(zs[valid], rho[valid])
        rows[valid] = np.clip(np.floor((rule.top_rad - theta) / rule.step_rad + 0.5), 0, height - 1)
    phi = np.arctan2(ys[valid], xs[valid])
    d = phi - columns.right_rad
    d = np.where(d < 0, d + 2.0 * math.pi, d)
    dphi = columns.span_rad / columns.width
    cols = np.full(n, -1, dtype=np.int32)
    col_valid = (columns.width - 1 - np.minimum(np.floor(d / dphi), columns.width - 1)).astype(np.int32)
    cols[valid] = np.where(d <= columns.span_rad, col_valid, -1)
    in_view = valid & (cols >= 0) & (rows >= 0)
    rows[~in_view] = -1
    cols[~in_view] = -1
    ranges[~valid] = 0.0
    owner = np.full(height * columns.width, -1, dtype=np.int32)
    index = np.flatnonzero(in_view)
    pixel = rows[index].astype(np.int64) * columns.width + cols[index]
    # sort by pixel, then range, then index: the first of each pixel run is the nearest point
    order = np.lexsort((index, ranges[index], pixel))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pixel[order][1:] != pixel[order][:-1]
    winners = order[first]
    owner[pixel[winners]] = index[winners]
    return Projected(rows, cols, ranges, owner.reshape(height, columns.width))


def gather_image_reference(
    owner: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, intensity: np.ndarray | None, ranges: np.ndarray
) -> np.ndarray:
    """(H, W, 6) float32 image x, y, z, intensity, range, mask from the pixel owners (empty = 0)."""
    image = np.zeros((*owner.shape, IMAGE_CHANNELS), dtype=np.float32)
    filled = owner >= 0
    who = owner[filled]
    image[filled, 0] = np.asarray(x)[who]
    image[filled, 1] = np.asarray(y)[who]
    image[filled, 2] = np.asarray(z)[who]
    if intensity is not None:
        image[filled, 3] = np.asarray(intensity)[who]
    image[filled, 4] = ranges[who]
    image[filled, 5] = 1.0
    return image


# -- numba fast path ---------------------------------------------------------------------------


def _atan_coefficients(degree: int) -> np.ndarray:
    """atan(q) ≈ q · P(q²) on [0, 1]: least squares on Chebyshev nodes (max error 4e-8 rad for degree 7)."""
    q = 0.5 + 0.5 * np.cos(np.linspace(0.0, math.pi, 4001))
    basis = np.vander(q * q, degree + 1, increasing=True) * q[:, None]
    coefficients, *_ = np.linalg.lstsq(basis, np.arctan(q), rcond=None)
    return np.ascontiguousarray(coefficients)


_ATAN_DEGREE = 7
_ATAN_COEFFICIENTS = _atan_coefficients(_ATAN_DEGREE)
#: a bound on |fast_atan2 - atan2| with a wide margin over the polynomial's 4e-8 (tests check 1e-7).
_ATAN_TOLERANCE = 1e-6
#: a column the first pass leaves to the exact atan2 of the second.
_UNDECIDED = -2


@nb.njit(cache=True, error_model="numpy")
def fast_atan2(y: float, x: float, coefficients: np.ndarray) -> float:
    """atan2 through octant reduction and a polynomial; not for x = y = 0 (callers use math.atan2)."""
    ax, ay = abs(x), abs(y)
    q = min(ax, ay) / max(ax, ay)
    q2 = q * q
    p = coefficients[_ATAN_DEGREE]
    for k in range(_ATAN_DEGREE - 1, -1, -1):
        p = p * q2 + coefficients[k]
    angle = p * q
    # selects rather than branches, so that a loop over points vectorises
    angle = 0.5 * math.pi - angle if ay > ax else angle
    angle = math.pi - angle if x < 0.0 else angle
    return math.copysign(angle, y)  # atan2 takes its sign from y, signed zeros included


@nb.njit(cache=True, error_model="numpy")
def _bin_from_right(phi: float, right: float, span: float, dphi: float, width: int) -> float:
    """Azimuth bin of ``phi`` counted from the right edge (0 .. width-1), or -1 outside the view."""
    d = phi - right
    d = d + 2.0 * math.pi if d < 0.0 else d
    return min(math.floor(d / dphi), width - 1.0) if d <= span else -1.0


@nb.njit(cache=True, error_model="numpy")
def _column_of(phi: float, right: float, span: float, width: int) -> int:
    """Column of azimuth ``phi``, or -1 outside the field of view (see the module doc)."""
    k = _bin_from_right(phi, right, span, span / width, width)
    return width - 1 - int(k) if k >= 0.0 else -1


@nb.njit(cache=True, error_model="numpy")
def _beam_gap(z: float, rho: float, tan_e: np.ndarray, heights: np.ndarray, j: int) -> float:
    return abs(z - (heights[j] + rho * tan_e[j]))


@nb.njit(cache=True, error_model="numpy")
def _first_line_at_or_below(z: float, rho: float, tan_e: np.ndarray, heights: np.ndarray, guess: int) -> int:
    """Index of the first beam line with ``h + rho tan(e) <= z`` (n if none), lines in row order.

    ``guess`` (the previous point's row) is tried first: scans are mostly stored ring by ring, so it is
    usually right and saves the binary search; the answer is the same either way.
    """
    n = tan_e.shape[0]
    if 0 <= guess < n:
        if heights[guess] + rho * tan_e[guess] > z:
            if guess + 1 == n or heights[guess + 1] + rho * tan_e[guess + 1] <= z:
                return guess + 1
        elif guess == 0 or heights[guess - 1] + rho * tan_e[guess - 1] > z:
            return guess
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if heights[mid] + rho * tan_e[mid] > z:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, error_model="numpy")
def _table_row(z: float, rho: float, tan_e: np.ndarray, heights: np.ndarray, sorted_beyond: float, guess: int) -> int:
    n = tan_e.shape[0]
    best, row = math.inf, -1
    if rho <= sorted_beyond:  # lines may cross here (a few cm from the axis at most): try them all
        for j in range(n):
            gap = _beam_gap(z, rho, tan_e, heights, j)
            if gap < best:
                best, row = gap, j
        return row
    # The lines are in row order (z decreasing), so the gaps shrink towards the first line at or below
    # z and grow again after it: the nearest line is that one or the one above. Rounding can make
    # gaps tie, and the reference takes the first of equal gaps, so walk up through the ties.
    lo = _first_line_at_or_below(z, rho, tan_e, heights, guess)
    if lo == n:
        row, best = n - 1, _beam_gap(z, rho, tan_e, heights, n - 1)
    else:
        row, best = lo, _beam_gap(z, rho, tan_e, heights, lo)
        if lo > 0:
            above = _beam_gap(z, rho, tan_e, heights, lo - 1)
            if above <= best:
                row, best = lo - 1, above
    while row > 0 and _beam_gap(z, rho, tan_e, heights, row - 1) == best:
        row -= 1
    return row


@nb.njit(cache=True, error_model="numpy")
def _ranges_and_columns(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    right: float,
    span: float,
    width: int,
    coefficients: np.ndarray,
    tolerance: float,
    ranges: np.ndarray,
    cols: np.ndarray,
) -> None:  # pragma: no cover
    """First pass, branch-free so that it vectorises: range (0 if invalid) and column (-1 if invalid or
    outside the view, _UNDECIDED where the polynomial atan2 is too close to a bin edge, or x = y = 0).
    """
    dphi = span / width
    last = width - 1.0
    for i in range(x.shape[0]):
        xv, yv, zv = np.float64(x[i]), np.float64(y[i]), np.float64(z[i])
        rho2 = xv * xv + yv * yv
        r = math.sqrt(rho2 + zv * zv)
        valid = (abs(xv) < math.inf) & (abs(yv) < math.inf) & (abs(zv) < math.inf) & (r > 0.0)
        approx = fast_atan2(yv, xv, coefficients)
        low = _bin_from_right(approx - tolerance, right, span, dphi, width)
        high = _bin_from_right(approx + tolerance, right, span, dphi, width)
        col = last - low if low >= 0.0 else -1.0
        col = col if (low == high) & (rho2 > 0.0) else float(_UNDECIDED)
        cols[i] = np.int32(col if valid else -1.0)
        ranges[i] = r if valid else 0.0


@nb.njit(cache=True, error_model="numpy")
def _rows_and_owners(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    kind: int,
    given_rows: np.ndarray,
    tan_e: np.ndarray,
    heights: np.ndarray,
    sorted_beyond: float,
    top: float,
    step: float,
    right: float,
    span: float,
    width: int,
    height: int,
    ranges: np.ndarray,
    cols: np.ndarray,
    rows: np.ndarray,
    owner: np.ndarray,
) -> None:  # pragma: no cover
    """Second pass, over the points in view: exact column where undecided, row, nearest-wins scatter."""
    guess = -1
    for i in range(x.shape[0]):
        rows[i] = -1
        col = cols[i]
        if col == -1:
            continue
        if col == _UNDECIDED:
            col = _column_of(math.atan2(np.float64(y[i]), np.float64(x[i])), right, span, width)
            cols[i] = col
            if col < 0:
                continue
        if kind == ROWS_GIVEN:
            row = given_rows[i]
        else:
            xv, yv, zv = np.float64(x[i]), np.float64(y[i]), np.float64(z[i])
            rho = math.sqrt(xv * xv + yv * yv)
            if kind == ROWS_TABLE:
                row = _table_row(zv, rho, tan_e, heights, sorted_beyond, guess)
                guess = row
            else:
                u = math.floor((top - math.atan2(zv, rho)) / step + 0.5)
                row = int(min(max(u, 0.0), height - 1.0))
        if row < 0:
            cols[i] = -1
            continue
        rows[i] = row
        pixel = row * width + col
        holder = owner[pixel]
        if holder < 0 or ranges[i] < ranges[holder]:  # strict: on a tie the lower index keeps the pixel
            owner[pixel] = i


@nb.njit(cache=True, error_model="numpy")
def _gather_kernel(
    owner: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    intensity: np.ndarray,
    has_intensity: bool,
    ranges: np.ndarray,
    image: np.ndarray,
) -> None:  # pragma: no cover
    h, w = owner.shape
    for a in range(h):
        for b in range(w):
            i = owner[a, b]
            if i < 0:
                continue
            image[a, b, 0] = x[i]
            image[a, b, 1] = y[i]
            image[a, b, 2] = z[i]
            if has_intensity:
                image[a, b, 3] = intensity[i]
            image[a, b, 4] = ranges[i]
            image[a, b, 5] = 1.0


def project_fast(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, rule: RowRule, columns: ColumnRule, height: int
) -> Projected:
    """Rows, columns, ranges and pixel owners of every point (numba; see the module doc)."""
    n = len(x)
    rows = np.empty(n, dtype=np.int32)
    cols = np.empty(n, dtype=np.int32)
    ranges = np.empty(n, dtype=np.float64)
    owner = np.full((height, columns.width), -1, dtype=np.int32)
    # contiguous copies (cheap) let the first pass vectorise; a structured cloud gives strided views
    x, y, z = (np.ascontiguousarray(v) for v in (x, y, z))
    given = rule.given_rows if rule.kind == ROWS_GIVEN else np.zeros(1, dtype=np.int32)
    # two passes: fused into one loop, the column and row code ran ~2x slower than apart
    _ranges_and_columns(
        x, y, z, columns.right_rad, columns.span_rad, columns.width, _ATAN_COEFFICIENTS, _ATAN_TOLERANCE, ranges, cols
    )
    _rows_and_owners(
        x,
        y,
        z,
        rule.kind,
        given,
        rule.tan_elevations,
        rule.beam_heights,
        rule.sorted_beyond,
        rule.top_rad,
        rule.step_rad,
        columns.right_rad,
        columns.span_rad,
        columns.width,
        height,
        ranges,
        cols,
        rows,
        owner.reshape(-1),
    )
    return Projected(rows, cols, ranges, owner)


def gather_image_fast(
    owner: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, intensity: np.ndarray | None, ranges: np.ndarray
) -> np.ndarray:
    """Numba version of :func:`gather_image_reference`."""
    image = np.zeros((*owner.shape, IMAGE_CHANNELS), dtype=np.float32)
    has_intensity = intensity is not None
    values = intensity if intensity is not None else np.zeros(1, dtype=np.float32)
    _gather_kernel(owner, x, y, z, values, has_intensity, ranges, image)
    return image
