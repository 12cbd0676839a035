"""The project's ROS interfaces over real DDS, and the local-DDS environment they run in.

A second process publishes a Detection3DArray and a TrackArray (every field set, several elements, edge
values of the integer types); this process subscribes over Fast DDS on loopback, with the environment of
perception_ws.ros_env, and checks that every field arrives as sent.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Vector3
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from perception_ws.errors import PerceptionError
from perception_ws.msg import Detection3D, Detection3DArray, Track, TrackArray
from perception_ws.ros_env import DOMAIN_ID_OVERRIDE, DOMAIN_ID_RANGE, apply_local_dds_env, local_dds_env

REPO = Path(__file__).resolve().parents[1]
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: Longest wait for discovery and delivery; both take well under a second when the machine is idle.
WAIT_S = 10.0
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


def _fields(value: Any) -> Any:
    """A message as nested dicts and lists of plain values, so a mismatch shows the field's path."""
    if hasattr(value, "get_fields_and_field_types"):
        return {name: _fields(getattr(value, name)) for name in value.get_fields_and_field_types()}
    if isinstance(value, list | tuple):
        return [_fields(item) for item in value]
    return value


@pytest.mark.dds
def test_messages_arrive_field_for_field_from_another_process(local_env: dict[str, str], ros_context: Context) -> None:
    suffix = uuid.uuid4().hex[:8]
    detections_topic, tracks_topic = f"test_detections_{suffix}", f"test_tracks_{suffix}"
    received: dict[str, Any] = {}
    node = rclpy.create_node("interfaces_test_subscriber", context=ros_context)
    node.create_subscription(Detection3DArray, detections_topic, lambda m: received.setdefault("detections", m), QOS)
    node.create_subscription(TrackArray, tracks_topic, lambda m: received.setdefault("tracks", m), QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)

    code = f"from tests.test_interfaces_dds import publish_samples as p; p({detections_topic!r}, {tracks_topic!r})"
    publisher = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=local_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while len(received) < 2 and time.monotonic() < deadline and publisher.poll() is None:
            executor.spin_once(timeout_sec=0.05)
    finally:
        out, err = publisher.communicate(input="", timeout=WAIT_S)  # closing stdin stops the publisher
        executor.shutdown()
        node.destroy_node()

    assert publisher.returncode == 0, f"publisher failed:\n{err}"
    assert "XMLPARSER" not in out + err, f"Fast DDS rejected the profile:\n{out}{err}"
    assert set(received) == {"detections", "tracks"}, f"received only {sorted(received)} within {WAIT_S} s:\n{err}"
    assert _fields(received["detections"]) == _fields(sample_detections())
    assert _fields(received["tracks"]) == _fields(sample_tracks())


def test_message_defaults_and_constants() -> None:
    assert Detection3D().track_id == Detection3D.TRACK_ID_NONE == -1
    assert (Track.STATE_TENTATIVE, Track.STATE_CONFIRMED, Track.STATE_LOST) == (0, 1, 2)
    assert Track().state == Track.STATE_TENTATIVE


def test_local_env_is_confined_and_fresh_each_call() -> None:
    base = {"PATH": "/usr/bin", "ROS_STATIC_PEERS": "192.0.2.7", "ROS_DOMAIN_ID": "0"}
    first, second = local_dds_env(base), local_dds_env(base)
    try:
        assert first["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
        assert first["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
        assert "ROS_STATIC_PEERS" not in first
        assert first["PATH"] == "/usr/bin"
        assert DOMAIN_ID_RANGE[0] <= int(first["ROS_DOMAIN_ID"]) <= DOMAIN_ID_RANGE[1]
        assert Path(first["FASTDDS_DEFAULT_PROFILES_FILE"]).is_file()
        assert Path(first["ROS_LOG_DIR"]).is_dir() and first["ROS_LOG_DIR"] != second["ROS_LOG_DIR"]
        assert base == {"PATH": "/usr/bin", "ROS_STATIC_PEERS": "192.0.2.7", "ROS_DOMAIN_ID": "0"}
    finally:
        for env in (first, second):
            shutil.rmtree(env["ROS_LOG_DIR"], ignore_errors=True)


def test_local_env_keeps_an_explicit_domain_and_rejects_a_bad_one() -> None:
    env = local_dds_env({DOMAIN_ID_OVERRIDE: "42"})
    shutil.rmtree(env["ROS_LOG_DIR"], ignore_errors=True)
    assert env["ROS_DOMAIN_ID"] == "42"
    for bad in ("-3", "abc", "233"):
        with pytest.raises(PerceptionError, match=DOMAIN_ID_OVERRIDE):
            local_dds_env({DOMAIN_ID_OVERRIDE: bad})


def test_apply_puts_the_local_env_into_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "ROS_LOG_DIR", "RMW_IMPLEMENTATION"]
    for name in names:
        monkeypatch.delenv(name, raising=False)  # monkeypatch restores them after the test
    monkeypatch.setenv("ROS_STATIC_PEERS", "192.0.2.7")
    monkeypatch.delenv(DOMAIN_ID_OVERRIDE, raising=False)
    changed = apply_local_dds_env()
    try:
        assert set(names) <= set(changed)
        assert {name: os.environ[name] for name in changed} == changed
        assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
        assert "ROS_STATIC_PEERS" not in os.environ
    finally:
        shutil.rmtree(os.environ["ROS_LOG_DIR"], ignore_errors=True)
