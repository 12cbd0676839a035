"""What to ask of a CARLA server: connection, ego vehicle, LiDAR and camera settings (pure data).

Poses here are in ROS axes (x forward, y left, z up; roll, pitch, yaw in degrees about x, y, z):
the client turns them into CARLA transforms. The LiDAR defaults to an HDL-64E as KITTI mounted it,
from the project's beam table (``calib/data/hdl64e.yaml``): its top and bottom beam angles, range
and spin rate, and 2048 firings per turn (the project's 64 x 2048 range image). CARLA spaces its
channels evenly between ``upper_fov`` and ``lower_fov`` where the real sensor's are uneven (two laser
blocks), so rows match the real ones at the top and bottom and only approximately between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from perception_ws.calib.camera import PinholeCamera
from perception_ws.calib.sensors import get_sensor
from perception_ws.errors import SimulatorError
from perception_ws.sim.carla.convert import camera_from_fov, fov_of_camera, ros_rotation

_HDL64E_COLUMNS = 2048


@dataclass(frozen=True)
class Pose:
    """A child frame in its parent, ROS axes: metres, and degrees about x (roll), y (pitch), z (yaw)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0

    def matrix(self) -> np.ndarray:
        """4x4 child -> parent transform."""
        m = np.eye(4)
        m[:3, :3] = ros_rotation(self.roll_deg, self.pitch_deg, self.yaw_deg)
        m[:3, 3] = (self.x, self.y, self.z)
        return m


