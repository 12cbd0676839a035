"""Pinhole cameras and rigid LiDAR->camera transforms: how a 3D point becomes a pixel.

:class:`PinholeCamera` follows the ROS ``sensor_msgs/CameraInfo`` model so that a camera read from a
topic, from a KITTI calibration or made up for the simulator behaves the same:

* without distortion the camera images the *rectified* picture: ``(u w, v w, w) = P · [R x; 1]``
  (for a plain pinhole P = [K | 0] and R = I, this is just ``K x``);
* with a non-zero plumb_bob distortion (k1 k2 p1 p2 k3) the camera images the *raw* picture: the
  point is normalised by its depth, distorted (Brown-Conrady, as OpenCV and ROS define it) and
  mapped through ``K``.

Pixel coordinates put the centre of pixel (col, row) at (u, v) = (col, row), as OpenCV and ROS do,
so the image covers ``-0.5 <= u < width - 0.5`` and a projected point's pixel is ``round(uv)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception_ws.errors import CalibrationError

#: tolerance on |R Rᵀ - I| and |det R - 1|: loose enough for matrices printed with 6 significant
#: digits (KITTI's are within 1e-6), tight enough to reject scaled, sheared or transposed-wrong ones.
ROTATION_TOLERANCE = 1e-3

#: the distortion models this module can apply.
PLUMB_BOB = "plumb_bob"

# Intrinsics of KITTI's left colour camera (P_rect_02 of the 2011_09_26 raw recordings, the drives
# SqueezeSeg's KITTI frames come from) and its rectified image size.
_KITTI_FX = 721.5377
_KITTI_FY = 721.5377
_KITTI_CX = 609.5593
_KITTI_CY = 172.854
_KITTI_SIZE = (1242, 375)


def check_rotation(R: np.ndarray, what: str) -> np.ndarray:
    """``R`` as a float64 3x3 rotation, or a CalibrationError naming ``what`` and why it is not one."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3):
        raise CalibrationError(f"{what}: rotation has shape {R.shape}, expected (3, 3)")
    if not np.all(np.isfinite(R)):
        raise CalibrationError(f"{what}: rotation holds non-finite values")
    det = float(np.linalg.det(R))
    off = float(np.abs(R @ R.T - np.eye(3)).max())
    if off > ROTATION_TOLERANCE or abs(det - 1.0) > ROTATION_TOLERANCE:
        raise CalibrationError(
            f"{what}: not a rotation (det = {det:.6g}, max |R Rᵀ - I| = {off:.3g}); "
            f"expected an orthonormal 3x3 matrix with determinant +1"
        )
    return R


@dataclass(eq=False)  # numpy fields: compare matrices explicitly
class Extrinsic:
    """A rigid transform as a 4x4 matrix mapping points of one frame (the LiDAR) into another (a camera)."""

    matrix: np.ndarray
    #: where the transform came from, used in error messages.
    source: str = "extrinsic"

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape == (3, 4):
            m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
        if m.shape != (4, 4):
            raise CalibrationError(f"{self.source}: transform has shape {m.shape}, expected (4, 4) or (3, 4)")
        if not np.all(np.isfinite(m)):
            raise CalibrationError(f"{self.source}: transform holds non-finite values")
        if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
            raise CalibrationError(f"{self.source}: last row is {m[3].tolist()}, expected [0, 0, 0, 1]")
        check_rotation(m[:3, :3], self.source)
        self.matrix = m

    @classmethod
    def from_3x4(cls, matrix: np.ndarray, source: str = "extrinsic") -> Extrinsic:
        """From a 3x4 [R | t] (e.g. KITTI's Tr_velo_to_cam)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (3, 4):
            raise CalibrationError(f"{source}: transform has shape {m.shape}, expected (3, 4)")
        return cls(m, source)

    @classmethod
    def from_rt(cls, R: np.ndarray, t: np.ndarray, source: str = "extrinsic") -> Extrinsic:
        """From a rotation R (3x3) and a translation t (3,)."""
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        if t.shape != (3,):
            raise CalibrationError(f"{source}: translation has {t.size} values, expected 3")
        m = np.eye(4)
        m[:3, :3] = check_rotation(R, source)
        m[:3, 3] = t
        return cls(m, source)

    @classmethod
    def identity(cls) -> Extrinsic:
        return cls(np.eye(4), "identity")

    @property
    def rotation(self) -> np.ndarray:
        return self.matrix[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        return self.matrix[:3, 3]

    def inverse(self) -> Extrinsic:
        """The transform back (camera -> LiDAR), exact for a rigid transform: [Rᵀ | -Rᵀ t]."""
        R, t = self.rotation, self.translation
        m = np.eye(4)
        m[:3, :3] = R.T
        m[:3, 3] = -R.T @ t
        return Extrinsic(m, f"inverse of {self.source}")

    def compose(self, first: Extrinsic) -> Extrinsic:
        """The transform that applies ``first`` and then this one."""
        return Extrinsic(self.matrix @ first.matrix, f"{self.source} after {first.source}")

    def apply(self, xyz: np.ndarray) -> np.ndarray:
        """Points (N, 3) in the source frame -> (N, 3) float64 in the target frame."""
        pts = _as_points(xyz, self.source)
        return pts @ self.rotation.T + self.translation


def _as_points(xyz: np.ndarray, what: str) -> np.ndarray:
    pts = np.asarray(xyz, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise CalibrationError(f"{what}: points have shape {pts.shape}, expected (N, 3)")
    return pts


def _matrix(value: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    """A float64 matrix of ``shape`` from a flat or shaped sequence, or a CalibrationError."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != shape[0] * shape[1]:
        raise CalibrationError(f"{what}: has {arr.size} values, expected {shape[0] * shape[1]} ({shape[0]}x{shape[1]})")
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"{what}: holds non-finite values")
    return arr.reshape(shape)


