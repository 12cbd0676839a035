"""The nearest pixel owner in 3D of every hidden point (labels back to points, projection.py): numba beside the
plain k-d tree reference.

A point hidden behind a nearer one in its pixel takes the label of the nearest pixel owner in 3D. The reference
builds a k-d tree over every owner (~105k on a 360 deg HDL-64E scan; the build is most of its cost). The fast
path searches the range image itself, and stays exact by bounding where a closer owner can be:

1. a first distance ``d``: the nearest owner among the point's own pixel and its 8 neighbours (the own pixel
   always has one: the point that hid it);
2. any owner ``q`` closer than ``d`` to ``p`` is seen from the sensor within the angle ``asin(d / |p|)`` of
   ``p`` (the distance from ``p`` to the ray through ``q`` is ``|p| sin(angle)``), so its elevation is within
   that angle of ``p``'s, and, in the ground plane, its azimuth within ``asin(d / rho_p)`` (``rho`` the
   horizontal range). Rows are kept when the elevations of their owners in this scan (an interval per row,
   measured, so any row rule is covered) reach that band, columns when they lie within the azimuth bound (the
   columns' equal bins, plus a column of margin for rounding);
3. every owner in those rows x columns is compared; a point too close to the sensor's axis for the bounds
   (``d >= rho_p``) searches every owner. A point whose search visits more than :data:`SEARCH_BUDGET` pixels (no
   owner anywhere near it) is answered by the reference instead, so no cloud makes the search scan the whole image
   for many points.

Equal distances are the only difference from the reference: the first owner found wins here, the tree's own
choice there (seen only where coordinates are rounded, e.g. millimetre PCDs).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from scipy.spatial import cKDTree

#: pixels one hidden point may visit before the k-d tree takes it over: a real scan's points need a few dozen; a
#: point with no owner anywhere near it (a cloud built to be sparse) would otherwise scan the whole image.
SEARCH_BUDGET = 20_000


def nearest_owners_reference(xyz: np.ndarray, hidden: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Flat pixel (row * W + col) of the nearest owner in 3D of each ``hidden`` point: a k-d tree over the owners."""
    flat = owner.reshape(-1)
    owned_pixels = np.flatnonzero(flat >= 0)
    # an unbalanced, uncompacted tree: the same exact nearest owner, built in about half the time
    tree = cKDTree(xyz[flat[owned_pixels]], balanced_tree=False, compact_nodes=False)
    _, nearest = tree.query(xyz[hidden], k=1)
    return np.asarray(owned_pixels[nearest], dtype=np.int64)


