"""Oriented 3D boxes in the LiDAR frame, and the geometry every stage shares.

A box is centred at ``center`` (x, y, z of its volumetric centre), has ``size`` = (length along
its heading, width across it, height along z) and ``yaw`` = heading angle about +z in radians,
0 meaning the box's length runs along +x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from perception_ws.errors import CalibrationError

#: m/s: slower than this a box is drawn as standing (a parked object's track jitters by a few cm/s).
MOVING_SPEED = 0.5


@dataclass
class Box3D:
    """An oriented box (see the module doc) with its class, score, point count, track id and velocity."""

    center: np.ndarray
    size: np.ndarray
    yaw: float
    label: int = 0
    name: str = ""
    score: float = 1.0
    num_points: int = 0
    track_id: int = -1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.float64))

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, dtype=np.float64).reshape(3)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(3)
        self.velocity = np.asarray(self.velocity, dtype=np.float64).reshape(3)
        self.yaw = float(self.yaw)

    @property
    def speed(self) -> float:
        """Ground-plane speed (m/s) of ``velocity``."""
        return float(np.hypot(self.velocity[0], self.velocity[1]))

    def to_local(self, xyz: np.ndarray) -> np.ndarray:
        """Points (N, 3) expressed in the box frame (origin at the centre, x along the heading)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        d = np.asarray(xyz, dtype=np.float64) - self.center
        return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)

    def contains(self, xyz: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean mask of the points inside the box grown by ``margin`` metres on every side."""
        local = self.to_local(xyz)
        half = self.size / 2.0 + margin
        return np.asarray(np.all(np.abs(local) <= half, axis=1))

    def corners(self) -> np.ndarray:
        """The 8 corners (8, 3): bottom face counter-clockwise from front-left, then the top face."""
        length, width, height = self.size / 2.0
        x = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * length
        y = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * width
        z = np.array([-1, -1, -1, -1, 1, 1, 1, 1]) * height
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.asarray(np.stack([c * x - s * y, s * x + c * y, z], axis=1) + self.center)

    def bev_corners(self) -> np.ndarray:
        """The 4 bird's-eye-view corners (4, 2), counter-clockwise."""
        return self.corners()[:4, :2]


def transform_box(box: Box3D, pose: np.ndarray) -> Box3D:
    """``box`` seen in another frame: ``pose`` (4, 4) maps points of the box's frame into that frame.

    Boxes stay upright: the centre and velocity are rotated (and the centre moved) in 3D, the yaw turns by
    the pose's heading about z, wrapped to (-pi, pi]. Every other field is copied.
    """
    m = np.asarray(pose, dtype=np.float64)
    if m.shape != (4, 4):
        raise CalibrationError(f"transform_box: pose has shape {m.shape}, expected a (4, 4) rigid transform")
    if not np.all(np.isfinite(m)):
        raise CalibrationError("transform_box: pose holds NaN or Inf values, expected a finite (4, 4) transform")
    R, t = m[:3, :3], m[:3, 3]
    yaw = box.yaw + math.atan2(R[1, 0], R[0, 0])
    wrapped = math.atan2(math.sin(yaw), math.cos(yaw))
    return replace(
        box,
        center=R @ box.center + t,
        size=box.size.copy(),
        yaw=math.pi if wrapped == -math.pi else wrapped,
        velocity=R @ box.velocity,
    )


Polygon = list[tuple[float, float]]


def _polygon_area(poly: Polygon) -> float:
    """Signed area of a polygon by the shoelace formula (positive if counter-clockwise)."""
    # plain floats: a box's polygons have 3-8 corners, where numpy's per-call cost is most of the work
    total = 0.0
    for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1], strict=True):
        total += x0 * y1 - y0 * x1
    return 0.5 * total if len(poly) >= 3 else 0.0


def _clip_convex(subject: Polygon, clip: Polygon) -> Polygon:
    """Sutherland-Hodgman: the part of convex polygon ``subject`` inside convex CCW polygon ``clip``."""
    out = subject
    for (ax, ay), (bx, by) in zip(clip, clip[1:] + clip[:1], strict=True):
        if not out:
            break
        ex, ey = bx - ax, by - ay
        # > 0: left of the edge, i.e. inside a counter-clockwise polygon
        side = [ex * (py - ay) - ey * (px - ax) for px, py in out]
        kept: Polygon = []
        for (px, py), (qx, qy), sp, sq in zip(out, out[1:] + out[:1], side, side[1:] + side[:1], strict=True):
            if sp >= 0:
                kept.append((px, py))
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                kept.append((px + (qx - px) * t, py + (qy - py) * t))
        out = kept
    return out


def bev_iou(a: Box3D, b: Box3D) -> float:
    """Intersection over union of the two boxes' bird's-eye-view rectangles (0 when both are empty)."""
    pa: Polygon = [(x, y) for x, y in a.bev_corners().tolist()]
    pb: Polygon = [(x, y) for x, y in b.bev_corners().tolist()]
    if _polygon_area(pb) < 0:
        pb = pb[::-1]
    area_a, area_b = abs(_polygon_area(pa)), abs(_polygon_area(pb))
    inter = abs(_polygon_area(_clip_convex(pa, pb)))
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0
