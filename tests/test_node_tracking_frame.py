"""The perception node with ``tracking.fixed_frame: odom`` over real DDS on loopback: it reads the car's pose
from /tf (and the LiDAR's mounting from /tf_static) at each scan's stamp, tracks over the ground, and
publishes the tracks in the scan's frame; a scan that comes before any pose is detected, not tracked,
and counted. The scans, the poses and the ground truth are the simulator's (a 1.1 s drive at 10 Hz)."""

from __future__ import annotations

import functools
import uuid

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from std_msgs.msg import Header

from perception_ws.calib.tf_tree import TransformUnavailableError
from perception_ws.cloud import to_msg
from perception_ws.config import ConfigError, PerceptionConfig
from perception_ws.demo.report import track_velocity_errors
from perception_ws.msg import Detection3DArray, TrackArray
from perception_ws.nodes.conversions import track_boxes
from perception_ws.nodes.perception_node import TRACKING_WITHOUT_POSE, PerceptionNode
from perception_ws.nodes.qos import output_qos, sensor_input_qos
from perception_ws.nodes.tf_topics import TF_STATIC_TOPIC, TF_TOPIC, TFMessage, tf_message, tf_qos, tf_static_qos
from perception_ws.sim.stream import SimStream
from perception_ws.sim.stream_config import SimConfig
from tests.helpers.data import LABELLED
from tests.helpers.ros import Spinner, wait_for

FRAMES = 12


@pytest.mark.dds
def test_tracks_in_odom_carry_ground_velocities(ros_context: Context) -> None:
    sim = SimStream(SimConfig().replace(**{"sensor.columns": 512, "camera.enabled": False, "clock.mode": "sim"}))
    frames = [sim.frame(i, i / sim.config.sensor.rate_hz) for i in range(FRAMES)]
    suffix = uuid.uuid4().hex[:8]
    outputs = ("input", "labelled_cloud", "detections", "tracks", "markers", "diagnostics")
    config = PerceptionConfig().replace(
        **LABELLED, **{f"topics.{key}": f"{key}_{suffix}" for key in outputs}, **{"tracking.fixed_frame": "odom"}
    )
    node = PerceptionNode(context=ros_context, defaults=config)
    player = rclpy.create_node("drive", context=ros_context)
    tracks: dict[int, TrackArray] = {}
    detected: set[int] = set()
    player.create_subscription(TrackArray, config.topics.tracks, lambda m: tracks.__setitem__(_ns(m.header), m), 20)
    player.create_subscription(
        Detection3DArray, config.topics.detections, lambda m: detected.add(_ns(m.header)), output_qos(20)
    )
    points_pub = player.create_publisher(type(to_msg(frames[0].points)), config.topics.input, sensor_input_qos(2))
    tf_pub = player.create_publisher(TFMessage, TF_TOPIC, tf_qos())
    static_pub = player.create_publisher(TFMessage, TF_STATIC_TOPIC, tf_static_qos())
    headers = [Header(frame_id=sim.config.frames.lidar) for _ in frames]
    for i, header in enumerate(headers):  # one sensor period apart, as the scene moves
        header.stamp.sec, header.stamp.nanosec = 1_700_000_000 + i // 10, (i % 10) * 100_000_000
    try:
        with Spinner(ros_context, node, player):
            wait_for(lambda: points_pub.get_subscription_count() > 0, "the perception node")
            # the first scan before any pose: detected, not tracked
            points_pub.publish(to_msg(frames[0].points, header=headers[0]))
            wait_for(lambda: _ns(headers[0]) in detected, "the first scan's detections")
            assert node.issues.counts() == {TRACKING_WITHOUT_POSE: 1}
            static_pub.publish(tf_message(headers[0].stamp, sim.static_transforms()))
            wait_for(lambda: tf_pub.get_subscription_count() > 0, "the /tf subscription")
            for frame, header in zip(frames[1:], headers[1:], strict=True):
                tf_pub.publish(tf_message(header.stamp, [frame.vehicle]))  # the car's pose, then its scan
                stamp_ns = _ns(header)
                wait_for(functools.partial(_has_pose, node, stamp_ns), "the pose of this scan")
                points_pub.publish(to_msg(frame.points, header=header))
                wait_for(functools.partial(tracks.__contains__, stamp_ns), "this scan's tracks")
    finally:
        player.destroy_node()
        node.destroy_node()
    assert node.frames_dropped == 0
    assert node.stats.failed == 0
    assert node.issues.counts() == {TRACKING_WITHOUT_POSE: 1}  # only the first scan went untracked
    assert not tracks[_ns(headers[0])].tracks
    errors = []
    for frame, header in zip(frames[1:], headers[1:], strict=True):
        assert tracks[_ns(header)].header.frame_id == "lidar"  # published in the scan's frame
        errors += track_velocity_errors(frame.boxes, track_boxes(tracks[_ns(header)]))
    speed = float(np.linalg.norm(np.subtract(frames[-1].vehicle.translation, frames[1].vehicle.translation)))
    speed /= (FRAMES - 2) / sim.config.sensor.rate_hz
    print(f"ego {speed:.1f} m/s; median track velocity error {np.median(errors):.2f} m/s ({len(errors)} track-frames)")
    assert speed > 3.0
    assert len(errors) >= 10
    # over the ground, the parked cars stand still (relative to the sensor they would move at the ego's speed)
    assert np.median(errors) < 0.25 * speed


def _ns(header: Header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _has_pose(node: PerceptionNode, stamp_ns: int) -> bool:
    assert node.transforms is not None
    try:
        node.transforms.lookup("odom", "lidar", stamp_ns)
    except TransformUnavailableError:
        return False
    return True


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_a_pose_wait_that_is_negative_or_endless_is_refused(value: float) -> None:
    with pytest.raises(ConfigError, match=r"tracking\.tf_timeout_s = .*expected (at least 0|a finite number)"):
        PerceptionConfig().replace(**{"tracking.tf_timeout_s": value})
