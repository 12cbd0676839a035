"""How much of the turn a target's scans cover, as the node's view sees it (a sector centred on +x).

A driver may publish only part of a spinning sensor's turn: each scan of the VLP-32C sample bag holds the front
half-turn only (azimuth -95..+95 deg). The node's range image then needs only that sector (``sensor.fov_deg``
with ``sensor.width`` columns), half the network's work there; a full turn gives 360.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perception_ws.scan import Scan

FULL_TURN_DEG = 360.0
#: the field of view is reported in steps of this many degrees (rounded up)
STEP_DEG = 10.0
#: the share of every scan's points the reported sector must hold (a few stray returns behind do not widen it)
SHARE = 0.995


@dataclass(frozen=True)
class Coverage:
    """The sector centred on +x holding ``SHARE`` of every scan's points (degrees, ``STEP_DEG`` steps)."""

    fov_deg: float = FULL_TURN_DEG
    note: str = "not measured"

    def node_width(self, columns_per_turn: int) -> int:
        """Range-image columns of that sector at the sensor's azimuth step."""
        return max(1, round(columns_per_turn * self.fov_deg / FULL_TURN_DEG))


def scanned_coverage(scans: Sequence[Scan]) -> Coverage:
    """The :class:`Coverage` of ``scans`` (each scan's points' angle off +x, the widest over the scans)."""
    widest = 0.0
    for scan in scans:
        x, y = scan.points["x"].astype(np.float64), scan.points["y"].astype(np.float64)
        keep = np.isfinite(x) & np.isfinite(y) & ((x != 0) | (y != 0))
        if keep.any():
            off_axis = np.degrees(np.abs(np.arctan2(y[keep], x[keep])))  # 0 ahead .. 180 behind
            widest = max(widest, float(np.quantile(off_axis, SHARE)))
    fov = min(FULL_TURN_DEG, math.ceil(2.0 * widest / STEP_DEG) * STEP_DEG)
    what = "the whole turn" if fov >= FULL_TURN_DEG else f"only the {fov:g} deg ahead"
    note = f"{SHARE:.1%} of the points of each of {len(scans)} scans lie within +-{widest:.1f} deg of +x: {what}"
    return Coverage(fov, note)
