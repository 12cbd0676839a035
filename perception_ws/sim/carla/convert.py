"""CARLA's binary sensor buffers and left-handed frames -> numpy arrays in ROS's REP-103 frames.

Buffers (``raw_data`` of the measurements, CARLA "Sensors reference", Docs/ref_sensors.md in CARLA's repository, and the
``SemanticLidarDetection`` doxygen page): a semantic LiDAR sends per point four float32 (x, y, z,
cosine of the incidence angle) then two uint32 (index of the actor hit, its semantic tag), 24 bytes,
points grouped by channel (``get_point_count(channel)``; channel 0 is the highest laser, the lasers
are spread evenly from ``upper_fov`` down to ``lower_fov``); a plain LiDAR sends float32 x, y, z,
intensity; cameras send 32-bit BGRA pixels, row-major, and a semantic segmentation camera writes
the tag into the red byte. All of it is little-endian x86 memory.

Frames: CARLA (Unreal) is left-handed, x forward, y right, z up, in metres; a rotation is pitch
(nose up positive), yaw (turning right positive) and roll, in degrees, applied roll, then pitch, then
yaw. ROS (REP-103) is right-handed, x forward, y left, z up. Flipping y, ``S = diag(1, -1, 1)``,
maps one onto the other: a point becomes ``S p``, a rotation matrix ``S R S``, which works out to
yaw -> -yaw, pitch -> -pitch, roll -> roll. Pixels need no change (both images run right and down),
but the camera's pose does, and its optical frame (z forward, x right, y down) hangs off the ROS one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.errors import CalibrationError, CloudFormatError
from perception_ws.sim.world.mesh import rotation_x, rotation_y, rotation_z

#: one point of ``sensor.lidar.ray_cast_semantic`` (24 bytes).
SEMANTIC_LIDAR_RECORD = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("cos_inc_angle", "<f4"),
        ("object_idx", "<u4"),
        ("object_tag", "<u4"),
    ]
)
#: one point of ``sensor.lidar.ray_cast`` (16 bytes).
LIDAR_RECORD = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
_BGRA_BYTES = 4

#: y flip between CARLA's left-handed frame and ROS's right-handed one (its own inverse).
FLIP_Y = np.diag([1.0, -1.0, 1.0])
#: rotation from a ROS body frame (x forward, y left, z up) to a camera optical frame
#: (z forward, x right, y down): x_opt = -y, y_opt = -z, z_opt = x.
BODY_TO_OPTICAL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def _records(raw: bytes | memoryview, dtype: np.dtype, what: str) -> np.ndarray:
    buffer = memoryview(raw).cast("B")
    if len(buffer) % dtype.itemsize:
        raise CloudFormatError(
            f"{what} raw_data has {len(buffer)} bytes, not a multiple of the {dtype.itemsize}-byte point record "
            f"({', '.join(f'{name} {dtype[name].name}' for name in dtype.names or ())})"
        )
    return np.frombuffer(buffer, dtype=dtype)


def parse_semantic_lidar(raw: bytes | memoryview) -> np.ndarray:
    """A semantic LiDAR ``raw_data`` buffer -> structured array of :data:`SEMANTIC_LIDAR_RECORD` (a copy).

    Coordinates stay in CARLA's frame; :func:`carla_points_to_ros` turns them.
    """
    return _records(raw, SEMANTIC_LIDAR_RECORD, "semantic LiDAR").copy()


def parse_lidar(raw: bytes | memoryview) -> np.ndarray:
    """A plain LiDAR ``raw_data`` buffer -> structured array of :data:`LIDAR_RECORD` (a copy), CARLA frame."""
    return _records(raw, LIDAR_RECORD, "LiDAR").copy()


def channels_from_counts(counts: Sequence[int] | np.ndarray, n_points: int) -> np.ndarray:
    """Channel (laser) of every point (uint16) from the points-per-channel counts of a measurement.

    CARLA stores points channel by channel, channel 0 = the highest laser, so this is the ring
    numbered top-down.
    """
    c = np.asarray(counts, dtype=np.int64).reshape(-1)
    if np.any(c < 0) or int(c.sum()) != n_points:
        raise CloudFormatError(
            f"LiDAR point counts per channel sum to {int(c.sum())}, expected the {n_points} points of the buffer"
        )
    return np.repeat(np.arange(len(c), dtype=np.uint16), c)


def carla_points_to_ros(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(N, 3) float32 points in the ROS frame from CARLA coordinates: y flips, x and z stay."""
    xyz = np.empty((len(x), 3), dtype=np.float32)
    xyz[:, 0], xyz[:, 1], xyz[:, 2] = x, -np.asarray(y, dtype=np.float32), z
    return xyz


