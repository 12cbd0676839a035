"""The sensor's height above the road, from the ground returns around the car.

LATTE's ground removal (:func:`perception_ws.instances.ground.ground_mask`) picks the ground returns of
each scan; one plane is fitted (:func:`perception_ws.instances.ground.fit_plane`) to those within
:data:`NEAR_M` of the sensor axis, where the road is closest to flat and the car stands on it; the
sensor origin's distance to that plane is the mounting height. Over several scans the median is taken
(a scan taken on a kerb or a ramp is outvoted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perception_ws.errors import SensorError
from perception_ws.instances.ground import fit_plane, ground_mask
from perception_ws.scan import Scan

#: ground returns from this annulus (metres of horizontal range) set the plane under the car; inside
#: the inner radius lie the car's own body and the sensor rig.
NEAR_M, INNER_M = 15.0, 2.0
#: a plane from fewer ground returns than this is not trusted.
MIN_GROUND_POINTS = 200


@dataclass(frozen=True)
class MountingHeight:
    """Median height of the sensor origin above the ground plane, and the per-scan values behind it."""

    height_m: float
    per_scan_m: tuple[float, ...]
    #: the ground plane's tilt from level (degrees), median over the scans.
    tilt_deg: float


def mounting_height(scans: Sequence[Scan]) -> MountingHeight:
    """The mounting height of the sensor that recorded ``scans`` (see the module doc)."""
    heights, tilts = [], []
    for scan in scans:
        xyz = scan.xyz[np.all(np.isfinite(scan.xyz), axis=1)].astype(np.float64)
        rho = np.hypot(xyz[:, 0], xyz[:, 1])
        near = xyz[(rho > INNER_M) & (rho < NEAR_M)]
        ground = near[ground_mask(near)] if len(near) else near
        if len(ground) < MIN_GROUND_POINTS:
            continue
        normal, offset = fit_plane(ground)
        heights.append(-offset)  # the plane is n . p = d with n up: the origin lies -d above it
        tilts.append(float(np.degrees(np.arccos(min(1.0, abs(float(normal[2])))))))
    if not heights:
        raise SensorError(
            f"mounting height: no scan has {MIN_GROUND_POINTS} ground returns between {INNER_M} and {NEAR_M} m"
        )
    return MountingHeight(float(np.median(heights)), tuple(heights), float(np.median(tilts)))