def _positive(where: str, **values: float) -> None:
    for key, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise SimulatorError(f"{where}: {key} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class LidarSettings:
    """Blueprint attributes shared by ``sensor.lidar.ray_cast_semantic`` and ``sensor.lidar.ray_cast``
    (:meth:`like` builds them from a project sensor model).
    """

    channels: int
    upper_fov_deg: float
    lower_fov_deg: float
    points_per_second: int
    rotation_hz: float
    range_m: float
    #: name written into ``Scan.sensor``.
    name: str = "carla-hdl64e"

    def __post_init__(self) -> None:
        _positive(
            "CARLA LiDAR",
            channels=self.channels,
            points_per_second=self.points_per_second,
            rotation_hz=self.rotation_hz,
            range_m=self.range_m,
        )
        if not (-90.0 < self.lower_fov_deg < self.upper_fov_deg < 90.0):
            raise SimulatorError(
                f"CARLA LiDAR: fov {self.upper_fov_deg}..{self.lower_fov_deg} degrees; expected "
                "-90 < lower_fov < upper_fov < 90"
            )

    @classmethod
    def like(cls, sensor: str = "hdl64e", columns: int = _HDL64E_COLUMNS) -> LidarSettings:
        """Settings imitating a project sensor model: its beam count, top and bottom beams, range, rate."""
        model = get_sensor(sensor)
        top, bottom = model.vertical_fov_deg
        return cls(
            channels=model.height,
            upper_fov_deg=top,
            lower_fov_deg=bottom,
            points_per_second=round(model.height * columns * model.rate_hz),
            rotation_hz=model.rate_hz,
            range_m=model.max_range_m,
            name=f"carla-{model.name}",
        )

    def attributes(self) -> dict[str, str]:
        """Blueprint attribute values (CARLA takes them as strings)."""
        return {
            "channels": str(int(self.channels)),
            "upper_fov": f"{self.upper_fov_deg:.6g}",
            "lower_fov": f"{self.lower_fov_deg:.6g}",
            "points_per_second": str(int(self.points_per_second)),
            "rotation_frequency": f"{self.rotation_hz:.6g}",
            "range": f"{self.range_m:.6g}",
        }


def _kitti_fov() -> float:
    return fov_of_camera(PinholeCamera.kitti_default())


@dataclass(frozen=True)
class CameraSettings:
    """An RGB camera and a semantic segmentation camera at one pose in the LiDAR frame.

    Defaults: KITTI's colour camera (1242 x 375, its focal length as a horizontal fov), about where
    KITTI's sits relative to its Velodyne (27 cm ahead, 8 cm lower), looking straight ahead.
    """

    width: int = 1242
    height: int = 375
    fov_deg: float = field(default_factory=_kitti_fov)
    pose: Pose = field(default_factory=lambda: Pose(x=0.27, z=-0.08))
    semantic: bool = True

    def __post_init__(self) -> None:
        _positive("CARLA camera", width=self.width, height=self.height)
        if not (0.0 < self.fov_deg < 180.0):
            raise SimulatorError(f"CARLA camera: fov_deg must lie in (0, 180), got {self.fov_deg}")

    def pinhole(self) -> PinholeCamera:
        return camera_from_fov(self.width, self.height, self.fov_deg)

    def attributes(self) -> dict[str, str]:
        return {
            "image_size_x": str(int(self.width)),
            "image_size_y": str(int(self.height)),
            "fov": f"{self.fov_deg:.6g}",
        }


@dataclass(frozen=True)
class CarlaConfig:
    """One CARLA session: where the server is, which world, what the ego vehicle carries."""

    host: str = "localhost"
    port: int = 2000
    #: seconds to wait for the first answer; short, so that a missing server is reported quickly.
    connect_timeout_s: float = 5.0
    #: seconds any later call may take (loading a town takes tens of seconds).
    timeout_s: float = 60.0
    #: a town to load ("Town10HD_Opt"); None keeps the server's current one.
    town: str | None = None
    #: simulated seconds per tick; None: one LiDAR turn per tick (1 / rotation_hz).
    delta_s: float | None = None
    #: blueprint filter of the ego vehicle.
    vehicle: str = "vehicle.tesla.model3"
    #: index into the map's spawn points; None: chosen by ``seed``.
    spawn_point: int | None = None
    seed: int = 0
    autopilot: bool = True
    traffic_manager_port: int = 8000
    #: other vehicles to spawn, driving on autopilot.
    npc_vehicles: int = 0
    lidar: LidarSettings = field(default_factory=LidarSettings.like)
    #: the LiDAR in the vehicle frame (CARLA vehicles have their origin on the ground): KITTI's 1.73 m.
    lidar_pose: Pose = field(default_factory=lambda: Pose(z=1.73))
    #: also a plain ``sensor.lidar.ray_cast`` (intensity, no labels) at the same pose.
    plain_lidar: bool = False
    #: dropout and noise of the plain LiDAR (CARLA's own defaults drop 45% of the points).
    plain_dropoff_rate: float = 0.0
    plain_noise_stddev: float = 0.0
    camera: CameraSettings | None = field(default_factory=CameraSettings)
    #: drop the returns from the ego vehicle's own body.
    drop_ego_points: bool = True
    #: seconds to wait for each sensor's data of a tick.
    sensor_timeout_s: float = 10.0
    #: ticks run before the first frame (the vehicle settles on its wheels).
    warmup_ticks: int = 5

    def __post_init__(self) -> None:
        _positive(
            "CARLA config",
            port=self.port,
            connect_timeout_s=self.connect_timeout_s,
            timeout_s=self.timeout_s,
            sensor_timeout_s=self.sensor_timeout_s,
        )
        if self.delta_s is not None:
            _positive("CARLA config", delta_s=self.delta_s)
        if self.npc_vehicles < 0 or self.warmup_ticks < 0:
            raise SimulatorError(
                f"CARLA config: npc_vehicles and warmup_ticks must be >= 0, got {self.npc_vehicles}, "
                f"{self.warmup_ticks}"
            )
        if not 0.0 <= self.plain_dropoff_rate <= 1.0:
            raise SimulatorError(f"CARLA config: plain_dropoff_rate must lie in 0..1, got {self.plain_dropoff_rate}")

    @property
    def tick_s(self) -> float:
        return self.delta_s if self.delta_s is not None else 1.0 / self.lidar.rotation_hz

    def plain_lidar_attributes(self) -> dict[str, str]:
        return {
            **self.lidar.attributes(),
            "dropoff_general_rate": f"{self.plain_dropoff_rate:.6g}",
            "dropoff_zero_intensity": "0",
            "noise_stddev": f"{self.plain_noise_stddev:.6g}",
        }
