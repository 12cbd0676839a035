"""The ``carla`` backend of the simulator's source interface: frames from a CARLA server.

A :class:`~perception_ws.sim.carla.CarlaSession` (or a stand-in with its ``open`` / ``frames`` / ``close``,
as the tests use) is opened from the node's settings: the LiDAR imitates ``sensor.model`` with
``sensor.columns`` firings per turn, and every frame is one synchronous tick of ``1 / sensor.rate_hz``
simulated seconds. A frame's time is CARLA's simulation time since the first frame, so with
``clock.mode: sim`` the stamps (and /clock) follow CARLA's ticks, whatever the server's speed.
"""

from __future__ import annotations

import time

import numpy as np

from perception_ws.calib.tf_tree import FrameTransform
from perception_ws.camera_frame import CameraFrame
from perception_ws.labels import semantickitti_to_kitti3
from perception_ws.sim.carla.client import CarlaSession, SessionFactory
from perception_ws.sim.carla.config import CameraSettings, CarlaConfig, LidarSettings
from perception_ws.sim.carla.convert import invert_pose, lidar_to_camera
from perception_ws.sim.carla.frame import CarlaFrame
from perception_ws.sim.source import SimFrame, cloud_points, mount_transforms, source_stamp_ns, transform
from perception_ws.sim.stream_config import SimConfig


def carla_config(config: SimConfig) -> CarlaConfig:
    """The CARLA session of the node's settings (``carla.*``, ``sensor.*``, ``camera.enabled``)."""
    c, sensor = config.carla, config.sensor
    return CarlaConfig(
        host=c.host,
        port=c.port,
        connect_timeout_s=c.connect_timeout_s,
        town=c.town or None,
        seed=c.seed,
        npc_vehicles=c.traffic,
        delta_s=1.0 / sensor.rate_hz,
        lidar=LidarSettings.like(sensor.model, columns=sensor.columns),
        camera=CameraSettings() if config.camera.enabled else None,
    )


def carla_camera(tick: CarlaFrame, frame_id: str = "camera") -> CameraFrame | None:
    """The tick's picture with its intrinsics and extrinsic, and the segmentation camera's classes as masks
    (0 without one; CARLA's segmentation camera has no actor ids, so ``instance`` is 0 throughout); None
    without a camera.
    """
    if tick.image is None or tick.camera is None or tick.extrinsic is None:
        return None
    shape = tick.image.shape[:2]
    semantic = tick.semantic_image if tick.semantic_image is not None else np.zeros(shape, np.uint8)
    return CameraFrame(
        rgb=tick.image,
        label=semantickitti_to_kitti3(semantic).astype(np.uint8),
        semantic=semantic,
        instance=np.zeros(shape, np.uint32),
        camera=tick.camera,
        extrinsic=tick.extrinsic,
        name=tick.scan.name,
        frame_id=frame_id,
    )


class CarlaSource:
    """See the module doc. The session opens here: a missing server fails in one line naming host:port."""

    def __init__(self, config: SimConfig, session: SessionFactory = CarlaSession) -> None:
        self.config = config
        self.carla = carla_config(config)
        self._lidar_in_vehicle = self.carla.lidar_pose.matrix()
        self._vehicle_in_lidar = invert_pose(self._lidar_in_vehicle)
        self._to_camera = lidar_to_camera(self.carla.camera.pose.matrix()).matrix if self.carla.camera else None
        self.session = session(self.carla)
        self.session.open()
        self._frames = self.session.frames(None)
        self._first_s: float | None = None

    @property
    def period_s(self) -> float:
        return 1.0 / (self.config.sensor.rate_hz * self.config.clock.real_time_factor)

    @property
    def length(self) -> int | None:
        """None: frames without end."""
        return None

    def next_frame(self, index: int, elapsed_s: float) -> SimFrame:
        """Tick the server once (``elapsed_s`` plays no part: a synchronous world waits for the tick)."""
        started = time.perf_counter()
        tick = next(self._frames)
        self._first_s = tick.timestamp if self._first_s is None else self._first_s
        min_points = self.config.ground_truth.min_points
        frames = self.config.frames
        return SimFrame(
            index=index,
            scene_time_s=tick.timestamp - self._first_s,
            points=cloud_points(tick.scan),
            boxes=[b for b in tick.scan.boxes if b.label > 0 and b.num_points >= min_points],
            camera=carla_camera(tick, frames.camera),
            render_ms=(time.perf_counter() - started) * 1e3,
            vehicle=transform(frames.odom, frames.base, tick.lidar_pose @ self._vehicle_in_lidar),
        )

    def frame_stamp_ns(self, frame: SimFrame, wall_ns: int, start_ns: int) -> int:
        return source_stamp_ns(self.config.clock.mode, frame.scene_time_s, wall_ns, start_ns)

    def static_transforms(self) -> list[FrameTransform]:
        f = self.config.frames
        return mount_transforms(f.base, f.lidar, f.camera, self._lidar_in_vehicle, self._to_camera)

    def describe(self) -> str:
        c, s = self.carla, self.config.sensor
        town = c.town or "its current map"
        camera = ", camera" if c.camera else ", no camera"
        return (
            f"CARLA at {c.host}:{c.port} ({town}, {c.npc_vehicles} vehicles, seed {c.seed}): {c.lidar.name} x "
            f"{s.columns} columns, a synchronous tick every {c.tick_s:g} s{camera}"
        )

    def close(self) -> None:
        """Close the session: the server gets its settings back and loses every actor the session spawned."""
        self.session.close()
