"""The camera-fusion node's schema (:mod:`perception_ws.nodes.fusion_node`), one ROS parameter per leaf."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from perception_ws.config.perception import ClassSetName, QosConfig
from perception_ws.labels import CLASS_SETS, ClassSet
from perception_ws.schema import ConfigError, Numbers, OptionalTopicName, Schema, TopicName

#: the camera-fusion node's name.
FUSION_NODE_NAME = "fusion_node"


class FusionTopicsConfig(Schema):
    """Topics of the fusion node: image, camera info, cloud, detections and mask in; painted cloud and overlay out."""

    image: TopicName = Field("camera/image", description="sensor_msgs/Image in: rgb8, bgr8, bgra8 or mono8")
    camera_info: TopicName = Field("camera/camera_info", description="sensor_msgs/CameraInfo of the image")
    cloud: TopicName = Field(
        "perception/labelled_points", description="PointCloud2 in: the perception node's labelled cloud or a raw one"
    )
    detections: OptionalTopicName = Field(
        "perception/detections", description="Detection3DArray in, drawn as boxes; empty: not subscribed"
    )
    label_mask: OptionalTopicName = Field(
        "", description="Image of class ids (mono8/mono16) to transfer to points; empty: not subscribed"
    )
    painted_cloud: TopicName = Field(
        "fusion/painted_points", description="the input cloud plus an rgb field (PCL packing)"
    )
    overlay: TopicName = Field(
        "fusion/overlay", description="rgb8 Image: points by label or depth, boxes as projected edges"
    )
    mask_labelled_cloud: TopicName = Field(
        "fusion/mask_labelled_points", description="the input cloud with labels from the mask"
    )
    diagnostics: TopicName = Field(
        "/diagnostics", description="diagnostic_msgs/DiagnosticArray: rate, latency, drops, rejects"
    )


class FusionSyncConfig(Schema):
    """How the image, camera info and cloud of one instant are paired by their stamps."""

    slop_s: float = Field(0.05, ge=0, description="largest stamp difference between the paired messages, seconds")
    queue_size: int = Field(10, ge=1, description="messages per input waiting for partners")
    min_period_s: float = Field(
        0.03,
        ge=0,
        description="lower bound of every input's period, s (0: unknown); lets a set go out without waiting for "
        "the next",
    )


class FusionCalibrationConfig(Schema):
    """Where the LiDAR -> camera transform comes from: given values, a KITTI file or /tf_static."""

    extrinsic: Numbers = Field((), description="LiDAR -> camera transform, 16 (4x4) or 12 (3x4) row-major values")
    kitti_calib: str = Field("", description="or a KITTI calibration file: R0_rect · Tr_velo_to_cam")
    from_tf: bool = Field(
        False,
        description="or from /tf_static: the chain from the cloud's frame_id to the image's (frames wait until it "
        "arrives)",
    )

    @model_validator(mode="after")
    def _one_transform(self) -> FusionCalibrationConfig:
        if len(self.extrinsic) not in (0, 12, 16):
            raise ConfigError(
                f"calibration.extrinsic has {len(self.extrinsic)} values; expected 16 (4x4), 12 (3x4) or none"
            )
        given = [key for key in ("extrinsic", "kitti_calib", "from_tf") if getattr(self, key)]
        if len(given) > 1:
            raise ConfigError(
                f"{' and '.join(f'calibration.{key}' for key in given)} are set together; expected one source of "
                "the LiDAR -> camera transform"
            )
        return self


class FusionPaintConfig(Schema):
    """How points take colours and labels from the image, and how the overlay draws them."""

    class_set: ClassSetName = Field(
        "kitti3", description=f"class table of the cloud's and the mask's labels: {', '.join(CLASS_SETS)}"
    )
    label_field: str = Field("label", description="cloud field coloured by class on the overlay (else points by depth)")
    occlusion: bool = Field(True, description="z-buffer test so hidden points take no colour or label from the image")
    occlusion_window: int = Field(5, ge=1, description="z-buffer neighbourhood, pixels (odd)")
    occlusion_tolerance_m: float = Field(
        0.5, ge=0, description="depth beyond the nearest point that still counts as the same surface"
    )
    occlusion_tolerance_rel: float = Field(0.1, ge=0, description="plus this fraction of the nearest depth")
    point_radius: int = Field(1, ge=0, description="overlay point size: squares of 2r+1 pixels")
    max_depth_m: float = Field(80.0, gt=0, description="overlay depth colours saturate here")
    max_points: int = Field(1_000_000, ge=1, description="larger clouds are rejected")

    @field_validator("occlusion_window")
    @classmethod
    def _odd(cls, window: int) -> int:
        if window % 2 == 0:
            raise ValueError("expected an odd number >= 1")
        return window


class FusionOutputConfig(Schema):
    """What the fusion node reports besides its topics."""

    diagnostics_period_s: float = Field(1.0, gt=0, description="seconds between diagnostics messages")


class FusionConfig(Schema):
    """Everything the camera-fusion node is told, one ROS parameter per key (as PerceptionConfig)."""

    topics: FusionTopicsConfig = Field(default_factory=FusionTopicsConfig)
    qos: QosConfig = Field(default_factory=QosConfig)
    sync: FusionSyncConfig = Field(default_factory=FusionSyncConfig)
    calibration: FusionCalibrationConfig = Field(default_factory=FusionCalibrationConfig)
    fusion: FusionPaintConfig = Field(default_factory=FusionPaintConfig)
    output: FusionOutputConfig = Field(default_factory=FusionOutputConfig)

    @property
    def classes(self) -> ClassSet:
        return CLASS_SETS[self.fusion.class_set]
