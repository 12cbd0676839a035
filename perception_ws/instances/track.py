"""One tracked object: its Kalman filter, life-cycle state and box (LATTE's tracking, docs/algorithms.md §7).

Life cycle: a new track is *tentative*; ``confirm_hits`` matched scans make it *confirmed*; a
confirmed track that misses a scan is *lost* (it coasts on its prediction) and is confirmed again
when matched; a tentative track that misses, or a lost one that misses more than ``max_misses``
scans in a row, is dropped. Rigid objects (cars …) keep the box size they had when confirmed (the
median of their detections so far) and only re-estimate the yaw; others take each detection's size.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.instances.config import TrackerConfig
from perception_ws.instances.motion_models import (
    CentreFilter,
    measurement_noise,
    new_filter,
    process_noise,
    transition,
)

#: above this speed (m/s) the direction of motion tells the front of the object from its back.
_HEADING_FROM_MOTION_SPEED = 1.5


class TrackState(enum.Enum):
    """A track's life: tentative until enough hits confirm it (dropped at its first miss), lost while unmatched."""

    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"


def _closest_heading(yaw: float, reference: float) -> float:
    """``yaw`` or ``yaw + pi`` (a box's yaw is known modulo pi), whichever is closer to ``reference``."""
    # plain floats (called per track and scan): Python's float % is floor-mod, as numpy's
    flipped = yaw + math.pi
    keep = abs((yaw - reference + math.pi) % math.tau - math.pi) <= abs(
        (flipped - reference + math.pi) % math.tau - math.pi
    )
    return ((yaw if keep else flipped) + math.pi) % math.tau - math.pi


class Track:
    """A tracked object, created from its first detection."""

    def __init__(
        self, track_id: int, detection: Box3D, config: TrackerConfig, sensor_xy: Sequence[float] = (0.0, 0.0)
    ) -> None:
        self.id = track_id
        self.config = config
        self.kf: CentreFilter = new_filter(detection.center, config, sensor_xy)
        self.label = detection.label
        self.name = detection.name
        self.rigid = detection.name in config.rigid_classes
        self.state = TrackState.CONFIRMED if config.confirm_hits <= 1 else TrackState.TENTATIVE
        self.hits = 1
        self.misses = 0
        self.updated = True
        self._sizes = [detection.size.copy()]
        self.size = detection.size.copy()
        self.yaw = detection.yaw
        self.z = float(detection.center[2])
        self.score = detection.score
        self.num_points = detection.num_points

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.kf.x[:2, 0].copy())

    @property
    def velocity(self) -> np.ndarray:
        return np.asarray(self.kf.x[2:4, 0].copy())

    @property
    def acceleration(self) -> np.ndarray:
        """(ax, ay) of the box centre; zero with the constant-velocity model (its state has none)."""
        state = self.kf.x[:, 0]
        return state[4:6].copy() if len(state) >= 6 else np.zeros(2)

    def predict(self, dt: float, motion: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Move the filter ``dt`` seconds on; ``motion``: its (F, Q) for that step when already built (the tracker
        builds them once a scan for all its tracks; the filter only reads them).
        """
        self.kf.F, self.kf.Q = motion or (transition(self.config, dt), process_noise(self.config, dt))
        self.kf.predict()
        self.updated = False

    def innovation_covariance(self) -> np.ndarray:
        """H P H^T (2, 2): the predicted centre's uncertainty, before adding a detection's R."""
        return np.asarray(self.kf.P[:2, :2].copy())

    def update(self, detection: Box3D, sensor_xy: Sequence[float] = (0.0, 0.0)) -> None:
        self.kf.update(detection.center[:2], measurement_noise(detection.center, self.config, sensor_xy))
        self.hits += 1
        self.misses = 0
        self.updated = True
        self.z = float(detection.center[2])
        self.score = detection.score
        self.num_points = detection.num_points
        self._update_shape(detection)
        if self.state is TrackState.LOST or (
            self.state is TrackState.TENTATIVE and self.hits >= self.config.confirm_hits
        ):
            self.state = TrackState.CONFIRMED

    def _update_shape(self, detection: Box3D) -> None:
        vx, vy = float(self.kf.x[2, 0]), float(self.kf.x[3, 0])
        reference = math.atan2(vy, vx) if math.hypot(vx, vy) > _HEADING_FROM_MOTION_SPEED else self.yaw
        self.yaw = _closest_heading(float(detection.yaw), reference)
        if not self.rigid:
            self.size = detection.size.copy()
        elif self.state is TrackState.TENTATIVE:
            # the size is settled while the track is young, then kept (a rigid object does not change)
            self._sizes.append(detection.size.copy())
            self.size = np.median(np.stack(self._sizes), axis=0)

    def miss(self) -> bool:
        """Record a scan without a matching detection; False when the track should be dropped."""
        self.misses += 1
        if self.state is TrackState.TENTATIVE:
            return False
        self.state = TrackState.LOST
        return self.misses <= self.config.max_misses

    def box(self) -> Box3D:
        x, y = self.position
        vx, vy = self.velocity
        return Box3D(
            center=np.array([x, y, self.z]),
            size=self.size.copy(),
            yaw=self.yaw,
            label=self.label,
            name=self.name,
            score=self.score,
            num_points=self.num_points if self.updated else 0,
            track_id=self.id,
            velocity=np.array([vx, vy, 0.0]),
        )
