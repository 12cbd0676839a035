"""One configuration schema for the pipeline and the perception node, mirrored 1:1 as ROS parameters.

Every field of :class:`PerceptionConfig` is one ROS parameter, named by its path: ``sensor.model``,
``segmenter.kind``, ``tracking.confirm_hits`` … The same names are the keys of a ROS params file::

    perception_node:
      ros__parameters:
        sensor: {model: hdl64e, fov_deg: 360.0, width: 2048}
        segmenter: {kind: labels}

so a YAML read here (:func:`load_config`, no ROS needed), the parameters a node declares
(:func:`declare_ros_parameters`) and ``ros2 param dump`` all agree. Values are checked here, once,
whichever way they came in: a wrong key or value raises :class:`ConfigError` naming the key and what
was expected. Defaults of the instance stage are taken from :mod:`perception_ws.instances.config`, so a
number is written in one place only.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import yaml

from perception_ws.calib.sensors import SensorModel, load_sensor
from perception_ws.errors import PerceptionError, SensorError
from perception_ws.instances.config import (
    THESIS_CLUSTER,
    BoxMethod,
    ClusterConfig,
    ClusterParams,
    DetectConfig,
    MotionModel,
    TrackerConfig,
)
from perception_ws.labels import CLASS_SETS, ClassSet
from perception_ws.projection import ROW_SOURCES, RowSource, fov_bounds

if TYPE_CHECKING:
    from rclpy.node import Node

#: the node name whose section a params file is read from, unless told otherwise.
NODE_NAME = "perception_node"
#: the camera-fusion node's name (its own schema: :class:`FusionConfig`).
FUSION_NODE_NAME = "fusion_node"
#: a schema class: PerceptionConfig or FusionConfig.
Schema = TypeVar("Schema")
#: what may stand for the node name in a params file (ROS 2 wildcards).
_WILDCARDS = ("/**", "**")
#: parameters rclpy declares itself on every node; a params file may set them, the schema ignores them.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
_ROS_OWN_PREFIXES = ("qos_overrides.",)

SEGMENTER_KINDS = ("model", "labels", "none")
PRECISIONS = ("fp32", "bf16", "fp16")
BOX_METHODS = ("search", "pca", "min_area")
MOTION_MODELS = ("ca", "cv")
MARKER_STYLES = ("line_list", "cube")
ODOMETRY_SOURCES = ("none", "lidar")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
TOPIC_PATTERN = re.compile(r"^~?/?[A-Za-z_{][A-Za-z0-9_{}/~]*$")


class ConfigError(PerceptionError):
    """A configuration key is unknown, or its value has the wrong type or lies out of range."""


def doc(default: Any, doc: str) -> Any:
    """A dataclass field with a default and the one-line description a ROS parameter shows."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class TopicsConfig:
    input: str = doc("points", "PointCloud2 input (SensorData QoS)")
    labelled_cloud: str = doc("perception/labelled_points", "input cloud plus fields label and instance")
    detections: str = doc("perception/detections", "perception_ws/Detection3DArray")
    tracks: str = doc("perception/tracks", "perception_ws/TrackArray")
    markers: str = doc("perception/markers", "visualization_msgs/MarkerArray of boxes, ids and classes")
    diagnostics: str = doc("/diagnostics", "diagnostic_msgs/DiagnosticArray: latency, rate, drops, rejects")


@dataclass(frozen=True)
class QosConfig:
    input_depth: int = doc(2, "queue depth of the input subscription (best effort)")
    output_depth: int = doc(5, "queue depth of every output publisher (reliable)")


@dataclass(frozen=True)
class SensorConfig:
    model: str = doc("hdl64e", "built-in sensor name (calib/data) or a sensor YAML file")
    fov_deg: float = doc(360.0, "horizontal field of view of the range image, degrees, centred on +x")
    width: int = doc(2048, "range image columns")
    row_source: str = doc("auto", f"range image rows from: {', '.join(ROW_SOURCES)}")
    max_points: int = doc(1_000_000, "clouds with more points are rejected (bounded latency)")