@dataclass(eq=False)  # numpy fields: compare matrices explicitly
class PinholeCamera:
    """A calibrated camera: projection ``P`` (3x4; a 3x3 ``K`` is taken as [K | 0]), image size,
    rectification ``R`` and optional plumb_bob distortion ``(k1, k2, p1, p2, k3)``.

    ``K`` defaults to the left 3x3 block of ``P`` (true for rectified cameras such as KITTI's).
    """

    P: np.ndarray
    width: int
    height: int
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(5))
    distortion_model: str = PLUMB_BOB
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    #: the raw camera matrix; empty means "the left 3x3 block of P".
    K: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self) -> None:
        P = np.asarray(self.P, dtype=np.float64)
        if P.shape == (3, 3):
            P = np.hstack([P, np.zeros((3, 1))])
        self.P = _matrix(P, (3, 4), "camera projection P")
        self.K = _matrix(self.P[:, :3] if np.size(self.K) == 0 else self.K, (3, 3), "camera matrix K")
        self.R = _matrix(self.R, (3, 3), "camera rectification R")
        if not (self.K[0, 0] > 0 and self.K[1, 1] > 0):
            raise CalibrationError(
                f"camera matrix K: focal lengths fx={self.K[0, 0]}, fy={self.K[1, 1]}; expected both > 0 "
                "(an all-zero K means an uncalibrated camera)"
            )
        if abs(np.linalg.det(self.P[:, :3])) < 1e-12:
            raise CalibrationError("camera projection P: left 3x3 block is singular; expected an invertible K R")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise CalibrationError(f"camera image size {self.width}x{self.height}; expected positive width and height")
        self.width, self.height = int(self.width), int(self.height)
        d = np.asarray(self.distortion, dtype=np.float64).reshape(-1)
        if d.size and np.all(d == 0.0):
            d = np.zeros(0)  # all-zero coefficients of any model mean "no distortion"
        if d.size and self.distortion_model != PLUMB_BOB:
            raise CalibrationError(
                f"camera distortion model {self.distortion_model!r} is not supported; expected {PLUMB_BOB!r}"
            )
        if d.size not in (0, 4, 5):
            raise CalibrationError(f"camera distortion has {d.size} values, expected 5 (k1 k2 p1 p2 k3)")
        if not np.all(np.isfinite(d)):
            raise CalibrationError("camera distortion holds non-finite values")
        # OpenCV accepts 4 coefficients (k3 = 0); store the 5 plumb_bob ones.
        self.distortion = np.pad(d, (0, 5 - d.size))
        self.distortion_model = PLUMB_BOB

    @classmethod
    def kitti_default(cls) -> PinholeCamera:
        """A KITTI-like left colour camera: the intrinsics of KITTI's P2, 1242x375, no distortion.

        Its P has no stereo offset column: a simulator places the camera where it wants through an
        :class:`Extrinsic` instead.
        """
        K = np.array([[_KITTI_FX, 0.0, _KITTI_CX], [0.0, _KITTI_FY, _KITTI_CY], [0.0, 0.0, 1.0]])
        return cls(K, *_KITTI_SIZE)

    @property
    def has_distortion(self) -> bool:
        return bool(np.any(self.distortion != 0.0))

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    def project(self, xyz_cam: np.ndarray, min_depth: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points (N, 3) in the camera frame (z forward) -> ``(uv (N, 2), depth (N,), visible (N,))``.

        ``visible`` = depth > ``min_depth`` and the pixel inside the image (and, with distortion, the
        point inside the region where the distortion polynomial is still monotonic: beyond it the
        polynomial folds far-off points back into the picture). ``uv`` of points at or behind the
        camera is NaN.
        """
        pts = _as_points(xyz_cam, "camera projection")
        if self.has_distortion:
            uv, depth, valid = self._project_raw(pts)
        else:
            uv, depth = project_homogeneous(self.P @ _rotation_4x4(self.R), pts)
            valid = np.ones(len(pts), dtype=bool)
        inside = (
            (uv[:, 0] >= -0.5) & (uv[:, 0] < self.width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < self.height - 0.5)
        )
        return uv, depth, valid & inside & (depth > min_depth)

    def _project_raw(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k1, k2, p1, p2, k3 = self.distortion
        depth = pts[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(depth > 0, pts[:, 0] / depth, np.nan)
            y = np.where(depth > 0, pts[:, 1] / depth, np.nan)
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        # d/dr of r (1 + k1 r² + k2 r⁴ + k3 r⁶) must stay positive, else the mapping has folded.
        monotonic = 1.0 + r2 * (3.0 * k1 + r2 * (5.0 * k2 + r2 * 7.0 * k3)) > 0.0
        K = self.K
        uv = np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], axis=1)
        return uv, depth, monotonic

    @classmethod
    def from_camera_info(cls, info: Any) -> PinholeCamera:
        """From a ``sensor_msgs/CameraInfo`` message or a dict with its field names
        (k, d, r, p, width, height, distortion_model; ROS 1's upper-case K, D, R, P are accepted too).

        An all-zero P (a camera that was never rectified) falls back to [K | 0].
        """

        def get(name: str, default: Any = None) -> Any:
            for key in (name, name.upper()):
                if isinstance(info, Mapping):
                    if key in info:
                        return info[key]
                elif hasattr(info, key):
                    return getattr(info, key)
            if default is None:
                raise CalibrationError(f"CameraInfo: missing field {name!r}")
            return default

        K = _matrix(get("k"), (3, 3), "CameraInfo k")
        P = _matrix(get("p", np.zeros(12)), (3, 4), "CameraInfo p")
        R = _matrix(get("r", np.eye(3)), (3, 3), "CameraInfo r")
        if not np.any(P):
            P = np.hstack([K, np.zeros((3, 1))])
        if not np.any(R):  # an unset r (all zero) means no rectification
            R = np.eye(3)
        return cls(
            P=P,
            width=int(get("width")),
            height=int(get("height")),
            distortion=np.asarray(get("d", []), dtype=np.float64),
            distortion_model=str(get("distortion_model", PLUMB_BOB)) or PLUMB_BOB,
            R=R,
            K=K,
        )

    def to_camera_info_dict(self) -> dict[str, Any]:
        """The sensor_msgs/CameraInfo fields (``CameraInfo(**d)`` builds the message)."""
        return {
            "width": self.width,
            "height": self.height,
            "distortion_model": self.distortion_model,
            "d": self.distortion.tolist(),
            "k": self.K.reshape(-1).tolist(),
            "r": self.R.reshape(-1).tolist(),
            "p": self.P.reshape(-1).tolist(),
        }


def _rotation_4x4(R: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = R
    return m


def project_homogeneous(P: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) through a 3x4 projection ``P`` in homogeneous coordinates: pixel ``uv`` (N, 2)
    and depth ``w`` (N,); ``uv`` is NaN where w <= 0 (at or behind the camera).
    """
    P = _matrix(P, (3, 4), "projection")
    pts = _as_points(xyz, "projection")
    q = pts @ P[:, :3].T + P[:, 3]
    depth = q[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.where((depth > 0)[:, None], q[:, :2] / depth[:, None], np.nan)
    return uv, depth
