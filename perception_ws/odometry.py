"""LiDAR odometry: the sensor's pose, scan by scan, from the scans alone (when the vehicle sends none on /tf).

Each scan is aligned to the one before by point-to-plane ICP (Open3D) from a constant-velocity guess
(the last step again), and the steps are chained: the pose is the sensor's in the frame of the first
scan (an ``odom`` of its own). What goes in: the points between :attr:`OdometryConfig.min_range_m`
(the car itself and its mounting) and :attr:`OdometryConfig.max_range_m`, on a voxel grid, normals
from their neighbours, less the points whose neighbours lie on a line (no plane, so no normal: see
``_prepare``); a Tukey loss keeps moving objects and wrong matches from pulling the fit. The
pose drifts slowly (scan to scan, no map): right for tracking, where only the last second matters,
not for mapping.

Measured on 2 cores shared with other jobs (docs/instances.md): on the 12 real KITTI scans of
``kitti_sequence_pcd`` (a car driving straight at about 8 m/s) steps of 0.76-0.83 m per scan, 31 ms of CPU
a scan; on a simulated drive within 4.4 cm and 0.03 deg of the true pose over 16 m (tests/test_odometry.py,
tests/test_pipeline_fixed_frame.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_ws.errors import PerceptionError


@dataclass(frozen=True)
class OdometryConfig:
    """Settings of the scan-to-scan ICP: which points take part, and when a fit is trusted."""

    voxel_m: float = 0.75  # one point per cell: ~3-4k points of a 120k-point HDL-64E scan; 0.5 m: 1.6x the time
    min_range_m: float = 3.0  # closer: the vehicle itself, which moves with the sensor
    max_range_m: float = 60.0  # farther: sparse and noisy
    normal_radius_m: float = 1.5
    max_linearity: float = 0.9  # a point whose neighbours lie more on a line than this has no normal: left out
    max_distance_m: float = 1.0  # a correspondence farther than this is no match
    tukey_k: float = 0.3  # residuals beyond ~k metres weigh nothing
    max_iterations: int = 30
    min_points: int = 100  # fewer after the filters: too little to align; the guess is kept
    min_fitness: float = 0.3  # fewer of the points matched: the fit is not trusted; the guess is kept


@dataclass(frozen=True)
class OdometryStep:
    """One scan's result: its pose (4x4, sensor -> odom), how it was found, and how well it fits."""

    pose: np.ndarray
    aligned: bool  # False: the first scan (identity), or too few points or matches (the constant-velocity guess)
    fitness: float  # share of the scan's points with a match in the previous scan
    residual_m: float  # RMS distance of the matched points (about half the voxel spacing when aligned)


class ScanOdometry:
    """``ScanOdometry().update(xyz)`` per scan, in time order -> :class:`OdometryStep`; see the module doc."""

    def __init__(self, config: OdometryConfig | None = None) -> None:
        self.config = config or OdometryConfig()
        self.reset()

    def reset(self) -> None:
        """Start again: the next scan is the origin of a new odom frame."""
        self._previous: Any = None  # Open3D cloud of the previous scan
        self._pose = np.eye(4)
        self._step = np.eye(4)  # the last scan-to-scan motion (previous <- current)

    def update(self, xyz: np.ndarray) -> OdometryStep:
        """The pose of this scan's sensor (points ``xyz`` (N, 3) in its frame; NaN/Inf rows are left out)."""
        import open3d as o3d

        reg = o3d.pipelines.registration
        cloud = self._prepare(xyz)
        if self._previous is None:
            self._previous = cloud
            return OdometryStep(self._pose.copy(), aligned=False, fitness=0.0, residual_m=0.0)
        c = self.config
        if len(cloud.points) < c.min_points or len(self._previous.points) < c.min_points:
            step, fitness, residual, aligned = self._step, 0.0, 0.0, False
        else:
            estimation = reg.TransformationEstimationPointToPlane(reg.TukeyLoss(k=c.tukey_k))
            # stop once an iteration changes the fit by < 0.01 %: from the constant-velocity guess that is a few
            # iterations; Open3D's 1e-6 default runs longer for the same pose
            criteria = reg.ICPConvergenceCriteria(
                relative_fitness=1e-4, relative_rmse=1e-4, max_iteration=c.max_iterations
            )
            result = reg.registration_icp(cloud, self._previous, c.max_distance_m, self._step, estimation, criteria)
            fitness, residual, aligned = result.fitness, result.inlier_rmse, result.fitness >= c.min_fitness
            step = result.transformation if aligned else self._step
        self._step = np.asarray(step, dtype=np.float64)
        self._pose = self._pose @ self._step
        self._previous = cloud
        return OdometryStep(self._pose.copy(), aligned, float(fitness), float(residual))

    def _prepare(self, xyz: np.ndarray) -> Any:
        import open3d as o3d

        points = np.asarray(xyz, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise PerceptionError(f"odometry: points of shape {points.shape}; expected (N, 3)")
        c = self.config
        points = points[np.isfinite(points).all(axis=1)]
        distance = np.hypot(points[:, 0], points[:, 1])
        points = points[(distance >= c.min_range_m) & (distance <= c.max_range_m)]
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        cloud = cloud.voxel_down_sample(c.voxel_m)
        if len(cloud.points) < c.min_points:
            return cloud
        cloud.estimate_covariances(o3d.geometry.KDTreeSearchParamHybrid(radius=c.normal_radius_m, max_nn=20))
        covariances = np.asarray(cloud.covariances)
        values, vectors = np.linalg.eigh(covariances)  # eigenvalues ascending
        cloud.normals = o3d.utility.Vector3dVector(vectors[:, :, 0])  # across the plane: the least spread
        # a neighbourhood spread along one line (a pole, an edge, a ground ring whose next ring lies beyond the
        # search radius) has no plane: its "normal" is any direction across the line. On a ground ring that
        # may lie in the ground, and since the rings move with the sensor such points pull the fit toward no
        # motion (0.61 m short at the first step of the simulator's v2 street, seed 0, before this filter)
        linearity = 1.0 - values[:, 1] / np.maximum(values[:, 2], 1e-12)
        # Open3D gives a point with fewer than 3 neighbours the identity: no plane either
        lonely = np.all(covariances == np.eye(3), axis=(1, 2))
        return cloud.select_by_index(np.flatnonzero((linearity < c.max_linearity) & ~lonely).tolist())
