"""Robust least-squares fit of one laser's cone, z = h + rho * tan(e), and of a whole table of them.

Every return of laser ``i`` lies on the cone of elevation ``e_i`` whose apex sits ``h_i`` above the sensor
frame's origin, so in the (rho, z) plane (rho = hypot(x, y)) it lies on the line ``z = h_i + rho tan(e_i)``:
a linear least-squares problem in (h_i, tan e_i). Returns that belong to another laser (a wrong ring
assignment, mixed pixels at edges) would pull the line, so the fit is repeated without the points whose
angular residual exceeds :data:`CUT_SIGMAS` robust standard deviations (1.4826 * MAD, at least
:data:`CUT_FLOOR_DEG`) until the kept set no longer changes.

Used by ``scripts/fit_hdl64e.py`` (the shipped HDL-64E table) and by the sensor profile
(:mod:`perception_ws.adapt.beam_table`), which fits the table of any sensor from its unlabelled scans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_ws.errors import SensorError

#: residual cut in robust standard deviations, and its floor in degrees.
CUT_SIGMAS, CUT_FLOOR_DEG = 5.0, 0.01
MAX_ROUNDS = 50
#: a line needs two points; a few more keep one stray return from deciding it.
MIN_POINTS = 3


@dataclass(frozen=True)
class BeamFit:
    """One laser's fitted cone and how well its returns fit it."""

    elevation_deg: float
    height_m: float
    points: int
    kept: int
    rms_deg: float
    max_deg: float


def fit_beam(rho: np.ndarray, z: np.ndarray) -> BeamFit:
    """Robust fit of z = h + rho tan(e) to one laser's returns (see the module doc)."""
    rho = np.asarray(rho, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    if len(z) < MIN_POINTS:
        raise SensorError(f"beam fit: {len(z)} returns; a beam needs at least {MIN_POINTS}")
    keep = np.ones(len(z), dtype=bool)
    for _ in range(MAX_ROUNDS):
        design = np.column_stack([np.ones(int(keep.sum())), rho[keep]])
        (height, slope), *_ = np.linalg.lstsq(design, z[keep], rcond=None)
        residual = np.degrees(np.arctan2(z - height, rho) - np.arctan(slope))
        scale = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        new_keep = np.abs(residual) <= max(CUT_SIGMAS * scale, CUT_FLOOR_DEG)
        if np.array_equal(new_keep, keep) or new_keep.sum() < MIN_POINTS:
            break
        keep = new_keep
    kept = residual[keep]
    return BeamFit(
        float(np.degrees(np.arctan(slope))),
        float(height),
        len(z),
        int(keep.sum()),
        float(np.sqrt(np.mean(kept**2))),
        float(np.abs(kept).max()),
    )


def fit_rows(xyz: np.ndarray, rows: np.ndarray, count: int) -> list[BeamFit | None]:
    """One fit per row ``0..count-1`` of the points ``xyz`` (N, 3) whose row is ``rows`` (N,); rows with
    fewer than :data:`MIN_POINTS` returns (or outside 0..count-1) give None.
    """
    rows = np.asarray(rows)
    inside = (rows >= 0) & (rows < count)
    order = np.argsort(rows[inside], kind="stable")
    sorted_rows = rows[inside][order]
    points = np.asarray(xyz, dtype=np.float64)[inside][order]
    bounds = np.searchsorted(sorted_rows, np.arange(count + 1))  # each row's slice of the sorted points
    rho = np.hypot(points[:, 0], points[:, 1])
    fits: list[BeamFit | None] = []
    for row in range(count):
        part = slice(bounds[row], bounds[row + 1])
        enough = bounds[row + 1] - bounds[row] >= MIN_POINTS
        fits.append(fit_beam(rho[part], points[part, 2]) if enough else None)
    return fits
