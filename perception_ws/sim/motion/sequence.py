"""Simulated drives: a moving scene swept at the sensor rate, with ground-truth tracks per frame.

``render_sequence(scene, duration_s=2.0, rate_hz=10.0)`` plans the scene's traffic once
(:class:`~perception_ws.sim.motion.motion.SceneMotion`) and yields one :class:`SequenceFrame` per sweep at
``t_k = k / rate_hz``: the :class:`~perception_ws.scan.Scan` taken from the ego's pose at ``t_k``
(sensor frame, ``stamp_ns`` rising by one period per frame), optionally the camera picture from the
same pose, and one :class:`TrackTruth` per actor: its instance id (stable over the whole sequence:
it is the actor's), KITTI-3 class, box in the sensor frame and in the world frame, and velocity.

Each sweep is taken at one instant (no rolling-shutter distortion of a spinning sensor). Velocities
are absolute (world frame); in the sensor-frame box they are only rotated into the sensor's axes,
as :class:`~perception_ws.sim.sensor.lidar.Lidar` reports them, so a parked car has zero velocity in both.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np

from perception_ws.boxes import Box3D, transform_box
from perception_ws.camera_frame import CameraFrame
from perception_ws.errors import PerceptionError
from perception_ws.scan import Scan
from perception_ws.sim.motion.motion import EgoState, MotionConfig, SceneMotion
from perception_ws.sim.sensor.camera import SimCamera
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.raycaster import Raycaster
from perception_ws.sim.world.scene import Scene


@dataclass(eq=False)  # numpy fields
class TrackTruth:
    """One actor at one frame."""

    instance: int
    label: int  # KITTI-3 id (0 for vans and trucks, which KITTI-3 does not count)
    name: str  # KITTI type: Car, Van, Truck, Pedestrian, Cyclist
    box_sensor: Box3D  # sensor frame; track_id = instance; velocity: the world velocity in sensor axes
    box_world: Box3D  # world frame
    velocity: np.ndarray  # (3,) m/s, world frame
    num_points: int  # LiDAR points on the actor in this frame's sweep
    moving: bool  # the actor has a path (it may be waiting on it)


@dataclass(eq=False)
class SequenceFrame:
    """One frame of a simulated sequence: the scan, the ego state and pose, the true tracks and the camera image."""

    index: int
    time_s: float
    stamp_ns: int
    ego: EgoState
    #: (4, 4) sensor frame -> world frame at this frame
    sensor_to_world: np.ndarray
    scan: Scan
    tracks: list[TrackTruth]
    camera: CameraFrame | None = None

    def box_to_world(self, box: Box3D) -> Box3D:
        """A sensor-frame box (e.g. a detection of this frame's scan) in the world frame (yaw-only)."""
        return transform_box(box, self.sensor_to_world)


def frame_count(duration_s: float, rate_hz: float) -> int:
    """Sweeps in ``duration_s`` at ``rate_hz`` (t = 0, 1/rate, … below the duration), at least one."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise PerceptionError(f"sim sequence: duration_s must be a finite number of seconds > 0; got {duration_s}")
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise PerceptionError(f"sim sequence: rate_hz must be a finite rate > 0; got {rate_hz}")
    return max(1, math.ceil(duration_s * rate_hz - 1e-9))


def render_sequence(
    scene: Scene,
    duration_s: float = 2.0,
    rate_hz: float = 10.0,
    *,
    lidar: Lidar | None = None,
    camera: SimCamera | None = None,
    backend: str = "auto",
    seed: int = 0,
    start_ns: int = 0,
    motion: SceneMotion | None = None,
    progress: bool = False,
) -> Iterator[SequenceFrame]:
    """Yield the frames of a drive through ``scene`` (see the module doc); deterministic for a scene and seed.

    ``seed`` drives the LiDAR noise (frame ``k`` uses its own stream); ``motion`` (planned for this
    scene, e.g. with a :class:`MotionConfig`) is planned here if not given.
    """
    frames = frame_count(duration_s, rate_hz)
    if motion is None:
        motion = SceneMotion(scene, MotionConfig())
    elif motion.scene is not scene:
        raise PerceptionError(f"sim sequence: the motion was planned for scene {motion.scene.seed}, not this one")
    lidar = lidar or Lidar()
    layers = motion.raycaster(backend)
    caster = cast(Raycaster, layers)  # casts like any Raycaster (its name is a read-only property)
    from tqdm import tqdm

    for k in tqdm(range(frames), desc="sim sequence", unit="frame", disable=not progress, file=sys.stderr):
        t = k / rate_hz
        stamp = int(start_ns) + round(k * 1e9 / rate_hz)
        world = motion.scene_at(t)
        layers.update(world.soup)
        ego = motion.ego(t)
        frame_seed = int(np.random.SeedSequence([seed, k]).generate_state(1, np.uint32)[0])
        name = f"sim-{scene.seed}-{k:04d}"
        scan = lidar.scan(world, caster, ego.pose, seed=frame_seed, name=name)
        scan.stamp_ns = stamp
        rot, trans = lidar.pose_in_world(ego.pose)
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rot, trans
        picture = camera.render(world, caster, ego.pose, name=name, stamp_ns=stamp) if camera else None
        yield SequenceFrame(k, t, stamp, ego, pose, scan, _tracks(world, scan, motion, t), picture)


def _tracks(world: Scene, scan: Scan, motion: SceneMotion, t: float) -> list[TrackTruth]:
    in_sensor = {b.track_id: b for b in scan.boxes}
    moving = motion.actor_states(t).moving
    return [
        TrackTruth(
            instance=actor.instance,
            label=actor.box.label,
            name=actor.box.name,
            box_sensor=in_sensor[actor.instance],
            box_world=actor.box,
            velocity=actor.box.velocity.copy(),
            num_points=in_sensor[actor.instance].num_points,
            moving=bool(moving[i]),
        )
        for i, actor in enumerate(world.actors)
    ]
