"""vision_msgs/Detection3DArray: the stand-in's definitions are the official vision_msgs 4.1.1 files unchanged,
the type hash on the wire is ROS 2's, and the perception node publishes (over DDS on loopback) the same
detections as its own Detection3DArray; an empty topic publishes nothing."""

from __future__ import annotations

import hashlib
import math
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from sensor_msgs.msg import PointCloud2
from vision_msgs.msg import Detection3DArray as VisionDetection3DArray

from perception_ws.cloud import from_msg, to_msg
from perception_ws.config import PerceptionConfig
from perception_ws.io import load
from perception_ws.msg import Detection3DArray
from perception_ws.nodes.perception_node import PerceptionNode
from perception_ws.nodes.qos import output_qos
from tests.helpers.data import LABELLED, REPO, with_label_field
from tests.helpers.ros import Spinner, wait_for

#: sha256 of the official files, `git show 4.1.1:vision_msgs/msg/NAME.msg` of ros-perception/vision_msgs
#: (commit e77fa2d, "bumping to 4.1.1 for release"): the stand-in must be these bytes, so that rosidl gives
#: it the official type hash.
OFFICIAL_SHA256 = {
    "BoundingBox3D.msg": "30502a6e247a84d87b4c2c0262fd07ce6ba3fa8d6d24e6e39c1522d7e469c450",
    "Detection3D.msg": "68885eeededfc57231f171f2b3eb97f0d0a18580ca08307bc60b9b87216df985",
    "Detection3DArray.msg": "077f34a634e6de6654265af5b26508eea1105bef72395cffae50fde61b713c41",
    "ObjectHypothesis.msg": "6224cb18c032fe062d18859089444f4e1f311ab478e45d937fdfac18a980695b",
    "ObjectHypothesisWithPose.msg": "162639c82b24a8fc4f3e93a4dc91704928d5cff9d39d169515bb748eccf4d573",
}
#: vision_msgs/msg/Detection3DArray's RIHS01 type hash (vision_msgs 4.x: Humble's definition, hashed since
#: Iron), as rosidl computes it from the official files above.
DETECTION3D_ARRAY_HASH = "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018"


def test_the_stand_in_definitions_are_the_official_files() -> None:
    folder = REPO / "interfaces" / "vision_msgs" / "msg"
    found = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.glob("*.msg")}
    assert found == OFFICIAL_SHA256


@pytest.mark.real_data
@pytest.mark.dds
def test_the_node_publishes_its_detections_as_vision_msgs(real_data: Path, ros_context: Context) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = {f"topics.{key}": f"{key}_{suffix}" for key in ("labelled_cloud", "detections", "vision_detections")}
    node = PerceptionNode(context=ros_context, defaults=PerceptionConfig().replace(**LABELLED, **topics))
    listener = rclpy.create_node("vision_listener", context=ros_context)
    got: dict[str, Any] = {}
    for key, kind in (
        ("labelled_cloud", PointCloud2),
        ("detections", Detection3DArray),
        ("vision_detections", VisionDetection3DArray),
    ):
        listener.create_subscription(kind, topics[f"topics.{key}"], lambda msg, k=key: got.setdefault(k, msg), 5)
    sent = to_msg(with_label_field(load(real_data / "semantickitti" / "000000.bin")), frame_id="velodyne", stamp=(7, 5))
    try:
        with Spinner(ros_context, listener):
            wait_for(lambda: node.vision_detections_pub.get_subscription_count() > 0, "discovery")
            node.on_cloud(sent)
            wait_for(lambda: len(got) == 3, "the three outputs")
            (info,) = listener.get_publishers_info_by_topic(topics["topics.vision_detections"])
    finally:
        listener.destroy_node()
        node.destroy_node()
    assert output_qos(5).reliability == info.qos_profile.reliability
    assert str(info.topic_type_hash) == DETECTION3D_ARRAY_HASH  # what ROS 2's vision_msgs users subscribe with
    ours, vision = got["detections"].detections, got["vision_detections"]
    assert vision.header == sent.header
    assert len(ours) >= 3  # the scan's cars, pedestrians and cyclists: the comparison below is not vacuous
    assert len(vision.detections) == len(ours)
    instances, xyz = from_msg(got["labelled_cloud"])["instance"], np.stack([from_msg(sent)[a] for a in "xyz"], 1)
    for k, (own, std) in enumerate(zip(ours, vision.detections, strict=True), start=1):
        assert std.header == sent.header
        assert std.id == str(k)  # the labelled cloud's instance id of its points
        (result,) = std.results
        assert result.hypothesis.class_id == own.class_name
        assert result.hypothesis.score == pytest.approx(own.score)  # float32 in ours, float64 in vision_msgs
        assert result.pose.pose == std.bbox.center
        centre, q = std.bbox.center.position, std.bbox.center.orientation
        assert (centre.x, centre.y, centre.z) == (own.center.x, own.center.y, own.center.z)
        assert (std.bbox.size.x, std.bbox.size.y, std.bbox.size.z) == (own.size.x, own.size.y, own.size.z)
        assert q.x == q.y == 0.0
        assert q.z**2 + q.w**2 == pytest.approx(1.0)
        assert math.remainder(2.0 * math.atan2(q.z, q.w) - own.yaw, 2.0 * math.pi) == pytest.approx(0.0, abs=1e-9)
        members = xyz[instances == k]  # the points of instance k lie in this box, seen from its pose
        yaw = 2.0 * math.atan2(q.z, q.w)
        d = members[:, :2] - [centre.x, centre.y]
        along = np.abs(d[:, 0] * math.cos(yaw) + d[:, 1] * math.sin(yaw))
        assert np.all(along <= std.bbox.size.x / 2 + 0.02)  # the pipeline grows boxes by 1 cm for this


@pytest.mark.dds
def test_an_empty_topic_publishes_no_vision_msgs(ros_context: Context) -> None:
    defaults = PerceptionConfig().replace(**LABELLED, **{"topics.vision_detections": ""})
    node = PerceptionNode(context=ros_context, defaults=defaults)
    try:
        publishers = node.get_publisher_names_and_types_by_node(node.get_name(), "/")
    finally:
        node.destroy_node()
    assert node.vision_detections_pub is None
    assert "vision_msgs/msg/Detection3DArray" not in {kind for _, kinds in publishers for kind in kinds}
    assert "/perception/detections" in {name for name, _ in publishers}  # the project's own message still goes out
