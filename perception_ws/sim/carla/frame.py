"""One synchronous CARLA tick as the project's data: a labelled :class:`Scan`, boxes, image, intrinsics.

Everything here is plain numpy on buffers and numbers already read from the server, so it runs
(and is tested) without one: :mod:`perception_ws.sim.carla.client` only fetches the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.labels import kitti_object_class
from perception_ws.scan import Scan
from perception_ws.sim.carla.convert import (
    carla_points_to_ros,
    channels_from_counts,
    invert_pose,
    parse_lidar,
    parse_semantic_lidar,
)
from perception_ws.sim.carla.tags import kitti3_from_tags, kitti_type, semantic_from_tags, thing_instances

#: the fields of a point of a CARLA semantic sweep (x, y, z in the LiDAR frame, ROS axes).
CARLA_POINT_DTYPE = np.dtype(
    [
        ("x", np.float32),
        ("y", np.float32),
        ("z", np.float32),
        ("cos_inc_angle", np.float32),  # cosine between the ray and the surface normal
        ("ring", np.uint16),  # CARLA channel, 0 = top laser
        ("label", np.uint8),  # KITTI-3 id
        ("semantic", np.uint8),  # SemanticKITTI learning id
        ("instance", np.uint32),  # actor id for objects, 0 for stuff
        ("object_tag", np.uint8),  # the raw CARLA tag
    ]
)
#: the fields of a point of a plain CARLA LiDAR sweep.
CARLA_PLAIN_POINT_DTYPE = np.dtype(
    [("x", np.float32), ("y", np.float32), ("z", np.float32), ("intensity", np.float32), ("ring", np.uint16)]
)


@dataclass(eq=False)
class ActorState:
    """What a frame needs of a vehicle or walker: its kind and where its box is (ROS axes)."""

    id: int
    #: "car", "van", "truck", "bus", "motorcycle", "bicycle", "pedestrian" or "other" (tags.actor_base_type).
    base_type: str
    #: 4x4 actor -> world.
    pose: np.ndarray
    #: 4x4 box centre -> actor (CARLA's ``bounding_box`` location and rotation).
    box_pose: np.ndarray
    #: half sizes along the box's x (length), y (width), z (height), metres.
    extent: np.ndarray
    #: world-frame velocity (m/s).
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    blueprint: str = ""


@dataclass(eq=False)
class CarlaFrame:
    """One tick: the semantic sweep as a :class:`Scan` (labels, semantic, instances, boxes, and the
    camera image with its calibration), plus what the Scan has no field for.
    """

    frame: int
    timestamp: float
    scan: Scan
    #: 4x4 LiDAR -> world (ROS axes: CARLA's world with y flipped).
    lidar_pose: np.ndarray
    plain: Scan | None = None
    #: (H, W, 3) uint8 RGB.
    image: np.ndarray | None = None
    #: (H, W) uint8 raw CARLA tags of the semantic camera, and the same as SemanticKITTI learning ids.
    tag_image: np.ndarray | None = None
    semantic_image: np.ndarray | None = None
    camera: PinholeCamera | None = None
    #: LiDAR -> camera optical frame.
    extrinsic: Extrinsic | None = None

    def camera_info(self) -> dict[str, Any] | None:
        """sensor_msgs/CameraInfo fields of the camera (``CameraInfo(**d)``), or None without one."""
        return self.camera.to_camera_info_dict() if self.camera is not None else None


def semantic_scan(
    raw: bytes | memoryview,
    counts: Sequence[int] | np.ndarray,
    actors: Sequence[ActorState] = (),
    lidar_pose: np.ndarray | None = None,
    ego_id: int | None = None,
    name: str = "",
    stamp_ns: int | None = None,
    sensor: str = "carla",
    max_box_range: float = np.inf,
) -> Scan:
    """A semantic LiDAR measurement (``raw_data``, points per channel) as a labelled Scan.

    ``actors`` (with the LiDAR's world pose ``lidar_pose``) give the boxes and tell each instance's
    KITTI type (a van's points are SemanticKITTI car but not a KITTI-3 car); points of ``ego_id``
    (the ego vehicle's own body) are dropped.
    """
    records = parse_semantic_lidar(raw)
    rings = channels_from_counts(counts, len(records))
    if ego_id is not None:
        keep = records["object_idx"] != ego_id
        records, rings = records[keep], rings[keep]
    tags = records["object_tag"]
    instances = thing_instances(tags, records["object_idx"])
    motorcycles = [a.id for a in actors if a.base_type == "motorcycle"]
    semantic = semantic_from_tags(tags, instances, motorcycles)
    classes = {a.id: kitti_object_class(kitti_type(a.base_type)) for a in actors}
    labels = kitti3_from_tags(tags, instances, semantic, classes)

    points = np.zeros(len(records), dtype=CARLA_POINT_DTYPE)
    xyz = carla_points_to_ros(records["x"], records["y"], records["z"])
    points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    points["cos_inc_angle"] = records["cos_inc_angle"]
    points["ring"] = rings
    points["label"], points["semantic"], points["instance"] = labels, semantic, instances
    points["object_tag"] = np.minimum(tags, 255)
    boxes = actor_boxes(actors, lidar_pose, instances, max_box_range) if lidar_pose is not None else []
    return Scan(
        points=points,
        name=name,
        stamp_ns=stamp_ns,
        sensor=sensor,
        labels=labels,
        semantic=semantic,
        instances=instances,
        boxes=boxes,
    )


def plain_scan(
    raw: bytes | memoryview, counts: Sequence[int] | np.ndarray, name: str = "", stamp_ns: int | None = None
) -> Scan:
    """A plain LiDAR measurement as an unlabelled Scan with intensity and ring."""
    records = parse_lidar(raw)
    points = np.zeros(len(records), dtype=CARLA_PLAIN_POINT_DTYPE)
    xyz = carla_points_to_ros(records["x"], records["y"], records["z"])
    points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    points["intensity"] = records["intensity"]
    points["ring"] = channels_from_counts(counts, len(records))
    return Scan(points=points, name=name, stamp_ns=stamp_ns, sensor="carla-lidar")


def actor_boxes(
    actors: Sequence[ActorState], lidar_pose: np.ndarray, instances: np.ndarray, max_range: float = np.inf
) -> list[Box3D]:
    """Each actor's box in the LiDAR frame (yaw only: the box's heading projected on the LiDAR's
    xy plane), with its point count; actors farther than ``max_range`` and without points are left out.
    """
    world_to_lidar = invert_pose(np.asarray(lidar_pose, dtype=np.float64))
    ids, counts = np.unique(np.asarray(instances), return_counts=True)
    points_of = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    boxes = []
    for actor in actors:
        box = world_to_lidar @ actor.pose @ actor.box_pose
        n = points_of.get(actor.id, 0)
        if n == 0 and float(np.linalg.norm(box[:3, 3])) > max_range:
            continue
        name = kitti_type(actor.base_type)
        boxes.append(
            Box3D(
                center=box[:3, 3],
                size=2.0 * np.asarray(actor.extent, dtype=np.float64),
                yaw=float(np.arctan2(box[1, 0], box[0, 0])),
                label=kitti_object_class(name),
                name=name,
                num_points=n,
                track_id=actor.id,
                velocity=world_to_lidar[:3, :3] @ np.asarray(actor.velocity, dtype=np.float64),
            )
        )
    return boxes
