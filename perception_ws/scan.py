"""`Scan`: one LiDAR frame with whatever a dataset provides alongside it.

Every reader in :mod:`perception_ws.io` returns scans, so every later stage (projection, models,
instances, metrics, pictures) sees one shape of data whatever the source format was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from perception_ws.errors import CloudFormatError

if TYPE_CHECKING:
    from perception_ws.boxes import Box3D
    from perception_ws.calib.kitti import KittiCalib


@dataclass
class Scan:
    """One frame of points in the sensor frame (REP-103: x forward, y left, z up), metres.

    ``points`` is a numpy structured array with at least float32 fields ``x``, ``y``, ``z``; other
    fields (``intensity``, ``ring``, ``time`` …) are kept as the source had them. Per-point label
    arrays, when present, have one entry per row of ``points``.
    """

    points: np.ndarray
    name: str = ""
    frame_id: str = "lidar"
    stamp_ns: int | None = None
    sensor: str | None = None
    #: KITTI-3 class id per point (0 unknown, 1 car, 2 pedestrian, 3 cyclist), see labels.KITTI3.
    labels: np.ndarray | None = None
    #: SemanticKITTI-19 learning id per point (0 unlabelled), see labels.SEMANTIC_KITTI.
    semantic: np.ndarray | None = None
    #: instance id per point (0 = no instance).
    instances: np.ndarray | None = None
    #: ground-truth boxes in the LiDAR frame.
    boxes: list[Box3D] = field(default_factory=list)
    #: image regions (left, top, right, bottom pixels of ``image``) the annotators left unlabelled (KITTI
    #: DontCare): objects there may exist without a box, so a detection there is neither right nor wrong.
    dont_care: list[tuple[float, float, float, float]] = field(default_factory=list)
    #: RGB image (H, W, 3) uint8 from a camera that sees this scan, with its calibration.
    image: np.ndarray | None = None
    calib: KittiCalib | None = None
    #: the range image as the dataset released it (H, W, C), e.g. SqueezeSeg's 64x512x6.
    range_image: np.ndarray | None = None
    #: (row, col) of every point in ``range_image`` when the points came from one.
    pixels: np.ndarray | None = None

    def __post_init__(self) -> None:
        names = self.points.dtype.names or ()
        missing = [f for f in ("x", "y", "z") if f not in names]
        if missing:
            raise CloudFormatError(f"scan {self.name!r}: points lack field(s) {', '.join(missing)}; have {list(names)}")
        n = len(self.points)
        for attr in ("labels", "semantic", "instances", "pixels"):
            value = getattr(self, attr)
            if value is not None and len(value) != n:
                raise CloudFormatError(
                    f"scan {self.name!r}: {attr} has {len(value)} entries, expected one per point ({n})"
                )

    def __len__(self) -> int:
        return len(self.points)

    @property
    def xyz(self) -> np.ndarray:
        """(N, 3) float32 coordinates (a copy; structured fields are not contiguous)."""
        out = np.empty((len(self.points), 3), dtype=np.float32)
        out[:, 0] = self.points["x"]
        out[:, 1] = self.points["y"]
        out[:, 2] = self.points["z"]
        return out

    def field(self, name: str) -> np.ndarray | None:
        """A per-point field by name, or None if the source did not have it."""
        names = self.points.dtype.names or ()
        return self.points[name] if name in names else None