@dataclass(frozen=True)
class SegmenterConfig:
    kind: str = doc("model", "model: the network; labels: the input's label field; none: every point 0")
    model: str = doc("squeezesegv2", "network architecture (perception_ws.models.MODELS)")
    weights: str = doc("", "weights file; empty: the shipped default weights")
    device: str = doc("cpu", "torch device: cpu, cuda or cuda:N")
    label_field: str = doc("label", "input field holding class ids (kind labels)")
    threads: int = doc(0, "torch CPU threads for the network; 0: torch's default (one per core)")
    compile: bool = doc(False, "torch.compile the network (kind model), compiled and warmed up at start (~1 min)")
    precision: str = doc(
        "fp32",
        "network arithmetic: fp32; bf16 (GPUs, and CPUs with AVX-512 BF16 or AMX, where it is ~1.7x faster with "
        "99.9 % of labels unchanged; elsewhere fp32 is used and the node says so); fp16 (GPUs only)",
    )


@dataclass(frozen=True)
class DetectionConfig:
    classes: tuple[str, ...] = doc((), "class names to detect; empty: the class set's object classes")
    eps_m: float = doc(THESIS_CLUSTER.eps_m, "DBSCAN radius of classes other than car, metres (measured: 0.5)")
    min_samples: int = doc(THESIS_CLUSTER.min_points, "DBSCAN core neighbours, the point counts (measured: 10)")
    car_eps_m: float = doc(THESIS_CLUSTER.eps_m, "DBSCAN radius of cars, metres (measured: 1.0)")
    car_min_samples: int = doc(THESIS_CLUSTER.min_points, "DBSCAN core point neighbours of cars (measured: 10)")
    box_method: str = doc(DetectConfig.box_method, f"box fitting: {', '.join(BOX_METHODS)}")
    merge_overlap: float = doc(DetectConfig.merge_overlap, "merge same-class boxes overlapping this much")
    remove_ground: bool = doc(DetectConfig.remove_ground, "remove ground points before clustering")
    min_score: float = doc(0.0, "drop detections whose score (mean class probability) is lower")


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = doc(True, "run the tracker")
    motion_model: str = doc(TrackerConfig.motion_model, "ca: constant acceleration; cv: constant velocity")
    confirm_hits: int = doc(TrackerConfig.confirm_hits, "matches for a new track to be confirmed")
    max_misses: int = doc(TrackerConfig.max_misses, "missed scans before a lost track is deleted")
    gate_distance_m: float = doc(TrackerConfig.gate_distance_m, "largest detection-to-track distance, metres")
    gate_mahalanobis2: float = doc(TrackerConfig.gate_mahalanobis2, "largest squared Mahalanobis distance")
    match_class: bool = doc(TrackerConfig.match_class, "match detections only to tracks of their class")
    report_lost: bool = doc(TrackerConfig.report_lost, "report lost tracks at their prediction")
    fixed_frame: str = doc(
        "",
        "track in this frame (e.g. odom), its pose read from /tf and /tf_static at each scan's stamp, so track "
        "velocities are over the ground; empty: in the scan's frame (velocities relative to the sensor)",
    )
    tf_timeout_s: float = doc(
        0.1, "with fixed_frame: how long to wait for the scan's pose when the odometry on /tf lags the scan, seconds"
    )
    odometry: str = doc(
        "none",
        "lidar: without fixed_frame, find the sensor's motion from the scans (ICP, ~20 ms a scan) and track over "
        "the ground in that frame; none: track in the scan's frame",
    )


@dataclass(frozen=True)
class OutputConfig:
    marker_style: str = doc("line_list", f"box markers: {', '.join(MARKER_STYLES)}")
    diagnostics_period_s: float = doc(1.0, "seconds between diagnostics messages")


