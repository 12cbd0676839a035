"""Multi-object tracking: predict every track, assign detections (Hungarian, gated), update, manage."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.errors import PerceptionError
from perception_ws.instances.association import assign, determinants, mahalanobis2
from perception_ws.instances.config import TrackerConfig
from perception_ws.instances.motion_models import measurement_noises, process_noise, transition
from perception_ws.instances.track import Track, TrackState


class Tracker:
    """Tracks boxes over scans; ids are never reused.

    >>> tracker = Tracker()
    >>> tracks = tracker.update(detections, stamp_s=scan_time)  # doctest: +SKIP
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_stamp: float | None = None

    def reset(self) -> None:
        """Forget every track (e.g. when a bag loops); ids keep counting up."""
        self.tracks = []
        self._last_stamp = None

    def update(
        self, detections: Sequence[Box3D], stamp_s: float, sensor_xy: Sequence[float] = (0.0, 0.0)
    ) -> list[Box3D]:
        """Feed one scan's detections taken at ``stamp_s`` (seconds) by the sensor at ``sensor_xy`` (the origin
        in the sensor frame; its position when tracking in a fixed frame: a detection's noise grows across the
        ray with its distance from the sensor); returns the reported tracks' boxes (confirmed tracks matched in
        this scan, plus lost ones if ``report_lost``), by id, with ``track_id`` and ``velocity`` (m/s) set.
        """
        try:
            stamp = float(stamp_s)
        except (TypeError, ValueError):
            stamp = math.nan
        if not math.isfinite(stamp):
            raise PerceptionError(f"tracker stamp must be a finite time in seconds; got {stamp_s!r}")
        if self._last_stamp is not None and stamp < self._last_stamp:
            raise PerceptionError(
                f"tracker stamps must not go back in time: got {stamp:.6f} s after {self._last_stamp:.6f} s "
                "(call reset() when a recording restarts)"
            )
        for i, det in enumerate(detections):
            if not isinstance(det, Box3D):
                raise PerceptionError(f"tracker detection {i} is a {type(det).__name__}, expected a Box3D")
            if not (np.isfinite(det.center).all() and np.isfinite(det.size).all() and math.isfinite(det.yaw)):
                raise PerceptionError(f"tracker detection {i} has a NaN or Inf centre, size or yaw; expected finite")
        if self._last_stamp is not None and stamp > self._last_stamp:
            dt = stamp - self._last_stamp
            motion = (transition(self.config, dt), process_noise(self.config, dt))  # the same step for every track
            for track in self.tracks:
                track.predict(dt, motion)
        self._last_stamp = stamp
        matches, lost, fresh = self._associate(detections, sensor_xy)
        for t, d in matches:
            self.tracks[t].update(detections[d], sensor_xy)
        dropped = {t for t in lost if not self.tracks[t].miss()}
        self.tracks = [track for t, track in enumerate(self.tracks) if t not in dropped]
        for d in fresh:
            self.tracks.append(Track(self._next_id, detections[d], self.config, sensor_xy))
            self._next_id += 1
        return [track.box() for track in self.tracks if self._reported(track)]

    def _reported(self, track: Track) -> bool:
        if track.state is TrackState.CONFIRMED:
            return track.updated
        return track.state is TrackState.LOST and self.config.report_lost

    def _associate(
        self, detections: Sequence[Box3D], sensor_xy: Sequence[float]
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """Matches (track, detection), unmatched tracks and unmatched detections.

        Established tracks (confirmed or lost) choose first; tentative tracks share what is left. A
        young track's wide velocity prior makes it accept detections far from its position, which
        would otherwise let it take an established track's detection.
        """
        cost, allowed = self._costs(detections, sensor_xy)
        tentative = np.array([t.state is TrackState.TENTATIVE for t in self.tracks], dtype=bool)
        matches: list[tuple[int, int]] = []
        free = np.ones(len(detections), dtype=bool)
        for group in (np.flatnonzero(~tentative), np.flatnonzero(tentative)):
            cols = np.flatnonzero(free)
            found, _, _ = assign(cost[np.ix_(group, cols)], allowed[np.ix_(group, cols)])
            for r, c in found:
                matches.append((int(group[r]), int(cols[c])))
                free[cols[c]] = False
        matched = {t for t, _ in matches}
        return matches, [t for t in range(len(self.tracks)) if t not in matched], [int(d) for d in np.flatnonzero(free)]

    def _costs(self, detections: Sequence[Box3D], sensor_xy: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Cost of every (track, detection) pair and which pairs pass the gates.

        The cost is the negative log-likelihood of the detection under the track's prediction (up to
        constants): squared Mahalanobis distance plus log det S, so that an uncertain track does not
        win a detection merely because its wide covariance makes every distance look small.
        """
        shape = (len(self.tracks), len(detections))
        if 0 in shape:
            return np.zeros(shape), np.zeros(shape, dtype=bool)
        predicted = np.stack([track.position for track in self.tracks])  # (T, 2)
        centres = np.stack([det.center[:2] for det in detections])  # (D, 2)
        R = measurement_noises(centres, self.config, sensor_xy)  # (D, 2, 2)
        P = np.stack([track.innovation_covariance() for track in self.tracks])  # (T, 2, 2)
        innovation = centres[None, :, :] - predicted[:, None, :]
        S = P[:, None] + R[None, :]
        det = determinants(S)
        distance2 = mahalanobis2(innovation, S, det)
        cost = distance2 + np.log(det)
        allowed = (distance2 <= self.config.gate_mahalanobis2) & (
            np.linalg.norm(innovation, axis=2) <= self.config.gate_distance_m
        )
        if self.config.match_class:
            allowed &= np.array([t.label for t in self.tracks])[:, None] == np.array([d.label for d in detections])
        return cost, allowed
