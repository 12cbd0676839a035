"""A live simulated sensor stream: what the simulator node publishes, one frame at a time, without ROS.

``SimStream(SimConfig())`` builds the scene of ``scene.seed`` once (the street, its traffic plan, the
ray caster's static layer), then :meth:`SimStream.frame` renders frame ``index`` at a scene time:

- the LiDAR sweep as :data:`~perception_ws.sim.source.CLOUD_DTYPE` points (x y z intensity ring label instance; the
  label is the KITTI-3 ground truth, the instance the actor's id), in the LiDAR frame;
- the ground-truth boxes of the actors the sweep saw (KITTI-3 classes, ``track_id`` = instance);
- the camera picture (:mod:`perception_ws.sim.sensor.camera`) when ``camera.enabled``.

It is the ``builtin`` backend of the simulator's source interface (:mod:`perception_ws.sim.source`).

Time: with ``clock.mode`` ``sim`` frame k shows scene time k / rate whatever the rendering speed (the
stamps advance by exactly one period); with ``wall`` it shows the wall time elapsed since the start,
so a slow renderer skips scene time like a real sensor skips frames. The scene time wraps every
``scene.loop_s`` seconds (the street is finite). ``clock.real_time_factor`` < 1 (mode ``sim``) slows
the wall rate only, for a consumer slower than the sensor: the scene and the stamps do not change.
:meth:`SimStream.static_transforms` gives the sensor mounting (vehicle -> LiDAR -> camera) that the
node reports; each frame carries the vehicle's pose in the fixed frame (``odom -> base_link``, for /tf).
"""

from __future__ import annotations

import time
from typing import cast

import numpy as np

from perception_ws.calib.tf_tree import FrameTransform
from perception_ws.sim.motion.motion import SceneMotion
from perception_ws.sim.sensor.camera import CameraConfig, SimCamera
from perception_ws.sim.sensor.lidar import Lidar, Mount
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.sensor.raycast_layers import LayeredRaycaster
from perception_ws.sim.sensor.raycaster import Raycaster
from perception_ws.sim.simulated_sensor import simulated_sensor
from perception_ws.sim.source import SimFrame, cloud_points, source_stamp_ns, transform
from perception_ws.sim.stream_config import SimConfig
from perception_ws.sim.world.generator import generate_scene
from perception_ws.sim.world.scene import EgoPose
from perception_ws.sim.world.scene_config import scene_config_for


