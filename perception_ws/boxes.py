"""Oriented 3D boxes in the LiDAR frame, and the geometry every stage shares.

A box is centred at ``center`` (x, y, z of its volumetric centre), has ``size`` = (length along
its heading, width across it, height along z) and ``yaw`` = heading angle about +z in radians,
0 meaning the box's length runs along +x.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Box3D:
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

    def to_local(self, xyz: np.ndarray) -> np.ndarray:
        """Points (N, 3) expressed in the box frame (origin at the centre, x along the heading)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        d = np.asarray(xyz, dtype=np.float64) - self.center
        return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)

    def contains(self, xyz: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean mask of the points inside the box grown by ``margin`` metres on every side."""
        local = self.to_local(xyz)
        half = self.size / 2.0 + margin
        return np.all(np.abs(local) <= half, axis=1)

    def corners(self) -> np.ndarray:
        """The 8 corners (8, 3): bottom face counter-clockwise from front-left, then the top face."""
        length, width, height = self.size / 2.0
        x = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * length
        y = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * width
        z = np.array([-1, -1, -1, -1, 1, 1, 1, 1]) * height
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.stack([c * x - s * y, s * x + c * y, z], axis=1) + self.center

    def bev_corners(self) -> np.ndarray:
        """The 4 bird's-eye-view corners (4, 2), counter-clockwise."""
        return self.corners()[:4, :2]
