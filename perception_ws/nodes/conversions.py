"""Pipeline results to messages: the labelled cloud, Detection3DArray and TrackArray (the project's own), and
vision_msgs/Detection3DArray (the ROS 2 standard one, for users' tools).

Every message carries the input's header unchanged (stamp and frame_id), so a consumer pairs outputs
with their scan by stamp and draws them in the scan's frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion, Vector3
from sensor_msgs.msg import PointCloud2
from vision_msgs.msg import BoundingBox3D, ObjectHypothesis, ObjectHypothesisWithPose
from vision_msgs.msg import Detection3D as VisionDetection3D
from vision_msgs.msg import Detection3DArray as VisionDetection3DArray

from perception_ws.boxes import Box3D
from perception_ws.cloud import to_msg
from perception_ws.labels import ClassSet
from perception_ws.msg import Detection3D, Detection3DArray, Track, TrackArray
from perception_ws.pipeline import TrackInfo

#: the fields the node adds to the input's (replacing any of the same name).
LABEL_FIELD, INSTANCE_FIELD = "label", "instance"
LABEL_DTYPE, INSTANCE_DTYPE = np.dtype(np.uint16), np.dtype(np.uint32)
TRACK_STATES = {"tentative": Track.STATE_TENTATIVE, "confirmed": Track.STATE_CONFIRMED, "lost": Track.STATE_LOST}


def labelled_points(points: np.ndarray, labels: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """The input points (1-D or organized) with fields ``label`` (uint16) and ``instance`` (uint32) appended.

    Input fields keep their names, types and offsets; a ``label``/``instance`` the input already had is
    replaced (its bytes become padding). ``labels``/``instances`` are flat, in the points' row-major order.
    """
    fields: Mapping[str, Any] = points.dtype.fields or {}
    kept = [name for name in points.dtype.names or () if name not in (LABEL_FIELD, INSTANCE_FIELD)]
    instance_at = _aligned(points.dtype.itemsize, INSTANCE_DTYPE.itemsize)
    label_at = instance_at + INSTANCE_DTYPE.itemsize
    dtype = np.dtype(
        {
            "names": [*kept, INSTANCE_FIELD, LABEL_FIELD],
            "formats": [*(fields[name][0] for name in kept), INSTANCE_DTYPE, LABEL_DTYPE],
            "offsets": [*(fields[name][1] for name in kept), instance_at, label_at],
            "itemsize": _aligned(label_at + LABEL_DTYPE.itemsize, INSTANCE_DTYPE.itemsize),
        }
    )
    out = np.zeros(points.shape, dtype=dtype)
    for name in kept:
        out[name] = points[name]
    out[INSTANCE_FIELD] = instances.reshape(points.shape)
    out[LABEL_FIELD] = labels.reshape(points.shape)
    return out


def labelled_cloud_msg(header: Any, points: np.ndarray, labels: np.ndarray, instances: np.ndarray) -> PointCloud2:
    """The input points with their ``label`` and ``instance`` fields added, as a PointCloud2."""
    return to_msg(labelled_points(points, labels, instances), header=header)


def detections_msg(header: Any, detections: Sequence[Box3D], class_set: ClassSet) -> Detection3DArray:
    """Boxes as a Detection3DArray under ``header``, class names from ``class_set``."""
    return Detection3DArray(header=header, detections=[_detection(header, box, class_set) for box in detections])


def vision_detections_msg(header: Any, detections: Sequence[Box3D], class_set: ClassSet) -> VisionDetection3DArray:
    """Boxes as a vision_msgs/Detection3DArray under ``header``: the same boxes as :func:`detections_msg`.

    Each detection has one class hypothesis (class_id: the class name, score: the detection's score, pose: the
    box's), the box as ``bbox`` (centre pose with the yaw as a quaternion about +z, size) and ``id`` = its
    instance id: the value of the labelled cloud's ``instance`` field on its points (1 for the first detection).
    The pose covariance is all zero: not estimated.
    """
    return VisionDetection3DArray(
        header=header,
        detections=[
            _vision_detection(header, box, str(index), class_set) for index, box in enumerate(detections, start=1)
        ],
    )


def tracks_msg(header: Any, tracks: Sequence[TrackInfo], class_set: ClassSet) -> TrackArray:
    """Tracks as a TrackArray under ``header``, class names from ``class_set``."""
    return TrackArray(header=header, tracks=[_track(header, info, class_set) for info in tracks])


def wrap_angle(angle: float) -> float:
    """``angle`` in [-pi, pi)."""
    return (float(angle) + math.pi) % (2.0 * math.pi) - math.pi


def _detection(header: Any, box: Box3D, class_set: ClassSet) -> Detection3D:
    return Detection3D(
        header=header,
        class_id=int(box.label),
        class_name=class_name(box, class_set),
        score=_score(box),
        center=point_msg(box.center),
        size=vector_msg(box.size),
        yaw=wrap_angle(box.yaw),
        velocity=vector_msg(box.velocity),
        track_id=int(box.track_id) if box.track_id >= 0 else Detection3D.TRACK_ID_NONE,
        num_points=int(box.num_points),
    )


def _vision_detection(header: Any, box: Box3D, instance: str, class_set: ClassSet) -> VisionDetection3D:
    pose = box_pose(box)
    hypothesis = ObjectHypothesis(class_id=class_name(box, class_set), score=_score(box))
    return VisionDetection3D(
        header=header,
        results=[ObjectHypothesisWithPose(hypothesis=hypothesis, pose=PoseWithCovariance(pose=pose))],
        bbox=BoundingBox3D(center=pose, size=vector_msg(box.size)),
        id=instance,
    )


def _score(box: Box3D) -> float:
    """The box's score in [0, 1] (both detection messages promise that range)."""
    return float(np.clip(box.score, 0.0, 1.0))


def _track(header: Any, info: TrackInfo, class_set: ClassSet) -> Track:
    box = info.box
    return Track(
        header=header,
        track_id=int(box.track_id),
        class_id=int(box.label),
        class_name=class_name(box, class_set),
        state=TRACK_STATES[info.state],
        center=point_msg(box.center),
        size=vector_msg(box.size),
        yaw=wrap_angle(box.yaw),
        velocity=vector_msg(box.velocity),
        acceleration=vector_msg(info.acceleration),
        age=int(info.age),
        hits=int(info.hits),
    )


def class_name(box: Box3D, class_set: ClassSet) -> str:
    """The box's class name in ``class_set``, or its own ``name`` when its label is outside the set."""
    return class_set.names[box.label] if 0 <= box.label < len(class_set) else box.name


def point_msg(xyz: np.ndarray) -> Point:
    """A geometry_msgs Point of the first three values of ``xyz``."""
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def box_pose(box: Box3D) -> Pose:
    """The box's centre and heading as a geometry_msgs Pose (yaw as a quaternion about +z)."""
    return Pose(position=point_msg(box.center), orientation=yaw_quaternion(box.yaw))


def yaw_quaternion(yaw: float) -> Quaternion:
    """A rotation of ``yaw`` radians about +z as a unit quaternion."""
    return Quaternion(z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def vector_msg(xyz: np.ndarray) -> Vector3:
    """A geometry_msgs Vector3 of the first three values of ``xyz``."""
    return Vector3(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _aligned(offset: int, alignment: int) -> int:
    return -(-offset // alignment) * alignment


def _box_of(item: Detection3D | Track, **extra: Any) -> Box3D:
    """The box a Detection3D or Track message describes (both carry the same box fields)."""
    return Box3D(
        center=np.array([item.center.x, item.center.y, item.center.z]),
        size=np.array([item.size.x, item.size.y, item.size.z]),
        yaw=float(item.yaw),
        label=int(item.class_id),
        name=str(item.class_name),
        track_id=int(item.track_id),
        velocity=np.array([item.velocity.x, item.velocity.y, item.velocity.z]),
        **extra,
    )


def detection_boxes(msg: Detection3DArray) -> list[Box3D]:
    """The boxes of a Detection3DArray (the inverse of :func:`detections_msg`)."""
    return [_box_of(d, score=float(d.score), num_points=int(d.num_points)) for d in msg.detections]


def track_boxes(msg: TrackArray) -> list[Box3D]:
    """The confirmed tracks of a TrackArray as boxes (named by class and id)."""
    return [_box_of(t) for t in msg.tracks if t.state == Track.STATE_CONFIRMED]