def ros_rotation_from_carla(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """The right-handed (ROS) 3x3 rotation of a CARLA ``Rotation(pitch, yaw, roll)``.

    CARLA's own matrix R_c (left-handed coordinates) is ``Rz(yaw) Ry(-pitch) Rx(-roll)`` in the usual
    right-handed formulas; ``S R_c S`` flips the sign of yaw and pitch and keeps roll.
    """
    return (
        rotation_z(-math.radians(yaw_deg)) @ rotation_y(-math.radians(pitch_deg)) @ rotation_x(math.radians(roll_deg))
    )


def ros_pose_from_carla(location: tuple[float, float, float], rotation: tuple[float, float, float]) -> np.ndarray:
    """4x4 child -> parent transform in ROS axes from a CARLA ``location (x, y, z)`` and
    ``rotation (pitch, yaw, roll)`` in degrees (a ``carla.Transform``'s fields).
    """
    pose = np.eye(4)
    pose[:3, :3] = ros_rotation_from_carla(*rotation)
    pose[:3, 3] = FLIP_Y @ np.asarray(location, dtype=np.float64)
    return pose


def carla_pose_from_ros(pose: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The inverse of :func:`ros_pose_from_carla`: ``(location (x, y, z), rotation (pitch, yaw, roll))``
    in CARLA's axes and degrees for a 4x4 ROS transform.
    """
    m = np.asarray(pose, dtype=np.float64)
    if m.shape != (4, 4):
        raise CalibrationError(f"pose has shape {m.shape}, expected (4, 4)")
    r = FLIP_Y @ m[:3, :3] @ FLIP_Y  # CARLA's own matrix: column 0 = (cp cy, cp sy, sp)
    pitch = math.degrees(math.asin(float(np.clip(r[2, 0], -1.0, 1.0))))
    yaw = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    roll = math.degrees(math.atan2(-r[2, 1], r[2, 2]))
    x, y, z = (FLIP_Y @ m[:3, 3]).tolist()
    return (x, y, z), (pitch, yaw, roll)


def ros_rotation(roll_deg: float, pitch_deg: float, yaw_deg: float) -> np.ndarray:
    """A REP-103 rotation from roll, pitch, yaw in degrees (fixed axes x, y, z: R = Rz Ry Rx)."""
    return rotation_z(math.radians(yaw_deg)) @ rotation_y(math.radians(pitch_deg)) @ rotation_x(math.radians(roll_deg))


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    out = np.eye(4)
    out[:3, :3] = pose[:3, :3].T
    out[:3, 3] = -pose[:3, :3].T @ pose[:3, 3]
    return out


def lidar_to_camera(camera_in_lidar: np.ndarray) -> Extrinsic:
    """Extrinsic mapping LiDAR points into the camera's optical frame (what ``PinholeCamera.project``
    takes), from the camera body pose in the LiDAR frame (4x4, ROS axes, camera looking along +x).
    """
    optical = np.eye(4)
    optical[:3, :3] = BODY_TO_OPTICAL
    return Extrinsic(optical @ invert_pose(np.asarray(camera_in_lidar, dtype=np.float64)), "CARLA LiDAR -> camera")


def camera_from_fov(width: int, height: int, fov_deg: float) -> PinholeCamera:
    """The pinhole model of a CARLA camera: square pixels, horizontal ``fov`` across the full width.

    f = w / (2 tan(fov / 2)); the optical axis meets the image centre, which under the project's
    pixel convention (pixel (col, row) centred at (u, v) = (col, row)) is ((w - 1) / 2, (h - 1) / 2).
    """
    if not (int(width) > 0 and int(height) > 0):
        raise CalibrationError(f"CARLA camera size {width}x{height}; expected positive width and height")
    if not (0.0 < fov_deg < 180.0):
        raise CalibrationError(f"CARLA camera fov {fov_deg} degrees; expected 0 < fov < 180")
    f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return PinholeCamera(K, int(width), int(height))


def fov_of_camera(camera: PinholeCamera) -> float:
    """The horizontal fov (degrees) a CARLA camera needs to image like ``camera`` (its fx and width)."""
    return math.degrees(2.0 * math.atan(camera.width / (2.0 * camera.fx)))


def _bgra(raw: bytes | memoryview, width: int, height: int, what: str) -> np.ndarray:
    buffer = memoryview(raw).cast("B")
    expected = width * height * _BGRA_BYTES
    if len(buffer) != expected:
        raise CloudFormatError(f"{what} raw_data has {len(buffer)} bytes, expected {width}x{height} BGRA = {expected}")
    return np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, _BGRA_BYTES)


def bgra_to_rgb(raw: bytes | memoryview, width: int, height: int) -> np.ndarray:
    """A camera's BGRA ``raw_data`` -> (H, W, 3) uint8 RGB (a copy; alpha dropped)."""
    return _bgra(raw, width, height, "camera image")[:, :, 2::-1].copy()


def tags_from_segmentation(raw: bytes | memoryview, width: int, height: int) -> np.ndarray:
    """A semantic segmentation camera's BGRA ``raw_data`` -> (H, W) uint8 CARLA tags (its red byte)."""
    return _bgra(raw, width, height, "semantic segmentation image")[:, :, 2].copy()
