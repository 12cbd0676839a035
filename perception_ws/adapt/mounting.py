"""The sensor's height above the ground it stands on, from the lowest returns around it, with a confidence.

Per scan, the returns :data:`INNER_M`-:data:`NEAR_M` from the sensor axis are cut into cells (azimuth
sector x range ring) and each cell keeps its lowest returns (within :data:`LOWEST_M` of its minimum):
where there is ground, those lie on it; elsewhere on the foot of a wall, a car, a slope. A plane is found
among them by RANSAC (seeded, so repeatable): only planes within :data:`MAX_TILT_DEG` of level and below
the sensor are tried, and a plane scores by the cells it runs through less the cells holding a return
below it (ground cannot be seen through; points do not vote, so a few dense patches near the car cannot
outvote the ground all around). The plane is then refitted, LATTE-like, to every return within
:data:`ON_PLANE_M` of it, a few times (:func:`perception_ws.instances.ground.fit_plane`; the lowest returns
alone sit low by the range noise); the sensor origin's distance to it is that scan's height.

Confidence: the share of cells whose lowest returns lie on that plane, i.e. how much of what the sensor
sees around it is that ground. A scan counts at :data:`MIN_GROUND_SHARE` or more; the height is the median
over the scans that count. When fewer than half of the scans count there is no level ground to trust (a
cluttered room, a roof that hides the road): the profile says so and the height is the simulator's default
mount, :data:`perception_ws.sim.simulated_sensor.DEFAULT_MOUNT_HEIGHT_M`, with the measured values kept
beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_ws.errors import SensorError
from perception_ws.instances.ground import fit_plane
from perception_ws.scan import Scan

#: lowest returns from this annulus (metres from the sensor axis); inside it lie the car body and the rig.
INNER_M, NEAR_M = 2.0, 15.0
#: cells of the lowest returns: azimuth sectors of this many degrees, rings of this many metres ...
CELL_DEG, CELL_M = 10.0, 1.0
#: ... each keeping its returns up to this far above its lowest one.
LOWEST_M = 0.05
#: RANSAC: planes tried, a return's distance to count as on the plane, steepest ground accepted.
TRIES, ON_PLANE_M, MAX_TILT_DEG = 300, 0.05, 10.0
#: a cell holding a return this far below a plane votes against it.
BELOW_M = 0.15
#: refits to the returns near the plane.
REFITS = 3
#: a scan's plane counts when the lowest returns of this share of its cells lie on it (measured
#: 2026-12-07: 0.48-0.90 on the 18 KITTI HDL-64E scans here, 0.78 on the VLP-32C sample's floor, 0.21 on
#: the cluttered VLP-16 sample, whose lowest returns lie 0.0-0.7 m below the sensor with no common plane).
MIN_GROUND_SHARE = 0.35


#: the height used where none is measured (the simulator's default mount): KITTI's Velodyne 1.73 m above the road.
DEFAULT_MOUNT_HEIGHT_M = 1.73
#: heights a profile written before the confidence was measured is trusted within (the rule of that time)
_LEGACY_PLAUSIBLE_M = (0.2, 5.0)


@dataclass(frozen=True)
class MountingHeight:
    """The height to use, what was measured, and how far to trust it."""

    #: the measured height when ``confident``, else :data:`DEFAULT_MOUNT_HEIGHT_M`.
    height_m: float
    #: per scan with a plane: the sensor origin's height above it.
    per_scan_m: tuple[float, ...]
    #: the ground plane's tilt from level (degrees), median over the scans with a plane (0 without one).
    tilt_deg: float
    #: per scan with a plane: the share of its cells whose lowest returns lie on it.
    ground_share: tuple[float, ...]
    confident: bool
    #: how the height was obtained, or why the default is used.
    note: str

    @classmethod
    def from_json(cls, mounting: Mapping[str, Any]) -> MountingHeight:
        """The ``mounting`` entry of a profile.json (KeyError/TypeError/ValueError when malformed).

        A profile written before the confidence was measured (no ``confident`` key) keeps its height where it
        is plausible for a vehicle (the rule of that time) and the default elsewhere, so its runs resume.
        """
        if "confident" not in mounting:
            measured = float(mounting["height_m"])
            plausible = _LEGACY_PLAUSIBLE_M[0] <= measured <= _LEGACY_PLAUSIBLE_M[1]
            return cls(
                measured if plausible else DEFAULT_MOUNT_HEIGHT_M,
                tuple(float(v) for v in mounting["per_scan_m"]),
                float(mounting["tilt_deg"]),
                (),
                plausible,
                f"written before the confidence was measured; {measured:.3f} m "
                + ("kept" if plausible else f"is implausible, the default {DEFAULT_MOUNT_HEIGHT_M} m used"),
            )
        return cls(
            float(mounting["height_m"]),
            tuple(float(v) for v in mounting["per_scan_m"]),
            float(mounting["tilt_deg"]),
            tuple(float(v) for v in mounting["ground_share"]),
            bool(mounting["confident"]),
            str(mounting["note"]),
        )


@dataclass(frozen=True)
class ScanGround:
    """One scan's ground plane: the sensor origin's height above it, its tilt, and the confidence share."""

    height_m: float
    tilt_deg: float
    #: the share of the cells whose lowest returns lie on the plane
    ground_share: float


def mounting_height(scans: Sequence[Scan]) -> MountingHeight:
    """The mounting height of the sensor that recorded ``scans`` (see the module doc)."""
    if not scans:
        raise SensorError("mounting height: no scans")
    grounds = [g for g in (scan_ground(scan) for scan in scans) if g is not None]
    counted = [g.height_m for g in grounds if g.ground_share >= MIN_GROUND_SHARE]
    heights = tuple(g.height_m for g in grounds)
    shares = tuple(round(g.ground_share, 3) for g in grounds)
    tilt = float(np.median([g.tilt_deg for g in grounds])) if grounds else 0.0
    share = f"{MIN_GROUND_SHARE:.0%}"
    found = f"{len(counted)} of {len(scans)} scans show a level plane under >= {share} of their lowest returns"
    if 2 * len(counted) >= len(scans):
        note = f"lowest returns {INNER_M:g}-{NEAR_M:g} m around the sensor: {found}; median of those"
        return MountingHeight(float(np.median(counted)), heights, tilt, shares, True, note)
    note = (
        f"no level ground around the sensor: {found} (best {max(shares, default=0.0):.0%}); "
        f"using the default {DEFAULT_MOUNT_HEIGHT_M} m"
    )
    return MountingHeight(DEFAULT_MOUNT_HEIGHT_M, heights, tilt, shares, False, note)


def scan_ground(scan: Scan) -> ScanGround | None:
    """The ground plane under one scan's sensor (see the module doc), or None with too few low returns."""
    xyz = scan.xyz[np.all(np.isfinite(scan.xyz), axis=1)].astype(np.float64)
    rho = np.hypot(xyz[:, 0], xyz[:, 1])
    xyz = xyz[(rho > INNER_M) & (rho < NEAR_M)]
    if len(xyz) < 3:
        return None
    cell = _cells(xyz)
    lowest = _lowest_per_cell(xyz[:, 2], cell)
    plane = _ransac(xyz[lowest], cell[lowest])
    if plane is None:
        return None
    normal, offset = plane
    for _ in range(REFITS):  # every return near the plane (the lowest ones alone sit low by the range noise)
        near = np.abs(xyz @ normal - offset) < ON_PLANE_M
        if near.sum() < 3:
            break
        normal, offset = fit_plane(xyz[near])
    on_plane = lowest & (np.abs(xyz @ normal - offset) < ON_PLANE_M)
    share = len(np.unique(cell[on_plane])) / len(np.unique(cell))
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(normal[2]))))))
    # the plane is n . p = d with n up: the origin lies -d above it
    return ScanGround(-offset, tilt, share)


