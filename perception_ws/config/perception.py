"""The pipeline's schema (:class:`PipelineConfig`) and the perception node's (:class:`PerceptionConfig`: the
pipeline's keys plus topics, QoS and output), one ROS parameter per leaf; see :mod:`perception_ws.config`.

Defaults of the instance stage are taken from :mod:`perception_ws.instances.config`, so a number is written
in one place only; the tracker's tunable settings are its own :class:`TrackerParameters`, inherited here.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from perception_ws.calib.sensors import load_sensor
from perception_ws.instances.config import (
    NODE_CAR_CLUSTER,
    NODE_OTHER_CLUSTER,
    NODE_REMOVE_GROUND,
    BoxMethod,
    ClusterConfig,
    ClusterParams,
    DetectConfig,
    TrackerConfig,
    TrackerParameters,
)
from perception_ws.labels import CLASS_SETS, ClassSet
from perception_ws.models.families import is_point_model
from perception_ws.projection import ROW_SOURCES, RowSource, fov_bounds
from perception_ws.schema import ConfigError, OptionalTopicName, Schema, Strings, TopicName

#: the node name whose section a params file is read from, unless told otherwise.
NODE_NAME = "perception_node"

#: network arithmetic (segmenter.precision).
Precision = Literal["fp32", "bf16", "fp16"]
#: what runs the segmenter network (segmenter.runtime).
Runtime = Literal["torch", "onnxruntime", "openvino"]
#: where the range image is built and labels go back to the points (segmenter.projection).
ProjectionPlace = Literal["cpu", "device"]
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
_DETECT = DetectConfig()


def _known_class_set(name: str) -> str:
    if name not in CLASS_SETS:
        raise ValueError(f"expected one of {', '.join(CLASS_SETS)}")
    return name


#: the name of a class table (perception_ws.labels.CLASS_SETS).
ClassSetName = Annotated[str, AfterValidator(_known_class_set)]


class TopicsConfig(Schema):
    """Topics of the perception node: the cloud in; labelled cloud, detections, tracks, markers, diagnostics out."""

    input: TopicName = Field("points", description="PointCloud2 input (SensorData QoS)")
    labelled_cloud: TopicName = Field(
        "perception/labelled_points", description="input cloud plus fields label and instance"
    )
    detections: TopicName = Field("perception/detections", description="perception_ws/Detection3DArray")
    vision_detections: OptionalTopicName = Field(
        "perception/vision_detections",
        description="vision_msgs/Detection3DArray, the same detections for ROS 2 tools; empty: not published",
    )
    tracks: TopicName = Field("perception/tracks", description="perception_ws/TrackArray")
    odometry: OptionalTopicName = Field(
        "perception/odometry",
        description="nav_msgs/Odometry of tracking.odometry lidar (see lidar_odometry); empty: not published",
    )
    markers: TopicName = Field(
        "perception/markers", description="visualization_msgs/MarkerArray of boxes, ids and classes"
    )
    diagnostics: TopicName = Field(
        "/diagnostics", description="diagnostic_msgs/DiagnosticArray: latency, rate, drops, rejects"
    )


class QosConfig(Schema):
    """Queue depths of the input subscription and the output publishers."""

    input_depth: int = Field(2, ge=1, description="queue depth of the input subscription (best effort)")
    output_depth: int = Field(5, ge=1, description="queue depth of every output publisher (reliable)")


class SensorConfig(Schema):
    """The LiDAR model and the range image the cloud is projected to."""

    model: str = Field("hdl64e", description="built-in sensor name (calib/data) or a sensor YAML file")
    fov_deg: float = Field(360.0, description="horizontal field of view of the range image, degrees, centred on +x")
    width: int = Field(2048, ge=1, description="range image columns")
    row_source: RowSource = Field("auto", description=f"range image rows from: {', '.join(ROW_SOURCES)}")
    max_points: int = Field(1_000_000, ge=1, description="clouds with more points are rejected (bounded latency)")

    @field_validator("model")
    @classmethod
    def _known_sensor(cls, model: str) -> str:
        load_sensor(model)  # a SensorError (a ValueError) says what is wrong
        return model

    @field_validator("fov_deg")
    @classmethod
    def _fov_in_range(cls, fov_deg: float) -> float:
        fov_bounds(fov_deg)
        return fov_deg


class SegmenterConfig(Schema):
    """Which segmenter labels the points (network, input labels or none) and how the network runs."""

    kind: Literal["model", "labels", "none"] = Field(
        "model", description="model: the network; labels: the input's label field; none: every point 0"
    )
    model: str = Field(
        "squeezesegv2",
        description="network: squeezeseg, squeezesegv2 (range image) or spvcnn, spvnas (points; needs "
        "segmenter.weights)",
    )
    weights: str = Field("", description="weights file; empty: the shipped default weights")
    device: str = Field("cpu", description="torch device: cpu, cuda or cuda:N")
    label_field: str = Field("label", description="input field holding class ids (kind labels)")
    threads: int = Field(
        0, ge=0, description="CPU threads for the network (torch, onnxruntime or openvino); 0: the runtime's default"
    )
    compile: bool = Field(
        False,
        description="torch.compile the network (kind model; its CRF only on a GPU), compiled and warmed up at start "
        "(~1 min)",
    )
    autotune: bool = Field(
        False,
        description="with compile on a GPU: torch.compile mode max-autotune instead of reduce-overhead (each conv "
        "and matmul timed against generated kernels at start, a few minutes more; CUDA graphs either way)",
    )
    precision: Precision = Field(
        "fp32",
        description="network arithmetic: fp32; bf16 (GPUs, and CPUs with AVX-512 BF16 or AMX, where it is ~1.7x "
        "faster with 99.9 % of labels unchanged; elsewhere fp32 is used and the node says so); fp16 (GPUs only)",
    )
    crf_iterations: int = Field(
        -1,
        ge=-1,
        le=10,
        description="mean-field steps of the network's CRF: -1 as trained (3 for the shipped weights); 0 no CRF "
        "(runtime torch)",
    )
    runtime: Runtime = Field(
        "torch",
        description="what runs the network (kind model): torch (weights), or onnxruntime / openvino (segmenter.onnx, "
        "fp32 or int8, on the CPU; precision and compile are torch's and do not apply)",
    )
    onnx: str = Field(
        "",
        description="exported .onnx file (perception export --format onnx, or perception quantize for int8) for "
        "runtime onnxruntime or openvino",
    )
    projection: ProjectionPlace = Field(
        "cpu",
        description="where the range image is built and the labels go back to the points: cpu (numba), or device: "
        "on segmenter.device, the points, image and labels kept there (kind model, runtime torch; pays on a GPU)",
    )

    @field_validator("device")
    @classmethod
    def _torch_device(cls, device: str) -> str:
        if not _DEVICE.fullmatch(device):
            raise ValueError("expected cpu, cuda or cuda:N")
        return device

    @model_validator(mode="after")
    def _consistent(self) -> SegmenterConfig:
        if self.precision == "fp16" and self.device == "cpu":
            raise ConfigError(
                "segmenter.precision = 'fp16' needs a GPU (segmenter.device cuda); on a CPU use bf16 or fp32"
            )
        if self.autotune and (not self.compile or self.device == "cpu"):
            raise ConfigError(
                f"segmenter.autotune chooses kernels for a compiled network on a GPU, but segmenter.compile = "
                f"{self.compile} and segmenter.device = {self.device!r}; set compile true and device cuda, or "
                "autotune false"
            )
        if self.kind == "model" and self.runtime != "torch":
            if not self.onnx:
                raise ConfigError(
                    f"segmenter.runtime = {self.runtime!r} needs segmenter.onnx, an exported file "
                    "(perception export --format onnx --out FILE.onnx)"
                )
            if self.device != "cpu":
                raise ConfigError(
                    f"segmenter.runtime = {self.runtime!r} runs on the CPU, but segmenter.device = {self.device!r}; "
                    "set device cpu, or runtime torch for a GPU"
                )
            if self.crf_iterations != -1:
                raise ConfigError(
                    f"segmenter.crf_iterations = {self.crf_iterations} applies to runtime torch only (the .onnx holds "
                    "its CRF as exported); set -1, or runtime torch"
                )
        if self.projection == "device" and (self.kind != "model" or self.runtime != "torch"):
            raise ConfigError(
                f"segmenter.projection = 'device' projects on the torch network's device, but segmenter.kind = "
                f"{self.kind!r} and segmenter.runtime = {self.runtime!r}; use kind model with runtime torch, or "
                "projection cpu"
            )
        point_model_settings = self.runtime != "torch" or self.crf_iterations > 0 or self.projection != "cpu"
        if self.kind == "model" and is_point_model(self.model) and point_model_settings:
            raise ConfigError(
                f"segmenter.model {self.model!r} labels points with torch (no ONNX export, no CRF, no range image): "
                "set segmenter.runtime torch, crf_iterations -1 and projection cpu"
            )
        if self.kind == "labels" and not self.label_field:
            raise ConfigError("segmenter.label_field is empty; kind 'labels' needs the name of the input's label field")
        return self


class DetectionConfig(Schema):
    """Clustering of labelled points into instances (per-class DBSCAN) and the boxes fitted to them."""

    classes: Strings = Field((), description="class names to detect; empty: the class set's object classes")
    # defaults from the box-scored sweep (docs/instances.md); the thesis' 0.3 m / 20 split cars into pieces
    eps_m: float = Field(
        NODE_OTHER_CLUSTER.eps_m, gt=0, description="DBSCAN radius of classes other than car, metres (thesis: 0.3)"
    )
    min_samples: int = Field(
        NODE_OTHER_CLUSTER.min_points, ge=1, description="DBSCAN core neighbours, the point counts (thesis: 20)"
    )
    car_eps_m: float = Field(NODE_CAR_CLUSTER.eps_m, gt=0, description="DBSCAN radius of cars, metres (thesis: 0.3)")
    car_min_samples: int = Field(
        NODE_CAR_CLUSTER.min_points, ge=1, description="DBSCAN core point neighbours of cars (thesis: 20)"
    )
    box_method: BoxMethod = Field(_DETECT.box_method, description="box fitting: search, pca, min_area")
    merge_overlap: float = Field(
        _DETECT.merge_overlap, ge=0, le=1, description="merge same-class boxes overlapping this much"
    )
    remove_ground: bool = Field(NODE_REMOVE_GROUND, description="remove ground points before clustering")
    min_score: float = Field(
        0.0, ge=0, le=1, description="drop detections whose score (mean class probability) is lower"
    )
    # a physical range, not fitted to data (instances/consistency.py); docs/instances.md has its effect
    person_min_height_m: float = Field(
        0.8, ge=0, description="drop boxes of people (pedestrian, cyclist …) lower than this, metres; 0: none"
    )
    person_max_height_m: float = Field(
        2.3, gt=0, description="drop boxes of people higher than this, metres (poles, trunks, walls)"
    )
    consistent_labels: bool = Field(
        True,
        description="publish a detected class (car, pedestrian …) only on points inside a detection of that "
        "class; its other points become 0 (unlabelled), so the labels agree with the boxes",
    )

    @model_validator(mode="after")
    def _person_range(self) -> DetectionConfig:
        if self.person_min_height_m >= self.person_max_height_m:
            raise ConfigError(
                f"detection.person_min_height_m = {self.person_min_height_m} must be below "
                f"detection.person_max_height_m = {self.person_max_height_m}"
            )
        return self


class TrackingConfig(TrackerParameters):
    """The tracker's own parameters (inherited: motion_model, confirm_hits …) plus where it tracks."""

    enabled: bool = Field(True, description="run the tracker")
    fixed_frame: str = Field(
        "",
        description="track in this frame (e.g. odom), its pose read from /tf and /tf_static at each scan's stamp, "
        "so track velocities are over the ground; empty: in the scan's frame (velocities relative to the sensor)",
    )
    tf_timeout_s: float = Field(
        0.1,
        ge=0,
        description="with fixed_frame: how long to wait for the scan's pose when the odometry on /tf lags the scan, "
        "seconds",
    )
    odometry: Literal["none", "lidar"] = Field(
        "none",
        description="lidar: without fixed_frame, find the sensor's motion from the scans (ICP, ~20 ms a scan) and "
        "track over the ground in that frame; none: track in the scan's frame",
    )

    @model_validator(mode="after")
    def _one_source_of_motion(self) -> TrackingConfig:
        if self.odometry != "none" and self.fixed_frame:
            raise ConfigError(
                f"tracking.odometry = {self.odometry!r} and tracking.fixed_frame = {self.fixed_frame!r}: "
                "choose one source of the sensor's motion (the pose from /tf, or the scans themselves)"
            )
        return self

    def tracker_config(self) -> TrackerConfig:
        """The tracker's settings: these parameters, the filter's constants at their defaults."""
        return TrackerConfig(**{name: getattr(self, name) for name in TrackerParameters.model_fields})