@nb.njit(cache=True, nogil=True)
def _row_tan_bounds(xyz: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the smallest and largest ``tan(elevation) = z / rho`` of its owners (+inf / -inf: no owner)."""
    height, width = owner.shape
    low = np.full(height, np.inf)
    high = np.full(height, -np.inf)
    for r in range(height):
        for c in range(width):
            o = owner[r, c]
            if o >= 0:
                x, y, z = float(xyz[o, 0]), float(xyz[o, 1]), float(xyz[o, 2])
                rho = math.sqrt(x * x + y * y)
                t = z / rho if rho > 0.0 else (np.inf if z > 0.0 else -np.inf)
                low[r] = min(low[r], t)
                high[r] = max(high[r], t)
    return low, high


def nearest_owners(
    xyz: np.ndarray, hidden: np.ndarray, pixels: np.ndarray, owner: np.ndarray, span_rad: float
) -> np.ndarray:
    """Flat pixel of the nearest owner in 3D of each ``hidden`` point (its own flat pixel in ``pixels``), by the
    bounded image search of the module doc; ``span_rad``: the image's field of view (2 pi: columns wrap around).
    """
    points = np.ascontiguousarray(xyz, dtype=np.float32)
    hidden = np.ascontiguousarray(hidden, dtype=np.int64)
    low, high = _row_tan_bounds(points, owner)
    wrap = span_rad >= 2.0 * math.pi - 1e-9
    pitch = span_rad / owner.shape[1]
    found = _nearest_owners(points, hidden, pixels.astype(np.int64), owner, low, high, pitch, wrap, SEARCH_BUDGET)
    over = found < 0  # points whose search outgrew its budget (no owners near them): the tree answers those
    if over.any():
        found[over] = nearest_owners_reference(points, hidden[over], owner)
    return found


@nb.njit(cache=True, nogil=True, inline="always")
def _distance2(xyz: np.ndarray, a: int, b: int) -> float:
    dx = float(xyz[a, 0]) - float(xyz[b, 0])
    dy = float(xyz[a, 1]) - float(xyz[b, 1])
    dz = float(xyz[a, 2]) - float(xyz[b, 2])
    return dx * dx + dy * dy + dz * dz


@nb.njit(cache=True, nogil=True)
def _search_bounds(best_d2: float, x: float, y: float, z: float, pitch: float, width: int) -> tuple[float, float, int]:
    """(lowest tan(elevation), highest, columns either side) where an owner closer than sqrt(best_d2) can be."""
    rho = math.sqrt(x * x + y * y)
    d = math.sqrt(best_d2) * (1.0 + 1e-9) + 1e-12  # a hair wider than found: rounding never excludes a tie
    if d >= rho:  # near the sensor's axis: no useful bound, every owner
        return -np.inf, np.inf, width
    angle = math.asin(min(1.0, d / math.sqrt(rho * rho + z * z)))
    elevation = math.atan2(z, rho)
    low = math.tan(elevation - angle) if elevation - angle > -0.5 * math.pi else -np.inf
    high = math.tan(elevation + angle) if elevation + angle < 0.5 * math.pi else np.inf
    return low, high, int(math.asin(d / rho) / pitch) + 2  # floor of the column bound, + a column for rounding


@nb.njit(cache=True, nogil=True)
def _rows_in_band(row_low: np.ndarray, row_high: np.ndarray, low: float, high: float, band: np.ndarray) -> int:
    """Writes into ``band`` the rows with an owner whose tan(elevation) may lie in [low, high]; returns how many."""
    count = 0
    for r in range(len(row_low)):
        if row_high[r] >= low and row_low[r] <= high:
            band[count] = r
            count += 1
    return count


@nb.njit(cache=True, nogil=True)
def _nearest_owners(
    xyz: np.ndarray,
    hidden: np.ndarray,
    pixels: np.ndarray,
    owner: np.ndarray,
    row_low: np.ndarray,
    row_high: np.ndarray,
    pitch: float,
    wrap: bool,
    budget: int,
) -> np.ndarray:
    height, width = owner.shape
    out = np.empty(len(hidden), dtype=np.int64)
    band = np.empty(height, dtype=np.int64)  # the rows whose owners reach the current elevation band
    for i in range(len(hidden)):
        p = hidden[i]
        row, col = pixels[i] // width, pixels[i] % width
        best, best_d2 = -1, np.inf
        for dr in range(-1, 2):  # step 1: the own pixel and its 8 neighbours
            r = row + dr
            if r < 0 or r >= height:
                continue
            for dc in range(-1, 2):
                c = col + dc
                if wrap:
                    c %= width
                elif c < 0 or c >= width:
                    continue
                o = owner[r, c]
                if o >= 0:
                    d2 = _distance2(xyz, p, o)
                    if d2 < best_d2:
                        best, best_d2 = r * width + c, d2
        x, y, z = float(xyz[p, 0]), float(xyz[p, 1]), float(xyz[p, 2])
        low, high, reach = _search_bounds(best_d2, x, y, z, pitch, width)
        rows = _rows_in_band(row_low, row_high, low, high, band)
        # columns outward from the own one, the bounds tightened at every closer owner: the search ends at the
        # first offset beyond them
        k, visited = 0, 0
        while k <= reach and (not wrap or 2 * k - 1 < width):
            visited += 2 * rows
            if visited > budget:
                best = -1  # left to the caller's k-d tree
                break
            changed = False
            for side in range(2 if k else 1):
                c = col - k if side else col + k
                if wrap:
                    c %= width
                elif c < 0 or c >= width:
                    continue
                if wrap and side and 2 * k == width:
                    continue  # the column opposite the own one, already seen from the other side
                for j in range(rows):
                    r = band[j]
                    o = owner[r, c]
                    if o >= 0:
                        d2 = _distance2(xyz, p, o)
                        if d2 < best_d2:  # a closer owner: tighter bounds (the band shrinks from the next column)
                            best, best_d2 = r * width + c, d2
                            low, high, reach = _search_bounds(best_d2, x, y, z, pitch, width)
                            changed = True
            if changed:
                rows = _rows_in_band(row_low, row_high, low, high, band)
            k += 1
        out[i] = best
    return out