@dataclass(frozen=True)
class PerceptionConfig:
    """Everything the pipeline and the perception node are told; see the module doc."""

    class_set: str = doc("kitti3", f"class table: {', '.join(CLASS_SETS)}")
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    qos: QosConfig = field(default_factory=QosConfig)
    sensor: SensorConfig = field(default_factory=SensorConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        _validate(self)

    # -- what the stages need, built from the flat settings -------------------------------------

    @property
    def classes(self) -> ClassSet:
        return CLASS_SETS[self.class_set]

    @functools.cached_property
    def sensor_model(self) -> SensorModel:
        return load_sensor(self.sensor.model)

    @property
    def row_source(self) -> RowSource:
        return cast(RowSource, self.sensor.row_source)  # validated against ROW_SOURCES

    def detect_config(self) -> DetectConfig:
        d = self.detection
        return DetectConfig(
            cluster=ClusterConfig(
                ClusterParams(d.eps_m, d.min_samples), {"car": ClusterParams(d.car_eps_m, d.car_min_samples)}
            ),
            box_method=cast(BoxMethod, d.box_method),  # validated against BOX_METHODS
            classes=d.classes or None,
            merge_overlap=d.merge_overlap,
            remove_ground=d.remove_ground,
        )

    def tracker_config(self) -> TrackerConfig:
        t = self.tracking
        return TrackerConfig(
            motion_model=cast(MotionModel, t.motion_model),  # validated against MOTION_MODELS
            confirm_hits=t.confirm_hits,
            max_misses=t.max_misses,
            gate_distance_m=t.gate_distance_m,
            gate_mahalanobis2=t.gate_mahalanobis2,
            match_class=t.match_class,
            report_lost=t.report_lost,
        )

    def replace(self, **changes: Any) -> PerceptionConfig:
        """A copy with dotted keys changed: ``config.replace(**{"segmenter.kind": "labels"})``."""
        flat = flatten(self)
        for key, value in changes.items():
            if key not in flat:
                raise ConfigError(_unknown_key_message(key, flat))
            flat[key] = value
        return from_flat(flat)


# -- flat dotted keys <-> the schema ----------------------------------------------------------


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"sensor.model": "hdl64e", …}``: every leaf of the schema by its dotted key, in schema order."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = list(value) if isinstance(value, tuple) else value
    return out


def descriptions(schema: type = PerceptionConfig) -> dict[str, str]:
    """One-line description of every dotted key (shown by ``ros2 param describe``)."""
    return {key: doc for key, (_, doc) in _leaves(schema).items()}


def from_flat(values: Mapping[str, Any], where: str = "config") -> PerceptionConfig:
    """A validated config from dotted keys; keys left out keep their defaults."""
    return schema_from_flat(PerceptionConfig, values, where)


def schema_from_flat(schema: type[Schema], values: Mapping[str, Any], where: str = "config") -> Schema:
    """:func:`from_flat` for any schema class (e.g. :class:`FusionConfig`)."""
    leaves = _leaves(cast(type, schema))
    for key in values:
        if key not in leaves and not _is_ros_own(key):
            raise ConfigError(f"{where}: {_unknown_key_message(key, leaves)}")
    built: Schema = _build(schema, values, "", where)
    return built


def from_mapping(params: Mapping[str, Any], where: str = "config") -> PerceptionConfig:
    """A validated config from nested mappings and/or dotted keys (a params file's ``ros__parameters``)."""
    return from_flat(_flatten_mapping(params, "", where), where)


def load_config(path: str | Path, node_name: str = NODE_NAME) -> PerceptionConfig:
    """The config of ``node_name`` in a ROS params file (``node: ros__parameters: {...}``).

    Sections for other nodes are ignored; a ``/**`` section applies to every node; the node's own
    section wins over it, key by key.
    """
    return load_schema_config(path, PerceptionConfig, node_name)


