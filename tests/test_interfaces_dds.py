"""The project's ROS interfaces over real DDS, and the local-DDS environment they run in.

A second process publishes a Detection3DArray and a TrackArray (every field set, several elements, edge
values of the integer types); this process subscribes over Fast DDS on loopback, with the environment of
perception_ws.ros_env, and checks that every field arrives as sent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from perception_ws.errors import PerceptionError
from perception_ws.msg import Detection3D, Detection3DArray, Track, TrackArray
from perception_ws.ros_env import DOMAIN_ID_OVERRIDE, DOMAIN_ID_RANGE, apply_local_dds_env, local_dds_env
from tests.helpers.samples import QOS, sample_detections, sample_tracks

REPO = Path(__file__).resolve().parents[1]
#: Longest wait for discovery and delivery; both take well under a second when the machine is idle.
WAIT_S = 10.0


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

    code = f"from tests.helpers.samples import publish_samples as p; p({detections_topic!r}, {tracks_topic!r})"
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
        assert Path(first["ROS_LOG_DIR"]).is_dir()
        assert first["ROS_LOG_DIR"] != second["ROS_LOG_DIR"]
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
