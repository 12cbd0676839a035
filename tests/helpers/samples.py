"""A Detection3DArray and a TrackArray with every field set, and the body of the process that publishes them.

Only light imports here: the publisher process imports this module, and its start-up counts against the
test's wait for the first message.
"""

from __future__ import annotations

import select
import sys
import time

import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Vector3
from rclpy.context import Context
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from perception_ws.msg import Detection3D, Detection3DArray, Track, TrackArray

QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: Longest a publisher process lives if nobody tells it to stop.
PUBLISHER_LIFETIME_S = 30.0


def _header(frame_id: str) -> Header:
    return Header(stamp=Time(sec=1_673_400_471, nanosec=837_873_222), frame_id=frame_id)


def sample_detections() -> Detection3DArray:
    """Three detections; float32 fields hold values float32 represents exactly, so equality is exact."""
    header = _header("velodyne")
    rows = [
        # class_id, class_name, score, center, size, yaw, velocity, track_id, num_points
        (1, "car", 0.875, (12.5, -3.25, -0.75), (4.5, 1.875, 1.5), 0.3125, (5.5, 0.25, 0.0), 17, 1543),
        (2, "pedestrian", 0.5, (-4.0, 7.125, -0.9), (0.625, 0.75, 1.75), -2.75, (0.0, 0.0, 0.0), -1, 96),
        (65535, "vélo", 0.0625, (30.0, 0.5, -0.5), (1.75, 0.6, 1.625), 3.0999, (-1.5, 2.0, 0.1), 2**31 - 1, 2**32 - 1),
    ]
    detections = [
        Detection3D(
            header=header,
            class_id=class_id,
            class_name=name,
            score=score,
            center=Point(x=center[0], y=center[1], z=center[2]),
            size=Vector3(x=size[0], y=size[1], z=size[2]),
            yaw=yaw,
            velocity=Vector3(x=velocity[0], y=velocity[1], z=velocity[2]),
            track_id=track_id,
            num_points=num_points,
        )
        for class_id, name, score, center, size, yaw, velocity, track_id, num_points in rows
    ]
    return Detection3DArray(header=header, detections=detections)


def sample_tracks() -> TrackArray:
    """One track in each life-cycle state."""
    header = _header("velodyne")
    states = [Track.STATE_CONFIRMED, Track.STATE_TENTATIVE, Track.STATE_LOST]
    tracks = [
        Track(
            header=header,
            track_id=index * 1000 + 7,
            class_id=index + 1,
            class_name=("car", "pedestrian", "cyclist")[index],
            state=state,
            center=Point(x=10.0 * index + 0.5, y=-2.25 * index, z=-0.8),
            size=Vector3(x=4.25 - index, y=1.5, z=1.25 + 0.125 * index),
            yaw=-3.14159 + index,
            velocity=Vector3(x=8.5 - index, y=0.125 * index, z=0.0),
            acceleration=Vector3(x=-0.5 * index, y=0.25, z=0.0),
            age=40 + index,
            hits=30 - index,
        )
        for index, state in enumerate(states)
    ]
    return TrackArray(header=header, tracks=tracks)


def publish_samples(detections_topic: str, tracks_topic: str) -> None:
    """Body of the publisher process: publish both samples every 50 ms until stdin closes."""
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("interfaces_test_publisher", context=context)
    detections_pub = node.create_publisher(Detection3DArray, detections_topic, QOS)
    tracks_pub = node.create_publisher(TrackArray, tracks_topic, QOS)
    detections, tracks = sample_detections(), sample_tracks()
    deadline = time.monotonic() + PUBLISHER_LIFETIME_S
    while time.monotonic() < deadline and not select.select([sys.stdin], [], [], 0.05)[0]:
        detections_pub.publish(detections)
        tracks_pub.publish(tracks)
    node.destroy_node()
    rclpy.shutdown(context=context)
