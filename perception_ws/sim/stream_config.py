"""The schema of the simulator node (:mod:`perception_ws.nodes.sim_node`), one ROS parameter per key.

Like :class:`perception_ws.config.PerceptionConfig`: every leaf is a parameter named by its dotted path
(``scene.seed``, ``sensor.columns``, ``clock.mode`` …) and a key of the ``sim_node`` section of
config/perception.yaml; values are checked here, whichever way they came in. No ROS in here: the same
settings drive :class:`perception_ws.sim.stream.SimStream` in a notebook or a benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perception_ws.config import TOPIC_PATTERN as TOPIC_NAME
from perception_ws.config import ConfigError, check_at_least, check_one_of, doc, flatten, schema_from_flat
from perception_ws.sim.sensor.raycast import BACKENDS

#: the node name whose section of a params file holds these settings.
SIM_NODE_NAME = "sim_node"
#: wall: stamps are the wall time a scan is ready; sim: stamps advance by exactly 1/rate per frame.
CLOCK_MODES = ("wall", "sim")


@dataclass(frozen=True)
class SimTopicsConfig:
    points: str = doc("points", "PointCloud2 out (SensorData QoS): x y z intensity ring label instance")
    boxes: str = doc("sim/ground_truth/boxes", "perception_ws/Detection3DArray: ground-truth boxes, id = instance")
    markers: str = doc("sim/ground_truth/markers", "visualization_msgs/MarkerArray of those boxes, for RViz")
    image: str = doc("camera/image", "sensor_msgs/Image rgb8 of the simulated camera (SensorData QoS)")
    camera_info: str = doc("camera/camera_info", "sensor_msgs/CameraInfo of that image")
    diagnostics: str = doc("/diagnostics", "diagnostic_msgs/DiagnosticArray: achieved rate, render time, skips")


@dataclass(frozen=True)
class SimSceneConfig:
    seed: int = doc(0, "procedural street seed: the same seed gives the same scene and traffic")
    motion: bool = doc(True, "ego car and traffic move (false: the scene at t = 0, every frame)")
    loop_s: float = doc(8.0, "scene time restarts after this many seconds (the street is finite)")


@dataclass(frozen=True)
class SimSensorConfig:
    model: str = doc("hdl64e", "built-in sensor name (calib/data) or a sensor YAML file")
    columns: int = doc(2048, "azimuth steps per turn (hdl64e x 2048: about 120k points)")
    rate_hz: float = doc(10.0, "scans per second (a timer; a scan not ready in time skips ticks, never queues)")
    backend: str = doc("auto", f"ray casting: auto, {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class SimCameraConfig:
    enabled: bool = doc(True, "publish the camera image and CameraInfo (KITTI's left colour camera, 1242 x 375)")
    downscale: int = doc(2, "one camera ray per k x k pixel block (1: every pixel; 2 renders about 3x faster)")


@dataclass(frozen=True)
class SimFramesConfig:
    lidar: str = doc("lidar", "frame_id of the cloud and the ground-truth boxes")
    base: str = doc("base_link", "vehicle frame, on the ground below the LiDAR")
    camera: str = doc("camera", "frame_id of the image (optical: x right, y down, z forward)")
    odom: str = doc("odom", "fixed frame the vehicle drives in: odom -> base_link goes out on /tf with every frame")


@dataclass(frozen=True)
class SimClockConfig:
    mode: str = doc("wall", "wall: stamp = wall time a scan is ready; sim: stamp = start + index / rate")
    publish: bool = doc(True, "publish /clock (rosgraph_msgs/Clock) at every frame's stamp")
    real_time_factor: float = doc(
        1.0,
        "simulated seconds per wall second (mode sim only): below 1 frames go out slower than the sensor rate "
        "(0.1: a 10 Hz sensor once a second), for a slow consumer; stamps stay one sensor period apart",
    )


@dataclass(frozen=True)
class SimGroundTruthConfig:
    min_points: int = doc(1, "ground-truth boxes with fewer LiDAR points are left out")


@dataclass(frozen=True)
class SimRunConfig:
    max_frames: int = doc(0, "stop (and exit) after this many frames; 0: run until stopped")
    wait_for_subscribers_s: float = doc(
        0.0, "before the first frame, wait up to this long for a subscriber on each sensor topic (0: start at once)"
    )
    points_subscribers: int = doc(
        1, "with wait_for_subscribers_s: subscribers the point topic needs before the first frame (a recorder counts)"
    )
    output_depth: int = doc(5, "queue depth of the reliable publishers (boxes, diagnostics)")
    diagnostics_period_s: float = doc(1.0, "seconds between diagnostics messages")


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator node is told; see the module doc."""

    topics: SimTopicsConfig = field(default_factory=SimTopicsConfig)
    scene: SimSceneConfig = field(default_factory=SimSceneConfig)
    sensor: SimSensorConfig = field(default_factory=SimSensorConfig)
    camera: SimCameraConfig = field(default_factory=SimCameraConfig)
    frames: SimFramesConfig = field(default_factory=SimFramesConfig)
    clock: SimClockConfig = field(default_factory=SimClockConfig)
    ground_truth: SimGroundTruthConfig = field(default_factory=SimGroundTruthConfig)
    run: SimRunConfig = field(default_factory=SimRunConfig)

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> SimConfig:
        """A copy with dotted keys changed: ``config.replace(**{"sensor.columns": 512})``."""
        flat = flatten(self)
        unknown = [key for key in changes if key not in flat]
        if unknown:
            raise ConfigError(f"sim config: unknown key(s) {unknown}; known: {', '.join(flat)}")
        return schema_from_flat(SimConfig, {**flat, **changes})