class LidarOdometryConfig(Schema):
    """Where the poses of ``tracking.odometry: lidar`` go out: /tf and nav_msgs/Odometry (topics.odometry)."""

    publish_tf: bool = Field(True, description="send each scan's pose on /tf (frame_id -> child_frame_id)")
    frame_id: str = Field("odom", min_length=1, description="the odometry frame: where the first scan's frame was")
    child_frame_id: str = Field(
        "",
        description="the moving frame whose pose goes out; empty: the scan's frame; another (e.g. base_link): "
        "its mounting on the sensor read from /tf_static",
    )


class OutputConfig(Schema):
    """How markers are drawn and how often diagnostics go out."""

    marker_style: Literal["line_list", "cube"] = Field("line_list", description="box markers: line_list, cube")
    diagnostics_period_s: float = Field(1.0, gt=0, description="seconds between diagnostics messages")


class PipelineConfig(Schema):
    """Everything :class:`perception_ws.pipeline.Pipeline` is told."""

    class_set: ClassSetName = Field("kitti3", description=f"class table: {', '.join(CLASS_SETS)}")
    sensor: SensorConfig = Field(default_factory=SensorConfig)
    segmenter: SegmenterConfig = Field(default_factory=SegmenterConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _known_classes(self) -> PipelineConfig:
        for name in self.detection.classes:
            if name not in self.classes.names:
                raise ConfigError(
                    f"detection.classes: {name!r} is not a class of {self.class_set}; "
                    f"known: {', '.join(self.classes.names)}"
                )
        return self

    @property
    def classes(self) -> ClassSet:
        return CLASS_SETS[self.class_set]

    def detect_config(self) -> DetectConfig:
        d = self.detection
        return DetectConfig(
            cluster=ClusterConfig(
                ClusterParams(d.eps_m, d.min_samples), {"car": ClusterParams(d.car_eps_m, d.car_min_samples)}
            ),
            box_method=d.box_method,
            classes=d.classes or None,
            merge_overlap=d.merge_overlap,
            remove_ground=d.remove_ground,
            person_height_m=(d.person_min_height_m, d.person_max_height_m),
        )


class PerceptionConfig(PipelineConfig):
    """Everything the perception node is told: the pipeline's settings plus its topics, QoS and output."""

    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    qos: QosConfig = Field(default_factory=QosConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    lidar_odometry: LidarOdometryConfig = Field(default_factory=LidarOdometryConfig)

    def pipeline_config(self) -> PipelineConfig:
        """The pipeline's part of these settings."""
        return PipelineConfig(**{name: getattr(self, name) for name in PipelineConfig.model_fields})
