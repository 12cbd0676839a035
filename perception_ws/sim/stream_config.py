"""The schema of the simulator node (:mod:`perception_ws.nodes.sim_node`), one ROS parameter per key.

Like :class:`perception_ws.config.PerceptionConfig`: every leaf is a parameter named by its dotted path
(``scene.seed``, ``sensor.columns``, ``clock.mode`` …) and a key of the ``sim_node`` section of
config/perception.yaml; values are checked here, whichever way they came in. No ROS in here: the same
settings drive :class:`perception_ws.sim.stream.SimStream` in a notebook or a benchmark.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from perception_ws.schema import ConfigError, Schema, TopicName
from perception_ws.sim.sensor.raycast import Backend

#: the node name whose section of a params file holds these settings.
SIM_NODE_NAME = "sim_node"


def _frame_id(frame: str) -> str:
    if not frame or frame.startswith("/") or " " in frame:
        raise ValueError("expected a frame id such as 'lidar' (no leading slash)")
    return frame


FrameId = Annotated[str, AfterValidator(_frame_id)]


class SimTopicsConfig(Schema):
    """Topics the simulator publishes: cloud, ground-truth boxes and markers, camera image and info, diagnostics."""

    points: TopicName = Field(
        "points", description="PointCloud2 out (SensorData QoS): x y z intensity ring label instance"
    )
    boxes: TopicName = Field(
        "sim/ground_truth/boxes", description="perception_ws/Detection3DArray: ground-truth boxes, id = instance"
    )
    markers: TopicName = Field(
        "sim/ground_truth/markers", description="visualization_msgs/MarkerArray of those boxes, for RViz"
    )
    image: TopicName = Field(
        "camera/image", description="sensor_msgs/Image rgb8 of the simulated camera (SensorData QoS)"
    )
    camera_info: TopicName = Field("camera/camera_info", description="sensor_msgs/CameraInfo of that image")
    diagnostics: TopicName = Field(
        "/diagnostics", description="diagnostic_msgs/DiagnosticArray: achieved rate, render time, skips"
    )


class SimSceneConfig(Schema):
    """Which procedural street is simulated, and whether and how long it moves."""

    seed: int = Field(0, ge=0, description="procedural street seed: the same seed gives the same scene and traffic")
    motion: bool = Field(True, description="ego car and traffic move (false: the scene at t = 0, every frame)")
    loop_s: float = Field(8.0, gt=0, description="scene time restarts after this many seconds (the street is finite)")
    content: Literal["v1", "v2"] = Field(
        "v2", description="street content: v2 with hard negatives, parked bicycles and more people, or v1 (before)"
    )


class SimSensorConfig(Schema):
    """The simulated LiDAR: sensor model, resolution, scan rate and ray-casting backend."""

    model: str = Field(
        "hdl64e",
        description="built-in sensor name (calib/data), a sensor YAML file, or a sensor profile folder (its beams "
        "and measured mounting height)",
    )
    columns: int = Field(2048, ge=8, description="azimuth steps per turn (hdl64e x 2048: about 120k points)")
    rate_hz: float = Field(
        10.0, gt=0, le=100, description="scans per second (a timer; a scan not ready in time skips ticks, never queues)"
    )
    backend: Literal["auto", Backend] = Field("auto", description="ray casting: auto, open3d, torch")


class SimCameraConfig(Schema):
    """The simulated camera: whether it publishes, and at what render resolution."""

    enabled: bool = Field(
        True, description="publish the camera image and CameraInfo (KITTI's left colour camera, 1242 x 375)"
    )
    downscale: int = Field(
        2, ge=1, description="one camera ray per k x k pixel block (1: every pixel; 2 renders about 3x faster)"
    )


class SimFramesConfig(Schema):
    """The frame ids of the cloud, the vehicle, the camera and the fixed frame."""

    lidar: FrameId = Field("lidar", description="frame_id of the cloud and the ground-truth boxes")
    base: FrameId = Field("base_link", description="vehicle frame, on the ground below the LiDAR")
    camera: FrameId = Field("camera", description="frame_id of the image (optical: x right, y down, z forward)")
    odom: FrameId = Field(
        "odom", description="fixed frame the vehicle drives in: odom -> base_link goes out on /tf with every frame"
    )


class SimClockConfig(Schema):
    """How frames are stamped and paced, and whether /clock is published."""

    #: wall: stamps are the wall time a scan is ready; sim: stamps advance by exactly 1/rate per frame.
    mode: Literal["wall", "sim"] = Field(
        "wall", description="wall: stamp = wall time a scan is ready; sim: stamp = start + index / rate"
    )
    publish: bool = Field(True, description="publish /clock (rosgraph_msgs/Clock) at every frame's stamp")
    real_time_factor: float = Field(
        1.0,
        gt=0,
        le=1,
        description="simulated seconds per wall second (mode sim only): below 1 frames go out slower than the "
        "sensor rate (0.1: a 10 Hz sensor once a second), for a slow consumer; stamps stay one sensor period apart",
    )

    @model_validator(mode="after")
    def _slower_only_in_sim_time(self) -> SimClockConfig:
        if self.real_time_factor != 1 and self.mode != "sim":
            raise ConfigError(
                f"clock.real_time_factor = {self.real_time_factor!r} needs clock.mode 'sim' (with 'wall' the stamps "
                "are the wall time, so the stream cannot run slower than real time)"
            )
        return self


class SimGroundTruthConfig(Schema):
    """Which ground-truth boxes are published."""

    min_points: int = Field(1, ge=0, description="ground-truth boxes with fewer LiDAR points are left out")


class SimRunConfig(Schema):
    """When the simulator starts and stops (frame budget, waiting for subscribers); queue depth, diagnostics period."""

    max_frames: int = Field(0, ge=0, description="stop (and exit) after this many frames; 0: run until stopped")
    wait_for_subscribers_s: float = Field(
        0.0,
        ge=0,
        description="before the first frame, wait up to this long for a subscriber on each sensor topic (0: start "
        "at once)",
    )
    points_subscribers: int = Field(
        1,
        ge=1,
        description="with wait_for_subscribers_s: subscribers the point topic needs before the first frame (a "
        "recorder counts)",
    )
    output_depth: int = Field(5, ge=1, description="queue depth of the reliable publishers (boxes, diagnostics)")
    diagnostics_period_s: float = Field(1.0, gt=0, description="seconds between diagnostics messages")


class SimCarlaConfig(Schema):
    """backend ``carla``: the server and what it simulates (the LiDAR imitates ``sensor.model`` x
    ``sensor.columns``; one synchronous tick per ``1 / sensor.rate_hz`` simulated seconds).
    """

    host: str = Field("localhost", min_length=1, description="CARLA server host name or address")
    port: int = Field(2000, ge=1, le=65535, description="CARLA server RPC port")
    town: str = Field("", description="map to load (e.g. Town10HD_Opt); empty: keep the server's current one")
    traffic: int = Field(0, ge=0, description="other vehicles spawned on autopilot")
    seed: int = Field(0, ge=0, description="ego spawn point and traffic manager seed")
    connect_timeout_s: float = Field(5.0, gt=0, description="seconds to wait for the server's first answer")


class SimDatasetConfig(Schema):
    """backend ``dataset``: a recorded simulated dataset replayed at ``sensor.rate_hz``."""

    path: str = Field(
        "", description="a folder or file perception_ws.io reads: GTA-LiDAR .npy, `perception sim generate` output, …"
    )
    loop: bool = Field(True, description="start again after the last frame (false: stop there)")


class SimConfig(Schema):
    """Everything the simulator node is told; see the module doc."""

    backend: Literal["builtin", "carla", "dataset"] = Field(
        "builtin", description="frames from: builtin (procedural streets), carla (a CARLA server), dataset (recorded)"
    )
    topics: SimTopicsConfig = Field(default_factory=SimTopicsConfig)
    scene: SimSceneConfig = Field(default_factory=SimSceneConfig)
    sensor: SimSensorConfig = Field(default_factory=SimSensorConfig)
    camera: SimCameraConfig = Field(default_factory=SimCameraConfig)
    frames: SimFramesConfig = Field(default_factory=SimFramesConfig)
    clock: SimClockConfig = Field(default_factory=SimClockConfig)
    ground_truth: SimGroundTruthConfig = Field(default_factory=SimGroundTruthConfig)
    run: SimRunConfig = Field(default_factory=SimRunConfig)
    carla: SimCarlaConfig = Field(default_factory=SimCarlaConfig)
    dataset: SimDatasetConfig = Field(default_factory=SimDatasetConfig)

    @model_validator(mode="after")
    def _dataset_has_a_path(self) -> SimConfig:
        if self.backend == "dataset" and not self.dataset.path:
            raise ConfigError("backend 'dataset' needs dataset.path (a recorded dataset folder or file)")
        return self
