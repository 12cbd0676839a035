"""The perception node with ``tracking.odometry: lidar`` over real DDS on loopback: each scan's pose goes out on
/tf (``odom -> base_link``, the LiDAR's mounting read from /tf_static) and as nav_msgs/Odometry, equal to the
pipeline's own odometry of the same scans and following the simulator's drive (its ground truth)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import rclpy
from nav_msgs.msg import Odometry
from rclpy.context import Context
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header

from perception_ws.calib.tf_tree import FrameTransform, TransformUnavailableError
from perception_ws.cloud import from_msg, to_msg
from perception_ws.config import ConfigError, PerceptionConfig
from perception_ws.nodes.perception_node import PerceptionNode
from perception_ws.nodes.tf_topics import TF_STATIC_TOPIC, TF_TOPIC, TFMessage, tf_message, tf_static_qos
from perception_ws.pipeline import Pipeline
from perception_ws.sim.stream import SimStream
from perception_ws.sim.stream_config import SimConfig
from tests.helpers.data import LABELLED
from tests.helpers.ros import Spinner, wait_for

FRAMES = 6


def matrix(translation: object, rotation: object) -> np.ndarray:
    """4x4 of a translation (x, y, z) and a quaternion (x, y, z, w)."""
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat(np.asarray(rotation, dtype=float)).as_matrix()
    out[:3, 3] = np.asarray(translation, dtype=float)
    return out


def edge_matrix(edge: FrameTransform) -> np.ndarray:
    return matrix(edge.translation, edge.rotation)


@pytest.mark.dds
def test_lidar_odometry_goes_out_on_tf_and_as_nav_msgs(ros_context: Context) -> None:
    sim = SimStream(SimConfig().replace(**{"sensor.columns": 512, "camera.enabled": False, "clock.mode": "sim"}))
    frames = [sim.frame(i, i / sim.config.sensor.rate_hz) for i in range(FRAMES)]
    lidar, base = sim.config.frames.lidar, sim.config.frames.base
    suffix = uuid.uuid4().hex[:8]
    outputs = ("labelled_cloud", "detections", "vision_detections", "tracks", "markers", "odometry")
    config = PerceptionConfig().replace(
        **LABELLED,
        **{f"topics.{key}": f"{key}_{suffix}" for key in outputs},
        **{"tracking.odometry": "lidar", "lidar_odometry.child_frame_id": base},
    )
    node = PerceptionNode(context=ros_context, defaults=config)
    listener = rclpy.create_node("odometry_listener", context=ros_context)
    on_tf: dict[int, TFMessage] = {}
    odometry: dict[int, Odometry] = {}
    listener.create_subscription(TFMessage, TF_TOPIC, lambda m: on_tf.setdefault(_ns(m.transforms[0].header), m), 20)
    listener.create_subscription(Odometry, config.topics.odometry, lambda m: odometry.setdefault(_ns(m.header), m), 20)
    static_pub = listener.create_publisher(TFMessage, TF_STATIC_TOPIC, tf_static_qos())
    headers = [Header(frame_id=lidar) for _ in frames]
    for i, header in enumerate(headers):  # one sensor period apart, as the scene moves
        header.stamp.sec, header.stamp.nanosec = 1_700_000_000, i * 100_000_000
    messages = [to_msg(frame.points, header=header) for frame, header in zip(frames, headers, strict=True)]
    try:
        with Spinner(ros_context, node, listener):
            static_pub.publish(tf_message(headers[0].stamp, sim.static_transforms()))  # base_link -> lidar
            wait_for(
                lambda: (
                    node.odometry_out is not None
                    and node.odometry_out.odometry_pub is not None
                    and node.odometry_out.odometry_pub.get_subscription_count() > 0
                ),
                "discovery",
            )
            wait_for(lambda: _mounted(node, base, lidar), "the mounting from /tf_static")
            for msg in messages:  # one at a time, through the subscription callback: none dropped
                node.on_cloud(msg)
                stamp = _ns(msg.header)
                wait_for(lambda s=stamp: s in odometry and s in on_tf, "this scan's odometry")  # type: ignore[misc]
    finally:
        listener.destroy_node()
        node.destroy_node()
    assert node.issues.counts() == {}
    # the pipeline's own odometry of the same scans, the mounting applied: what must have gone out
    pipeline = Pipeline(config.pipeline_config())
    poses = [pipeline.process(from_msg(m), i / 10).odometry_pose for i, m in enumerate(messages)]
    (mount_edge,) = [e for e in sim.static_transforms() if e.child == lidar]
    mount = edge_matrix(mount_edge)  # lidar -> base_link
    truth_start = edge_matrix(frames[0].vehicle)
    for frame, header, pose in zip(frames, headers, poses, strict=True):
        assert pose is not None
        expected = mount @ pose @ np.linalg.inv(mount)
        (sent,) = on_tf[_ns(header)].transforms
        assert (sent.header.frame_id, sent.child_frame_id) == ("odom", base)
        t, q = sent.transform.translation, sent.transform.rotation
        got = matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        np.testing.assert_allclose(got, expected, atol=1e-6)
        odom = odometry[_ns(header)]
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", base)
        p, o = odom.pose.pose.position, odom.pose.pose.orientation
        np.testing.assert_allclose(matrix((p.x, p.y, p.z), (o.x, o.y, o.z, o.w)), got, atol=1e-9)
        # and the drive itself: base_link's motion since the first scan, within 10 cm
        truth = np.linalg.inv(truth_start) @ edge_matrix(frame.vehicle)
        assert np.linalg.norm(got[:3, 3] - truth[:3, 3]) < 0.1
    travelled = np.linalg.norm(edge_matrix(frames[-1].vehicle)[:3, 3] - truth_start[:3, 3])
    assert travelled > 2.0  # the car moved: the comparison above is not of identities
    # the twist: the last step over 0.1 s, in base_link (the car drives forward along its x)
    last, before = odometry[_ns(headers[-1])], odometry[_ns(headers[-2])]
    step = np.linalg.norm(
        np.subtract(*[(m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z) for m in (last, before)])
    )
    assert last.twist.twist.linear.x == pytest.approx(step / 0.1, rel=1e-3)
    assert odometry[_ns(headers[0])].twist.twist.linear.x == 0.0  # the first scan has no step


@pytest.mark.dds
def test_no_lidar_odometry_publishes_nothing_of_it(ros_context: Context) -> None:
    node = PerceptionNode(context=ros_context, defaults=PerceptionConfig().replace(**LABELLED))
    try:
        types = {
            kind for _, kinds in node.get_publisher_names_and_types_by_node(node.get_name(), "/") for kind in kinds
        }
    finally:
        node.destroy_node()
    assert node.odometry_out is None
    assert "nav_msgs/msg/Odometry" not in types
    assert "tf2_msgs/msg/TFMessage" not in types


def test_the_odometry_frame_must_be_named() -> None:
    with pytest.raises(ConfigError, match=r"lidar_odometry\.frame_id"):
        PerceptionConfig().replace(**{"lidar_odometry.frame_id": ""})


def _ns(header: Header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _mounted(node: PerceptionNode, base: str, lidar: str) -> bool:
    assert node.odometry_out is not None
    assert node.odometry_out._mounting is not None
    try:
        node.odometry_out._mounting.lookup(base, lidar)
    except TransformUnavailableError:
        return False
    return True
