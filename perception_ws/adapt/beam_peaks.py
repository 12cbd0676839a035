"""First guesses of a sensor's beams from the elevations of its returns alone (no ring field, no datasheet).

The returns of one laser share an elevation only when seen from that laser's own origin, which may sit a
few centimetres off the sensor frame's origin (the HDL-64E's two blocks: 0.20 and 0.12 m): from 5 m away
a 0.08 m offset shifts the apparent elevation by 0.9 degrees, twice the beam spacing. So the elevation
histogram ``atan2(z - h, rho)`` is taken for a grid of origin heights ``h``, and each band of
:data:`BAND_DEG` degrees keeps the height at which it is sharpest (largest sum of squared counts): a
Hough transform restricted to one height per band. The beams are the most prominent peaks of that
histogram; :mod:`perception_ws.adapt.beam_table` refines them by alternating nearest-beam assignment
and the least-squares fit of each beam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from perception_ws.errors import SensorError

BIN_DEG = 0.02
BAND_DEG = 2.0
#: the origin heights tried (metres above the sensor frame's origin).
HEIGHTS_M = np.round(np.arange(-0.5, 0.5001, 0.01), 2)
#: two beams closer than this are not told apart (the densest datasheet spacing is 0.33 deg).
MIN_SPACING_DEG = 0.15
#: returns nearer than this (the car, the sensor rig) are left out.
MIN_RHO_M = 0.5
#: without a known beam count, a peak counts as a beam when its prominence reaches this share of the
#: median prominence of the strongest half of the peaks.
AUTO_PROMINENCE = 0.1


@dataclass(frozen=True)
class BeamSeeds:
    """Beam guesses, top beam first: elevation and origin height of each, and each peak's prominence."""

    elevations_deg: np.ndarray
    heights_m: np.ndarray
    prominence: np.ndarray


def beam_seeds(xyz: np.ndarray, beams: int | None = None) -> BeamSeeds:
    """The ``beams`` most prominent elevation peaks of the returns ``xyz`` (N, 3), or every clear one."""
    points = np.asarray(xyz, dtype=np.float64)
    rho = np.hypot(points[:, 0], points[:, 1])
    near = np.isfinite(rho) & np.isfinite(points[:, 2]) & (rho > MIN_RHO_M)
    rho, z = rho[near], points[near, 2]
    if len(z) == 0:
        raise SensorError(f"beam peaks: no returns farther than {MIN_RHO_M} m from the sensor axis")
    edges = np.arange(-90.0, 90.0 + BIN_DEG, BIN_DEG)
    counts = np.stack([np.histogram(np.degrees(np.arctan2(z - h, rho)), bins=edges)[0] for h in HEIGHTS_M])
    profile, height_of_bin = _sharpest_per_band(counts.astype(np.float64))
    smooth = np.convolve(profile, np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0, mode="same")
    peaks, props = find_peaks(smooth, distance=max(1, round(MIN_SPACING_DEG / BIN_DEG)), prominence=1e-9)
    prominence = props["prominences"]
    if beams is None:
        strong = np.sort(prominence)[::-1][: max(1, len(prominence) // 2)]
        chosen = np.flatnonzero(prominence >= AUTO_PROMINENCE * np.median(strong))
    else:
        if len(peaks) < beams:
            raise SensorError(
                f"beam peaks: the elevations show {len(peaks)} peaks, fewer than the {beams} beams asked for"
            )
        chosen = np.sort(np.argsort(-prominence, kind="stable")[:beams])
    centres = (edges[:-1] + edges[1:]) / 2.0
    top_first = peaks[chosen][::-1]
    return BeamSeeds(centres[top_first], height_of_bin[top_first], prominence[chosen][::-1])


def _sharpest_per_band(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band of bins, the histogram row (origin height) with the largest sum of squares; a band whose
    best height is at the edge of the grid (nothing there to focus) takes the overall sharpest height.
    """
    band = round(BAND_DEG / BIN_DEG)
    overall = int(np.argmax((counts**2).sum(axis=1)))
    profile = np.empty(counts.shape[1])
    height = np.empty(counts.shape[1])
    for start in range(0, counts.shape[1], band):
        part = counts[:, start : start + band]
        best = int(np.argmax((part**2).sum(axis=1)))
        best = overall if best in (0, len(HEIGHTS_M) - 1) else best
        profile[start : start + band] = part[best]
        height[start : start + band] = HEIGHTS_M[best]
    return profile, height