def load_schema_config(path: str | Path, schema: type[Schema], node_name: str) -> Schema:
    """:func:`load_config` for any schema class (``FusionConfig`` of node ``fusion_node``)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: expected a mapping '{node_name}: ros__parameters: {{...}}' at the top")
    merged: dict[str, Any] = {}
    found = False
    for name in (*_WILDCARDS, node_name, f"/{node_name}"):
        section = document.get(name)
        if section is None:
            continue
        if not isinstance(section, Mapping) or "ros__parameters" not in section:
            raise ConfigError(f"{path}: section {name!r} lacks 'ros__parameters'")
        merged.update(_flatten_mapping(section["ros__parameters"] or {}, "", f"{path} [{name}]"))
        found = True
    if not found:
        raise ConfigError(f"{path}: no section for node {node_name!r} (or '/**'); sections: {list(document)}")
    return schema_from_flat(schema, merged, str(path))


def to_params_document(config: Any, node_name: str = NODE_NAME) -> dict[str, Any]:
    """The params-file document (nested) of a config; :func:`load_config` reads it back unchanged."""
    nested: dict[str, Any] = {}
    for key, value in flatten(config).items():
        *parents, leaf = key.split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return {node_name: {"ros__parameters": nested}}


# -- ROS parameters ---------------------------------------------------------------------------


def declare_ros_parameters(node: Node, defaults: PerceptionConfig | None = None) -> PerceptionConfig:
    """Declare every key as a parameter of ``node`` (default from ``defaults``), then read them back.

    Values from a params file or ``-p key:=value`` override the defaults; they are checked here like a
    YAML file's (parameters are declared with dynamic typing so that ``fov_deg: 360`` is accepted and a
    wrong type gets this module's error naming the key, not rclpy's).
    """
    return declare_schema_parameters(node, defaults or PerceptionConfig())


def declare_schema_parameters(node: Node, defaults: Schema) -> Schema:
    """:func:`declare_ros_parameters` for any schema: the keys of ``type(defaults)``."""
    from rcl_interfaces.msg import ParameterDescriptor

    schema = type(defaults)
    docs = descriptions(schema)
    flat = flatten(defaults)
    for key, value in flat.items():
        node.declare_parameter(key, value, ParameterDescriptor(description=docs[key], dynamic_typing=True))
    where = f"parameters of node {node.get_name()!r}"
    # a misspelt key in a params file would otherwise be ignored silently (only declared names are read);
    # rclpy keeps the overrides it was given in this attribute (no public accessor)
    for key in getattr(node, "_parameter_overrides", {}):
        if key not in flat and not _is_ros_own(key):
            raise ConfigError(f"{where}: {_unknown_key_message(key, flat)}")
    values = {key: node.get_parameter(key).value for key in flat}
    return schema_from_flat(schema, values, where)


# -- helpers ----------------------------------------------------------------------------------


@functools.cache
def _leaves(cls: type) -> dict[str, tuple[Any, str]]:
    """Dotted key -> (type annotation, description) of every leaf field of a schema class."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[Any, str]] = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out.update({f"{f.name}.{k}": v for k, v in _leaves(kind).items()})  # type: ignore[arg-type]
        else:
            out[f.name] = (kind, str(f.metadata.get("doc", "")))
    return out


def _build(cls: type, values: Mapping[str, Any], prefix: str, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key, kind = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(kind):
            kwargs[f.name] = _build(kind, values, f"{key}.", where)  # type: ignore[arg-type]
        elif key in values:
            kwargs[f.name] = _coerce(values[key], kind, key, where)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _coerce(value: Any, kind: Any, key: str, where: str) -> Any:
    """``value`` as the field's type, or a ConfigError naming the key."""

    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key} = {value!r} ({type(value).__name__}); expected {expected}")

    if kind is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise wrong("a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if kind == tuple[float, ...]:
        if value is None:
            return ()
        numbers = isinstance(value, Sequence) and not isinstance(value, str)
        if not numbers or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise wrong("a list of numbers")
        if not all(math.isfinite(v) for v in value):
            raise wrong("finite numbers")
        return tuple(float(v) for v in value)
    if typing.get_origin(kind) is tuple:
        if value is None:  # a params file's empty list [] reaches rclpy untyped, as NOT_SET
            return ()
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise wrong("a list of strings")
        return tuple(value)
    raise TypeError(f"config schema: unsupported type {kind!r} for {key}")  # a bug in the schema


def _flatten_mapping(params: Mapping[str, Any], prefix: str, where: str) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'ros__parameters'} must be a mapping")
    out: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(_flatten_mapping(value, f"{key}.", where))
        else:
            out[key] = value
    return out


