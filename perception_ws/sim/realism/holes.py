"""Which empty pixels of a real range image are sensor dropout, not rays that met nothing (docs/algorithms.md §5).

An empty pixel of a real sweep is either a ray that hit nothing within range (sky; half of a VLP-16's
beams point upward) or a return the sensor lost although a surface was there. The simulator already
leaves the first kind empty, so only the second kind belongs in the dropout it adds. A real scan does not
say which kind a pixel is; this module decides by the pixel's neighbours:

* a return was *expected* at a pixel when its neighbours above and below in the same column both hold
  returns, or its neighbours left and right in the same row both do, and the two neighbours' ranges agree
  within :data:`RANGE_AGREEMENT` of the nearer one (a gap between a near and a far object, such as the edge
  of a car against a building, is not a surface the ray must have hit);
* left and right neighbours are taken among the frame's *firing columns*, the columns where any beam holds
  a return: a sensor whose firing step is wider than a column leaves whole columns empty, and those are
  not returns it lost. The two must lie within :data:`NEIGHBOUR_SPAN_DEG` of each other in azimuth.

A hole is an expected pixel that is empty. Sky, and the sectors the recording car blocks, hold no
expected pixels (their neighbours are empty too), so they do not count.
"""

from __future__ import annotations

import numpy as np

#: two neighbours show one surface when their ranges differ by at most this share of the nearer range.
RANGE_AGREEMENT = 0.1
#: left and right neighbours further apart than this (degrees of azimuth) say nothing about the pixel between.
NEIGHBOUR_SPAN_DEG = 1.0


def expected_returns(ranges: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of a full-turn range image (0 = empty) where a surface was there (module doc).

    ``seen``: (W,) bool, the columns the frame covers (a front-view frame covers a quarter of the turn).
    """
    rows, columns = ranges.shape
    valid = ranges > 0
    firing = np.flatnonzero(valid.any(axis=0) & seen)
    r = ranges[:, firing]
    expected = np.zeros(r.shape, dtype=bool)
    expected[1:-1, :] |= _agree(r[:-2, :], r[2:, :])
    close = (firing[2:] - firing[:-2]) * (360.0 / columns) <= NEIGHBOUR_SPAN_DEG
    expected[:, 1:-1] |= _agree(r[:, :-2], r[:, 2:]) & close[None, :]
    out = np.zeros((rows, columns), dtype=bool)
    out[:, firing] = expected
    return out


def _agree(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Both hold a return and the two ranges agree (see :data:`RANGE_AGREEMENT`)."""
    agree: np.ndarray = (a > 0) & (b > 0) & (np.abs(a - b) <= RANGE_AGREEMENT * np.minimum(a, b))
    return agree
