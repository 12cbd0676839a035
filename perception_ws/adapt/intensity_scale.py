"""What the target's intensity field holds, and the factor that brings it to the 0..1 the models take.

Drivers disagree: KITTI stores reflectance in 0..1, the Velodyne and most ROS drivers 0..255 (often
uint8), Ouster 16-bit values; some clouds carry no intensity at all (the VLP-32C sample: x y z only), and
some carry a constant placeholder. The scale is read from the largest value (its 99.9th percentile, so
one stray value does not decide): at most 1 means 0..1, at most 255 means 0..255, at most 65535 means
16 bits. A missing or constant field is "absent": the models must then be given no intensity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perception_ws.scan import Scan

#: (name, full scale) of the ranges recognised, narrowest first.
RANGES = (("0..1", 1.0), ("0..255", 255.0), ("0..65535", 65535.0))
#: the percentile of the values that sets the range.
TOP_PERCENTILE = 99.9


@dataclass(frozen=True)
class IntensityScale:
    """``scale`` multiplies the field into 0..1 (0 when ``kind`` is "absent")."""

    #: "0..1", "0..255", "0..65535", "observed" (wider than 16 bits: divided by the top value) or "absent".
    kind: str
    scale: float
    #: why this kind, in words (field missing, constant, or the values seen).
    reason: str
    #: the percentiles 1, 50, 99 of the raw values (empty when absent).
    percentiles: tuple[float, ...] = ()


def intensity_scale(scans: Sequence[Scan], field: str = "intensity") -> IntensityScale:
    """The intensity range of ``scans`` (see the module doc)."""
    values = [
        np.asarray(scan.points[field], dtype=np.float64) for scan in scans if field in (scan.points.dtype.names or ())
    ]
    if len(values) < len(scans) or not values:
        return IntensityScale(
            "absent", 0.0, f"{len(scans) - len(values)} of {len(scans)} scans have no {field!r} field"
        )
    raw = np.concatenate(values)
    raw = raw[np.isfinite(raw)]
    if len(raw) == 0 or raw.min() == raw.max():
        constant = f"{raw[0]:g}" if len(raw) else "NaN"
        return IntensityScale("absent", 0.0, f"field {field!r} is constant ({constant}) in every scan")
    top = float(np.percentile(raw, TOP_PERCENTILE))
    spread = tuple(float(v) for v in np.percentile(raw, (1, 50, 99)))
    seen = f"values {raw.min():g}..{raw.max():g}, {TOP_PERCENTILE}th percentile {top:g}"
    for kind, full in RANGES:
        if top <= full:
            return IntensityScale(kind, 1.0 / full, seen, spread)
    return IntensityScale("observed", 1.0 / top, seen, spread)