def _is_ros_own(key: str) -> bool:
    return key in ROS_OWN_PARAMETERS or key.startswith(_ROS_OWN_PREFIXES)


def _unknown_key_message(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return f"unknown key {key!r}{hint}"


def check_one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} = {value!r}; expected one of {', '.join(allowed)}")


def check_at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{key} = {value!r}; expected at least {low}")


def _validate(c: PerceptionConfig) -> None:
    """Range and consistency checks; each error names its key."""
    check_one_of("class_set", c.class_set, tuple(CLASS_SETS))
    for key, topic in flatten(c.topics, "topics.").items():
        if not TOPIC_PATTERN.match(topic):
            raise ConfigError(f"{key} = {topic!r}; expected a ROS topic name such as 'points' or '/lidar/points'")
    check_at_least("qos.input_depth", c.qos.input_depth, 1)
    check_at_least("qos.output_depth", c.qos.output_depth, 1)
    try:
        load_sensor(c.sensor.model)
        fov_bounds(c.sensor.fov_deg)
    except SensorError as err:
        raise ConfigError(f"sensor.model = {c.sensor.model!r}: {err}") from None
    except PerceptionError as err:
        raise ConfigError(f"sensor.fov_deg = {c.sensor.fov_deg!r}: {err}") from None
    check_at_least("sensor.width", c.sensor.width, 1)
    check_one_of("sensor.row_source", c.sensor.row_source, ROW_SOURCES)
    check_at_least("sensor.max_points", c.sensor.max_points, 1)
    check_one_of("segmenter.kind", c.segmenter.kind, SEGMENTER_KINDS)
    if not _DEVICE.match(c.segmenter.device):
        raise ConfigError(f"segmenter.device = {c.segmenter.device!r}; expected cpu, cuda or cuda:N")
    check_at_least("segmenter.threads", c.segmenter.threads, 0)
    check_one_of("segmenter.precision", c.segmenter.precision, PRECISIONS)
    if c.segmenter.precision == "fp16" and c.segmenter.device == "cpu":
        raise ConfigError("segmenter.precision = 'fp16' needs a GPU (segmenter.device cuda); on a CPU use bf16 or fp32")
    if c.segmenter.kind == "labels" and not c.segmenter.label_field:
        raise ConfigError("segmenter.label_field is empty; kind 'labels' needs the name of the input's label field")
    for name in c.detection.classes:
        if name not in c.classes.names:
            raise ConfigError(
                f"detection.classes: {name!r} is not a class of {c.class_set}; known: {', '.join(c.classes.names)}"
            )
    for prefix in ("", "car_"):
        eps = getattr(c.detection, f"{prefix}eps_m")
        if not eps > 0:
            raise ConfigError(f"detection.{prefix}eps_m = {eps!r}; expected a radius > 0")
        check_at_least(f"detection.{prefix}min_samples", getattr(c.detection, f"{prefix}min_samples"), 1)
    check_one_of("detection.box_method", c.detection.box_method, BOX_METHODS)
    if not 0.0 <= c.detection.merge_overlap <= 1.0:
        raise ConfigError(f"detection.merge_overlap = {c.detection.merge_overlap!r}; expected 0 to 1")
    if not 0.0 <= c.detection.min_score <= 1.0:
        raise ConfigError(f"detection.min_score = {c.detection.min_score!r}; expected 0 to 1")
    check_one_of("tracking.motion_model", c.tracking.motion_model, MOTION_MODELS)
    check_at_least("tracking.confirm_hits", c.tracking.confirm_hits, 1)
    check_at_least("tracking.max_misses", c.tracking.max_misses, 0)
    check_at_least("tracking.tf_timeout_s", c.tracking.tf_timeout_s, 0.0)  # NaN and inf: refused as every float
    check_one_of("tracking.odometry", c.tracking.odometry, ODOMETRY_SOURCES)
    if c.tracking.odometry != "none" and c.tracking.fixed_frame:
        raise ConfigError(
            f"tracking.odometry = {c.tracking.odometry!r} and tracking.fixed_frame = {c.tracking.fixed_frame!r}: "
            "choose one source of the sensor's motion (the pose from /tf, or the scans themselves)"
        )
    for key in ("gate_distance_m", "gate_mahalanobis2"):
        if not getattr(c.tracking, key) > 0:
            raise ConfigError(f"tracking.{key} = {getattr(c.tracking, key)!r}; expected a value > 0")
    check_one_of("output.marker_style", c.output.marker_style, MARKER_STYLES)
    if not c.output.diagnostics_period_s > 0:
        raise ConfigError(f"output.diagnostics_period_s = {c.output.diagnostics_period_s!r}; expected > 0")


