"""KITTI calibration: the four rectified projections, the rectifying rotation and the LiDAR->camera
transform, read from any of KITTI's calibration files.

Frames: *LiDAR* (Velodyne: x forward, y left, z up), *rectified camera* (camera 0 after
rectification: x right, y down, z forward). A LiDAR point reaches pixel (u, v) of camera ``i`` by
``(u w, v w, w) = P_i · R0_rect · Tr_velo_to_cam · (x, y, z, 1)`` (docs/algorithms.md §10), all in homogeneous
coordinates, ``w`` being the depth in front of that camera.

Accepted files (:func:`read_kitti_calib`):

* object benchmark ``calib/NNNNNN.txt``: ``P0..P3``, ``R0_rect``, ``Tr_velo_to_cam``, ``Tr_imu_to_velo``;
* odometry / SemanticKITTI ``sequences/NN/calib.txt``: ``P0..P3`` and ``Tr`` (points are already in the
  rectified frame, so ``R0_rect`` is the identity);
* raw recordings: ``calib_cam_to_cam.txt`` (``P_rect_00..03``, ``R_rect_00``) beside
  ``calib_velo_to_cam.txt`` (``R``, ``T``) and optionally ``calib_imu_to_velo.txt``; pass either file
  or the folder holding them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception_ws.calib.camera import Extrinsic, PinholeCamera, check_rotation, project_homogeneous
from perception_ws.errors import CalibrationError

#: the rectified image size of most KITTI drives (each drive's real size is in its images).
KITTI_IMAGE_SIZE = (1242, 375)

_RAW_CAM_TO_CAM = "calib_cam_to_cam.txt"
_RAW_VELO_TO_CAM = "calib_velo_to_cam.txt"
_RAW_IMU_TO_VELO = "calib_imu_to_velo.txt"


@dataclass(eq=False)  # numpy fields: compare matrices explicitly
class KittiCalib:
    """One frame's calibration. Matrices are float64; ``source`` names the file(s) for messages."""

    P0: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    P3: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    Tr_imu_to_velo: np.ndarray | None = None
    source: str = "KITTI calibration"

    def __post_init__(self) -> None:
        for key in ("P0", "P1", "P2", "P3"):
            P = _checked(getattr(self, key), (3, 4), key, self.source)
            if abs(np.linalg.det(P[:, :3])) < 1e-12:
                raise CalibrationError(f"{key} in {self.source}: left 3x3 block is singular; expected K (3x3) | t")
            setattr(self, key, P)
        self.R0_rect = check_rotation(
            _checked(self.R0_rect, (3, 3), "R0_rect", self.source), f"R0_rect in {self.source}"
        )
        tr = _checked(self.Tr_velo_to_cam, (3, 4), "Tr_velo_to_cam", self.source)
        self.Tr_velo_to_cam = Extrinsic.from_3x4(tr, f"Tr_velo_to_cam in {self.source}").matrix[:3]
        if self.Tr_imu_to_velo is not None:
            imu = _checked(self.Tr_imu_to_velo, (3, 4), "Tr_imu_to_velo", self.source)
            self.Tr_imu_to_velo = Extrinsic.from_3x4(imu, f"Tr_imu_to_velo in {self.source}").matrix[:3]
        rect = np.eye(4)
        rect[:3, :3] = self.R0_rect
        velo = np.vstack([self.Tr_velo_to_cam, [0.0, 0.0, 0.0, 1.0]])
        # R0_rect is orthonormal only to the printed precision: invert the product exactly so that
        # velo -> cam -> velo round-trips to float precision.
        self._velo_to_rect = rect @ velo
        self._rect_to_velo = np.linalg.inv(self._velo_to_rect)

    def projection(self, cam: int) -> np.ndarray:
        """The rectified 3x4 projection of camera ``cam`` (0, 1 grey; 2, 3 colour)."""
        if cam not in (0, 1, 2, 3):
            raise CalibrationError(f"{self.source}: camera {cam} does not exist; expected 0, 1, 2 or 3")
        P: np.ndarray = getattr(self, f"P{cam}")
        return P

    def extrinsic(self) -> Extrinsic:
        """LiDAR -> rectified camera frame (R0_rect · Tr_velo_to_cam) as a rigid transform."""
        return Extrinsic(self._velo_to_rect, f"R0_rect · Tr_velo_to_cam of {self.source}")

    def velo_to_cam(self, xyz: np.ndarray) -> np.ndarray:
        """LiDAR points (N, 3) -> (N, 3) float64 in the rectified camera frame."""
        pts = _points(xyz, self.source)
        return pts @ self._velo_to_rect[:3, :3].T + self._velo_to_rect[:3, 3]

    def cam_to_velo(self, xyz_cam: np.ndarray) -> np.ndarray:
        """Rectified camera points (N, 3) -> (N, 3) float64 in the LiDAR frame."""
        pts = _points(xyz_cam, self.source)
        return pts @ self._rect_to_velo[:3, :3].T + self._rect_to_velo[:3, 3]

    def velo_to_image(self, xyz: np.ndarray, cam: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """LiDAR points (N, 3) -> pixel ``uv`` (N, 2) and depth (N,) in camera ``cam``.

        Uses ``P_cam · R0_rect · Tr_velo_to_cam`` in homogeneous coordinates; ``uv`` is NaN for points
        at or behind the camera (depth <= 0). Whether a pixel lies inside the image is the caller's
        question (see :meth:`camera` and :meth:`PinholeCamera.project`).
        """
        return project_homogeneous(self.projection(cam) @ self._velo_to_rect, _points(xyz, self.source))

    def camera(self, cam: int = 2, image_size: tuple[int, int] = KITTI_IMAGE_SIZE) -> PinholeCamera:
        """Camera ``cam`` as a :class:`PinholeCamera` of ``image_size`` = (width, height).

        Its input frame is the rectified camera frame: ``camera(i).project(velo_to_cam(x))`` is
        :meth:`velo_to_image` plus the visibility test.
        """
        width, height = image_size
        return PinholeCamera(self.projection(cam), width, height)


def _points(xyz: np.ndarray, source: str) -> np.ndarray:
    pts = np.asarray(xyz, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise CalibrationError(f"{source}: points have shape {pts.shape}, expected (N, 3)")
    return pts


def _checked(value: np.ndarray, shape: tuple[int, int], key: str, source: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != shape[0] * shape[1]:
        raise CalibrationError(
            f"{key} in {source}: has {arr.size} values, expected {shape[0] * shape[1]} ({shape[0]}x{shape[1]})"
        )
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"{key} in {source}: holds non-finite values")
    return arr.reshape(shape)


def _read_entries(path: Path) -> dict[str, str]:
    """``KEY: values`` lines -> {KEY: values text}; numbers are parsed on use (raw files hold dates)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot read calibration file ({exc})") from None
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, values = line.partition(":")
        if not sep or not key.strip():
            raise CalibrationError(f"{path}: line {number} is not 'KEY: values': {line.strip()[:60]!r}")
        entries[key.strip()] = values
    return entries


def _values(entries: dict[str, str], key: str, count: int, path: Path) -> np.ndarray:
    if key not in entries:
        raise CalibrationError(f"{path}: missing key {key!r}; found {', '.join(entries) or 'no keys'}")
    words = entries[key].split()
    try:
        values = np.array([float(w) for w in words], dtype=np.float64)
    except ValueError:
        raise CalibrationError(f"{key} in {path}: values are not all numbers: {entries[key].strip()[:60]!r}") from None
    if values.size != count:
        raise CalibrationError(f"{key} in {path}: has {values.size} values, expected {count}")
    return values


def _rt_3x4(entries: dict[str, str], path: Path) -> np.ndarray:
    """A raw-recording rigid transform (``R:`` 9 values, ``T:`` 3 values) as [R | T]."""
    R = _values(entries, "R", 9, path).reshape(3, 3)
    T = _values(entries, "T", 3, path)
    return np.hstack([R, T[:, None]])


def read_kitti_calib(path: str | Path) -> KittiCalib:
    """Read a KITTI calibration (object, odometry or raw-recording style; see the module doc)."""
    p = Path(path)
    if p.is_dir():
        return _read_raw(p / _RAW_CAM_TO_CAM, p / _RAW_VELO_TO_CAM)
    if p.name == _RAW_CAM_TO_CAM:
        return _read_raw(p, p.with_name(_RAW_VELO_TO_CAM))
    if p.name == _RAW_VELO_TO_CAM:
        return _read_raw(p.with_name(_RAW_CAM_TO_CAM), p)
    if not p.is_file():
        raise CalibrationError(f"{p}: no such calibration file")
    entries = _read_entries(p)
    P0, P1, P2, P3 = (_values(entries, f"P{i}", 12, p) for i in range(4))
    if "Tr" in entries and "Tr_velo_to_cam" not in entries:
        # odometry / SemanticKITTI: Tr maps into the already rectified camera-0 frame
        rect, velo = np.eye(3).reshape(-1), _values(entries, "Tr", 12, p)
    else:
        rect, velo = _values(entries, "R0_rect", 9, p), _values(entries, "Tr_velo_to_cam", 12, p)
    imu = _values(entries, "Tr_imu_to_velo", 12, p) if "Tr_imu_to_velo" in entries else None
    return KittiCalib(P0, P1, P2, P3, R0_rect=rect, Tr_velo_to_cam=velo, Tr_imu_to_velo=imu, source=str(p))


def _read_raw(cam_to_cam: Path, velo_to_cam: Path) -> KittiCalib:
    for f in (cam_to_cam, velo_to_cam):
        if not f.is_file():
            raise CalibrationError(
                f"{f}: missing; a raw-recording calibration needs {_RAW_CAM_TO_CAM} and {_RAW_VELO_TO_CAM} side by side"
            )
    cams = _read_entries(cam_to_cam)
    P0, P1, P2, P3 = (_values(cams, f"P_rect_0{i}", 12, cam_to_cam) for i in range(4))
    rect = _values(cams, "R_rect_00", 9, cam_to_cam)
    velo = _rt_3x4(_read_entries(velo_to_cam), velo_to_cam)
    imu_file = velo_to_cam.with_name(_RAW_IMU_TO_VELO)
    imu = _rt_3x4(_read_entries(imu_file), imu_file) if imu_file.is_file() else None
    source = f"{cam_to_cam} + {velo_to_cam}"
    return KittiCalib(P0, P1, P2, P3, R0_rect=rect, Tr_velo_to_cam=velo, Tr_imu_to_velo=imu, source=source)