def _validate(c: SimConfig) -> None:
    for key, topic in flatten(c.topics, "topics.").items():
        if not TOPIC_NAME.match(topic):
            raise ConfigError(f"{key} = {topic!r}; expected a ROS topic name such as 'points'")
    check_at_least("scene.seed", c.scene.seed, 0)
    if not c.scene.loop_s > 0:
        raise ConfigError(f"scene.loop_s = {c.scene.loop_s!r}; expected > 0 seconds")
    check_at_least("sensor.columns", c.sensor.columns, 8)
    if not 0 < c.sensor.rate_hz <= 100:
        raise ConfigError(f"sensor.rate_hz = {c.sensor.rate_hz!r}; expected 0 < rate <= 100 scans per second")
    check_one_of("sensor.backend", c.sensor.backend, ("auto", *BACKENDS))
    check_one_of("clock.mode", c.clock.mode, CLOCK_MODES)
    if not 0 < c.clock.real_time_factor <= 1:
        raise ConfigError(f"clock.real_time_factor = {c.clock.real_time_factor!r}; expected 0 < factor <= 1")
    if c.clock.real_time_factor != 1 and c.clock.mode != "sim":
        raise ConfigError(
            f"clock.real_time_factor = {c.clock.real_time_factor!r} needs clock.mode 'sim' (with 'wall' the stamps "
            "are the wall time, so the stream cannot run slower than real time)"
        )
    for key, frame in flatten(c.frames, "frames.").items():
        if not frame or frame.startswith("/") or " " in frame:
            raise ConfigError(f"{key} = {frame!r}; expected a frame id such as 'lidar' (no leading slash)")
    check_at_least("camera.downscale", c.camera.downscale, 1)
    check_at_least("ground_truth.min_points", c.ground_truth.min_points, 0)
    check_at_least("run.max_frames", c.run.max_frames, 0)
    check_at_least("run.wait_for_subscribers_s", c.run.wait_for_subscribers_s, 0.0)
    check_at_least("run.points_subscribers", c.run.points_subscribers, 1)
    check_at_least("run.output_depth", c.run.output_depth, 1)
    if not c.run.diagnostics_period_s > 0:
        raise ConfigError(f"run.diagnostics_period_s = {c.run.diagnostics_period_s!r}; expected > 0")