# -- the camera-fusion node's schema (perception_ws/nodes/fusion_node.py) ---------------------


@dataclass(frozen=True)
class FusionTopicsConfig:
    image: str = doc("camera/image", "sensor_msgs/Image in: rgb8, bgr8, bgra8 or mono8")
    camera_info: str = doc("camera/camera_info", "sensor_msgs/CameraInfo of the image")
    cloud: str = doc("perception/labelled_points", "PointCloud2 in: the perception node's labelled cloud or a raw one")
    detections: str = doc("perception/detections", "Detection3DArray in, drawn as boxes; empty: not subscribed")
    label_mask: str = doc("", "Image of class ids (mono8/mono16) to transfer to points; empty: not subscribed")
    painted_cloud: str = doc("fusion/painted_points", "the input cloud plus an rgb field (PCL packing)")
    overlay: str = doc("fusion/overlay", "rgb8 Image: points by label or depth, boxes as projected edges")
    mask_labelled_cloud: str = doc("fusion/mask_labelled_points", "the input cloud with labels from the mask")
    diagnostics: str = doc("/diagnostics", "diagnostic_msgs/DiagnosticArray: rate, latency, drops, rejects")


@dataclass(frozen=True)
class FusionSyncConfig:
    slop_s: float = doc(0.05, "largest stamp difference between the paired messages, seconds")
    queue_size: int = doc(10, "messages per input waiting for partners")
    min_period_s: float = doc(
        0.03, "lower bound of every input's period, s (0: unknown); lets a set go out without waiting for the next"
    )


@dataclass(frozen=True)
class FusionCalibrationConfig:
    extrinsic: tuple[float, ...] = doc((), "LiDAR -> camera transform, 16 (4x4) or 12 (3x4) row-major values")
    kitti_calib: str = doc("", "or a KITTI calibration file: R0_rect · Tr_velo_to_cam")
    from_tf: bool = doc(
        False, "or from /tf_static: the chain from the cloud's frame_id to the image's (frames wait until it arrives)"
    )


@dataclass(frozen=True)
class FusionPaintConfig:
    class_set: str = doc("kitti3", f"class table of the cloud's and the mask's labels: {', '.join(CLASS_SETS)}")
    label_field: str = doc("label", "cloud field coloured by class on the overlay (else points by depth)")
    occlusion: bool = doc(True, "z-buffer test so hidden points take no colour or label from the image")
    occlusion_window: int = doc(5, "z-buffer neighbourhood, pixels (odd)")
    occlusion_tolerance_m: float = doc(0.5, "depth beyond the nearest point that still counts as the same surface")
    occlusion_tolerance_rel: float = doc(0.1, "plus this fraction of the nearest depth")
    point_radius: int = doc(1, "overlay point size: squares of 2r+1 pixels")
    max_depth_m: float = doc(80.0, "overlay depth colours saturate here")
    max_points: int = doc(1_000_000, "larger clouds are rejected")


