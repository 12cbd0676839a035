"""A CARLA session without a server, for the tests of the node's carla backend and of `sim generate --backend carla`:
each tick is a semantic sweep packed in CARLA's documented binary layout (as tests/test_sim_carla.py packs them)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from perception_ws.sim.carla import ActorState, CarlaConfig, CarlaFrame, CarlaTag, semantic_scan
from perception_ws.sim.carla.convert import bgra_to_rgb, lidar_to_camera

CAR_ACTOR = 42
CAR_POINTS, ROAD_POINTS = 6, 4
START_S = 12.5  # CARLA's simulation time at the first frame (the world has run before the session)
FIRST_FRAME = 100  # CARLA's frame number of the first tick


def semantic_record(x: float, y: float, z: float, idx: int, tag: int) -> bytes:
    """One semantic LiDAR point as CARLA sends it: float32 x, y, z, cos_inc_angle, uint32 idx, uint32 tag."""
    return struct.pack("<4f2I", x, y, z, 1.0, idx, tag)


def sweep_buffer() -> tuple[bytes, list[int]]:
    """The semantic LiDAR buffer of every tick and its points per channel: a car 10 m ahead (channel 0, actor
    ``CAR_ACTOR``, CARLA's y to the right) and the road (channel 1)."""
    car = [semantic_record(10.0 + 0.1 * i, 0.2 * i - 0.5, -0.5, CAR_ACTOR, CarlaTag.CAR) for i in range(CAR_POINTS)]
    road = [semantic_record(5.0 + i, 1.0, -1.7, 0, CarlaTag.ROAD) for i in range(ROAD_POINTS)]
    return b"".join(car + road), [CAR_POINTS, ROAD_POINTS]


class StandInSession:
    """A CarlaSession without a server: each tick is :func:`sweep_buffer`, an ego that drives 1 m per tick along
    CARLA's x (the LiDAR 1.73 m above it), the car's actor 10.25 m ahead of the LiDAR, and, with a camera, a
    picture in CARLA's BGRA layout whose red byte is the tick. Counts the sessions opened and closed and keeps
    the configs they were opened with."""

    opened = closed = 0
    configs: ClassVar[list[CarlaConfig]] = []

    def __init__(self, config: CarlaConfig) -> None:
        self.config = config
        StandInSession.configs.append(config)

    def open(self) -> None:
        StandInSession.opened += 1

    def close(self) -> None:
        StandInSession.closed += 1

    def frames(self, count: int | None = None) -> Iterator[CarlaFrame]:
        tick = 0
        while count is None or tick < count:
            yield self._frame(tick)
            tick += 1

    def _frame(self, tick: int) -> CarlaFrame:
        lidar_pose = np.eye(4)
        lidar_pose[:3, 3] = (float(tick), 0.0, 1.73)  # ROS axes
        car_pose = np.eye(4)
        car_pose[:3, 3] = (10.25 + tick, 0.0, 0.0)
        actor = ActorState(CAR_ACTOR, "car", car_pose, np.eye(4), np.array([2.2, 1.0, 1.2]))
        buffer, counts = sweep_buffer()
        scan = semantic_scan(buffer, counts, [actor], lidar_pose, name=f"carla_{tick:08d}")
        out = CarlaFrame(
            frame=FIRST_FRAME + tick, timestamp=START_S + tick * self.config.tick_s, scan=scan, lidar_pose=lidar_pose
        )
        camera = self.config.camera
        if camera is not None:
            bgra = np.zeros((camera.height, camera.width, 4), np.uint8)
            bgra[..., 0], bgra[..., 2] = 200, tick  # blue 200, red = the tick
            out.image = bgra_to_rgb(bgra.tobytes(), camera.width, camera.height)
            out.camera, out.extrinsic = camera.pinhole(), lidar_to_camera(camera.pose.matrix())
        return out