class SimStream:
    """Frames of one simulated scene; see the module doc."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = c = config or SimConfig()
        self.scene = generate_scene(c.scene.seed, scene_config_for(c.scene.content))
        self.motion = SceneMotion(self.scene) if c.scene.motion else None
        # moving scenes re-index only the actors per frame; a static one is indexed once
        self._layers: LayeredRaycaster | None = self.motion.raycaster(c.sensor.backend) if self.motion else None
        # LayeredRaycaster casts like any Raycaster (its name is a read-only property, hence the cast)
        self.caster: Raycaster = (
            cast(Raycaster, self._layers) if self._layers else make_raycaster(self.scene.soup, c.sensor.backend)
        )
        played = simulated_sensor(c.sensor.model)  # a profile folder brings its measured mounting height
        self.lidar = Lidar(played.model, columns=c.sensor.columns, mount=Mount(height=played.mount_height_m))
        self.camera = (
            SimCamera(CameraConfig(downscale=c.camera.downscale, frame_id=c.frames.camera), self.lidar)
            if c.camera.enabled
            else None
        )

    @property
    def period_s(self) -> float:
        """Wall seconds between frames: one sensor period, stretched by ``clock.real_time_factor``."""
        return 1.0 / (self.config.sensor.rate_hz * self.config.clock.real_time_factor)

    def scene_time(self, index: int, elapsed_s: float) -> float:
        return scene_time(self.config, index, elapsed_s)

    def stamp_ns(self, index: int, wall_ns: int, start_ns: int) -> int:
        return stamp_ns(self.config, index, wall_ns, start_ns)

    @property
    def length(self) -> int | None:
        """None: frames without end."""
        return None

    def next_frame(self, index: int, elapsed_s: float) -> SimFrame:
        """Frame ``index`` at the scene time of ``elapsed_s`` (the :class:`FrameSource` interface)."""
        return self.frame(index, self.scene_time(index, elapsed_s))

    def frame_stamp_ns(self, frame: SimFrame, wall_ns: int, start_ns: int) -> int:
        return self.stamp_ns(frame.index, wall_ns, start_ns)

    def describe(self) -> str:
        c = self.config
        camera = f", camera {c.camera.downscale}x downscaled" if c.camera.enabled else ", no camera"
        return (
            f"simulating seed {c.scene.seed}: {c.sensor.model} x {c.sensor.columns} columns at {c.sensor.rate_hz} Hz"
            f"{camera}, motion {c.scene.motion}"
        )

    def close(self) -> None:
        """Nothing to give back: the scene lives in this process."""

    def frame(self, index: int, scene_time_s: float) -> SimFrame:
        """Render frame ``index`` at ``scene_time_s`` (deterministic for the seed, index and time)."""
        started = time.perf_counter()
        scene = self.scene
        if self.motion is not None:
            scene = self.motion.scene_at(scene_time_s)
            assert self._layers is not None
            self._layers.update(scene.soup)
        pose = scene.ego_poses[0]
        seed = int(np.random.SeedSequence([self.config.scene.seed, index]).generate_state(1)[0])
        scan = self.lidar.scan(scene, self.caster, pose, seed=seed)
        camera = self.camera.render(scene, self.caster, pose) if self.camera is not None else None
        min_points = self.config.ground_truth.min_points
        boxes = [box for box in scan.boxes if box.label > 0 and box.num_points >= min_points]
        return SimFrame(
            index=index,
            scene_time_s=scene_time_s,
            points=cloud_points(scan),
            boxes=boxes,
            camera=camera,
            render_ms=(time.perf_counter() - started) * 1e3,
            vehicle=self.vehicle_transform(pose),
        )

    def vehicle_transform(self, pose: EgoPose) -> FrameTransform:
        """The vehicle frame (on the ground below the LiDAR) in the fixed frame, for ``pose``."""
        frames = self.config.frames
        return transform(frames.odom, frames.base, pose.matrix())

    def static_transforms(self) -> list[FrameTransform]:
        """Vehicle -> LiDAR (the mount) and, with the camera, LiDAR -> camera optical frame."""
        frames, mount = self.config.frames, self.lidar.mount
        out = [transform(frames.base, frames.lidar, mount.matrix())]
        if self.camera is not None:
            camera = self.camera.config
            out.append(_transform(frames.lidar, frames.camera, camera.camera_to_lidar(), np.array(camera.position)))
        return out


def scene_time(config: SimConfig, index: int, elapsed_s: float) -> float:
    """Scene time (s) of frame ``index`` taken ``elapsed_s`` wall seconds after the start (see the module doc)."""
    if not config.scene.motion:
        return 0.0
    t = index / config.sensor.rate_hz if config.clock.mode == "sim" else max(0.0, elapsed_s)
    return float(t % config.scene.loop_s)


def stamp_ns(config: SimConfig, index: int, wall_ns: int, start_ns: int) -> int:
    """The stamp of frame ``index``: the wall time it is ready, or ``start`` + index periods (``sim``)."""
    return source_stamp_ns(config.clock.mode, index / config.sensor.rate_hz, wall_ns, start_ns)


def sim_camera_extrinsic() -> list[float]:
    """The simulated camera's LiDAR -> camera transform, 16 row-major values (the fusion node's
    ``calibration.extrinsic``); the camera's mounting is fixed, so this holds for every SimConfig.
    """
    return [float(v) for v in CameraConfig().extrinsic().matrix.reshape(-1)]


def _transform(parent: str, child: str, rotation: np.ndarray, translation: np.ndarray) -> FrameTransform:
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, translation
    return transform(parent, child, pose)