@dataclass(frozen=True)
class FusionOutputConfig:
    diagnostics_period_s: float = doc(1.0, "seconds between diagnostics messages")


@dataclass(frozen=True)
class FusionConfig:
    """Everything the camera-fusion node is told, one ROS parameter per key (as PerceptionConfig)."""

    topics: FusionTopicsConfig = field(default_factory=FusionTopicsConfig)
    qos: QosConfig = field(default_factory=QosConfig)
    sync: FusionSyncConfig = field(default_factory=FusionSyncConfig)
    calibration: FusionCalibrationConfig = field(default_factory=FusionCalibrationConfig)
    fusion: FusionPaintConfig = field(default_factory=FusionPaintConfig)
    output: FusionOutputConfig = field(default_factory=FusionOutputConfig)

    def __post_init__(self) -> None:
        _validate_fusion(self)

    @property
    def classes(self) -> ClassSet:
        return CLASS_SETS[self.fusion.class_set]

    def replace(self, **changes: Any) -> FusionConfig:
        """A copy with dotted keys changed (see :meth:`PerceptionConfig.replace`)."""
        flat = flatten(self)
        for key, value in changes.items():
            if key not in flat:
                raise ConfigError(_unknown_key_message(key, flat))
            flat[key] = value
        return schema_from_flat(FusionConfig, flat)


#: topics of the fusion node that may be left empty (input not subscribed).
_OPTIONAL_FUSION_TOPICS = ("topics.detections", "topics.label_mask")


def _validate_fusion(c: FusionConfig) -> None:
    for key, topic in flatten(c.topics, "topics.").items():
        if not (TOPIC_PATTERN.match(topic) or (topic == "" and key in _OPTIONAL_FUSION_TOPICS)):
            raise ConfigError(f"{key} = {topic!r}; expected a ROS topic name such as 'camera/image'")
    check_at_least("qos.input_depth", c.qos.input_depth, 1)
    check_at_least("qos.output_depth", c.qos.output_depth, 1)
    if not c.sync.slop_s >= 0:
        raise ConfigError(f"sync.slop_s = {c.sync.slop_s!r}; expected >= 0")
    check_at_least("sync.queue_size", c.sync.queue_size, 1)
    check_at_least("sync.min_period_s", c.sync.min_period_s, 0.0)
    if len(c.calibration.extrinsic) not in (0, 12, 16):
        raise ConfigError(
            f"calibration.extrinsic has {len(c.calibration.extrinsic)} values; expected 16 (4x4), 12 (3x4) or none"
        )
    given = [key for key in ("extrinsic", "kitti_calib", "from_tf") if getattr(c.calibration, key)]
    if len(given) > 1:
        raise ConfigError(
            f"{' and '.join(f'calibration.{key}' for key in given)} are set together; expected one source of "
            "the LiDAR -> camera transform"
        )
    check_one_of("fusion.class_set", c.fusion.class_set, tuple(CLASS_SETS))
    if c.fusion.occlusion_window < 1 or c.fusion.occlusion_window % 2 == 0:
        raise ConfigError(f"fusion.occlusion_window = {c.fusion.occlusion_window!r}; expected an odd number >= 1")
    check_at_least("fusion.occlusion_tolerance_m", c.fusion.occlusion_tolerance_m, 0.0)
    check_at_least("fusion.occlusion_tolerance_rel", c.fusion.occlusion_tolerance_rel, 0.0)
    check_at_least("fusion.point_radius", c.fusion.point_radius, 0)
    if not c.fusion.max_depth_m > 0:
        raise ConfigError(f"fusion.max_depth_m = {c.fusion.max_depth_m!r}; expected > 0")
    check_at_least("fusion.max_points", c.fusion.max_points, 1)
    if not c.output.diagnostics_period_s > 0:
        raise ConfigError(f"output.diagnostics_period_s = {c.output.diagnostics_period_s!r}; expected > 0")