def _azimuth_deg(xyz: np.ndarray) -> np.ndarray:
    azimuth: np.ndarray = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
    return azimuth


def _cells(xyz: np.ndarray) -> np.ndarray:
    sector = (_azimuth_deg(xyz) // CELL_DEG).astype(np.int64)
    ring = (np.hypot(xyz[:, 0], xyz[:, 1]) // CELL_M).astype(np.int64)
    cells: np.ndarray = ring * round(360.0 / CELL_DEG) + sector
    return cells


def _lowest_per_cell(z: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Mask of the returns at most :data:`LOWEST_M` above the lowest return of their cell."""
    ids, index = np.unique(cell, return_inverse=True)
    floor = np.full(len(ids), np.inf)
    np.minimum.at(floor, index, z)
    return np.asarray(z <= floor[index] + LOWEST_M)


def _cells_below(xyz: np.ndarray, cell: np.ndarray, normal: np.ndarray, offset: float) -> int:
    """How many cells hold a return more than :data:`BELOW_M` below the plane (seen through the "ground")."""
    return len(np.unique(cell[xyz @ normal - offset < -BELOW_M]))


def _ransac(xyz: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The level plane below the sensor through the most cells' lowest returns, less the cells below it."""
    if len(xyz) < 3:
        return None
    rng = np.random.default_rng(0)
    samples = rng.integers(0, len(xyz), size=(TRIES, 3))
    a, b, c = xyz[samples[:, 0]], xyz[samples[:, 1]], xyz[samples[:, 2]]
    normal = np.cross(b - a, c - a)
    length = np.linalg.norm(normal, axis=1)
    valid = length > 1e-9
    normal[valid] /= length[valid, None]
    normal *= np.where(normal[:, 2:3] < 0, -1.0, 1.0)
    offset = np.einsum("ij,ij->i", normal, a)
    # level enough, and the sensor origin above the plane (n . 0 - d > 0)
    valid &= (normal[:, 2] >= np.cos(np.radians(MAX_TILT_DEG))) & (offset < 0)
    best, best_score = None, 0
    for i in np.flatnonzero(valid):
        on = np.abs(xyz @ normal[i] - offset[i]) < ON_PLANE_M
        score = len(np.unique(cell[on])) - _cells_below(xyz, cell, normal[i], float(offset[i]))
        if score > best_score:
            best, best_score = (normal[i], float(offset[i])), score
    return best
