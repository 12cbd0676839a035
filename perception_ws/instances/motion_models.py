"""Kalman filter models of a box centre in the ground plane (LATTE, docs/algorithms.md §7).

Constant acceleration ("ca"): state (px, py, vx, vy, ax, ay), the thesis' transition
``p += v dt + a dt^2 / 2, v += a dt``. Constant velocity ("cv"): state (px, py, vx, vy). Both observe
(px, py). Q is diagonal (the thesis' choice), scaled by dt so that its entries are rates and do not
depend on the scan rate. R comes from the sensor resolution: along the ray the range resolution,
across it the arc of one azimuth step, each with a floor for the clustering and fitting noise of a
box centre (the thesis writes R = diag(dx, dy); here they are standard deviations, so R holds their
squares and has units of m^2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from perception_ws.instances.config import TrackerConfig


def state_size(config: TrackerConfig) -> int:
    """Length of the filter state: 6 for constant acceleration, 4 for constant velocity."""
    return 6 if config.motion_model == "ca" else 4


def transition(config: TrackerConfig, dt: float) -> np.ndarray:
    """State transition F for a time step of ``dt`` seconds."""
    n = state_size(config)
    F = np.eye(n)
    F[0, 2] = F[1, 3] = dt
    if n == 6:
        F[0, 4] = F[1, 5] = 0.5 * dt * dt
        F[2, 4] = F[3, 5] = dt
    return F


def process_noise(config: TrackerConfig, dt: float) -> np.ndarray:
    """Diagonal Q for a step of ``dt`` seconds."""
    rates = [config.q_position] * 2 + [config.q_velocity] * 2 + [config.q_acceleration] * 2
    return np.diag(rates[: state_size(config)]) * dt


def observation(config: TrackerConfig) -> np.ndarray:
    """H: the filter observes the centre (px, py)."""
    H = np.zeros((2, state_size(config)))
    H[0, 0] = H[1, 1] = 1.0
    return H


def measurement_noise(
    center_xy: np.ndarray, config: TrackerConfig, sensor_xy: np.ndarray | Sequence[float] = (0.0, 0.0)
) -> np.ndarray:
    """R (2, 2) for a centre at ``center_xy`` seen from the sensor at ``sensor_xy`` (the origin when tracking in
    the sensor frame; its position in the fixed frame otherwise).
    """
    x, y = float(center_xy[0]) - float(sensor_xy[0]), float(center_xy[1]) - float(sensor_xy[1])
    distance = math.hypot(x, y)
    along2 = max(config.range_resolution_m, config.min_position_std_m) ** 2
    across2 = max(distance * config.azimuth_resolution_rad, config.min_position_std_m) ** 2
    if distance < 1e-9:
        return np.array([[along2, 0.0], [0.0, along2]])
    # rot @ diag(along^2, across^2) @ rot.T, rot's columns the ray (c, s) and its normal, in closed form (plain
    # floats: called per detection and per update, where numpy's per-call cost dominated the tracker)
    c, s = x / distance, y / distance
    cross = c * s * (along2 - across2)
    return np.array([[c * c * along2 + s * s * across2, cross], [cross, s * s * along2 + c * c * across2]])


def measurement_noises(
    centers_xy: np.ndarray, config: TrackerConfig, sensor_xy: np.ndarray | Sequence[float] = (0.0, 0.0)
) -> np.ndarray:
    """R (D, 2, 2) of :func:`measurement_noise` for D centres (D, >= 2): one scan's detections."""
    noises = [measurement_noise(center, config, sensor_xy) for center in centers_xy]
    return np.stack(noises) if noises else np.zeros((0, 2, 2))


class CentreFilter:
    """A Kalman filter of a box centre that observes (px, py), the first two state entries.

    The textbook equations, written for this one observation (H P H^T is P's top-left block): the same numbers as
    a general filter with H = [I 0] (filterpy's, which this replaced: the tests compare the two), at a fraction of
    its per-call cost, which dominated the tracker on busy scans. The covariance update is Joseph's form, which
    keeps P symmetric and positive definite.
    """

    def __init__(self, x: np.ndarray, P: np.ndarray, F: np.ndarray, Q: np.ndarray) -> None:
        self.x = x  # (n, 1)
        self.P = P  # (n, n)
        self.F = F
        self.Q = Q

    def predict(self) -> None:
        """x = F x, P = F P F^T + Q with the filter's current F and Q."""
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + self.Q

    def update(self, z: np.ndarray, R: np.ndarray) -> None:
        """Fold in an observed centre ``z`` (2,) with noise ``R`` (2, 2)."""
        P = self.P
        (a, b), (c, d) = P[:2, :2] + R  # S = H P H^T + R, inverted in closed form (2 x 2)
        K = P[:, :2] @ (np.array([[d, -b], [-c, a]]) / (a * d - b * c))  # (n, 2): P H^T S^-1
        self.x = self.x + K @ (np.asarray(z, dtype=np.float64)[:2].reshape(2, 1) - self.x[:2])
        I_KH = np.eye(len(P))
        I_KH[:, :2] -= K
        self.P = I_KH @ P @ I_KH.T + K @ R @ K.T


def new_filter(
    center_xy: np.ndarray, config: TrackerConfig, sensor_xy: np.ndarray | Sequence[float] = (0.0, 0.0)
) -> CentreFilter:
    """A filter at ``center_xy`` with zero velocity and acceleration (LATTE's start) and wide priors on them."""
    n = state_size(config)
    x = np.zeros((n, 1))
    x[:2, 0] = center_xy[:2]
    variances = [0.0, 0.0] + [config.initial_velocity_std**2] * 2 + [config.initial_acceleration_std**2] * 2
    P = np.diag(variances[:n])
    P[:2, :2] = measurement_noise(center_xy, config, sensor_xy)
    return CentreFilter(x, P, transition(config, config.default_dt_s), process_noise(config, config.default_dt_s))
