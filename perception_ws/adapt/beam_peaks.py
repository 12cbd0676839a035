"""First guesses of a sensor's beams from the elevations of its returns alone (no ring field, no datasheet).

The returns of one laser share an elevation only when seen from that laser's own origin, which may sit a
few centimetres off the sensor frame's origin (the HDL-64E's two blocks: 0.20 and 0.12 m): from 5 m away
a 0.08 m offset shifts the apparent elevation by 0.9 degrees, twice the beam spacing. So the elevation
histogram ``atan2(z - h, rho)`` is taken for a grid of origin heights ``h``, and each band of
:data:`BAND_DEG` degrees keeps one height: a Hough transform restricted to one height per band. The beams
are the most prominent peaks of that histogram; :mod:`perception_ws.adapt.beam_table` refines them by
alternating nearest-beam assignment and the least-squares fit of each beam.

A band leaves the height that is sharpest over the whole cloud (largest sum of squared counts) only
where its own returns call for it. Near returns move by degrees with a centimetre of origin height, so
judged alone a band could always borrow some: a band beside a beam pulled that beam's near returns
across its edge (a second, false peak 0.5 deg from the -15.6 deg beam of the VLP-32C sample), and an
empty band filled with returns from anywhere (hundreds of false peaks on the VLP-16 sample). So another
height wins only when it makes the band :data:`SHARPER_BY` times sharper and the band holds at least
:data:`OWN_SHARE` as many returns at the overall height (it sharpens the band's own returns instead of
bringing others in). The HDL-64E's lower block (origins 8 cm below the upper's) still gets its own
height: its returns are in its bands at either height, only blurred at the upper block's. Bands are 1 degree
wide: at 2 degrees the band from -10 to -8 degrees holds beams of both blocks and must take one height for
all (33 of 64 beams within 0.05 degrees on 3 KITTI scans, against 64 of 64 at 1 degree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from perception_ws.errors import SensorError

BIN_DEG = 0.02
BAND_DEG = 1.0
#: the origin heights tried (metres above the sensor frame's origin).
HEIGHTS_M = np.round(np.arange(-0.5, 0.5001, 0.01), 2)
#: two beams closer than this are not told apart (the densest datasheet spacing is 0.33 deg).
MIN_SPACING_DEG = 0.15
#: returns nearer than this (the car, the sensor rig) are left out.
MIN_RHO_M = 0.5
#: without a known beam count, a peak counts as a beam when its prominence reaches this share of the
#: median prominence of the strongest half of the peaks.
AUTO_PROMINENCE = 0.1
#: a band's own height replaces the overall one only when that much sharper (see the module doc) ...
SHARPER_BY = 1.5
#: ... while the band at the overall height holds at least this share of the returns it holds at its own.
OWN_SHARE = 0.5


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
                f"beam peaks: the elevations show {len(peaks)} peaks, fewer than the {beams} beams asked for "
                "(a beam without returns cannot be found from the data: name the sensor to take it from its table)"
            )
        chosen = np.sort(np.argsort(-prominence, kind="stable")[:beams])
    centres = (edges[:-1] + edges[1:]) / 2.0
    top_first = peaks[chosen][::-1]
    return BeamSeeds(centres[top_first], height_of_bin[top_first], prominence[chosen][::-1])


def _sharpest_per_band(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band of bins, the histogram row (origin height) it keeps (see the module doc), and that row's
    height for every bin. A band whose best height is at the edge of the grid (nothing there to focus)
    keeps the overall height.
    """
    band = round(BAND_DEG / BIN_DEG)
    overall = int(np.argmax((counts**2).sum(axis=1)))
    profile = np.empty(counts.shape[1])
    height = np.empty(counts.shape[1])
    for start in range(0, counts.shape[1], band):
        part = counts[:, start : start + band]
        sharpness, mass = (part**2).sum(axis=1), part.sum(axis=1)
        best = int(np.argmax(sharpness))
        calls_for_it = sharpness[best] >= SHARPER_BY * sharpness[overall] and mass[overall] >= OWN_SHARE * mass[best]
        best = best if calls_for_it and best not in (0, len(HEIGHTS_M) - 1) else overall
        profile[start : start + band] = counts[best, start : start + band]
        height[start : start + band] = HEIGHTS_M[best]
    return profile, height
