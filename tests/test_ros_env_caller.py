"""`perception replay/record/run` use the caller's ROS environment unless asked for loopback-only DDS (issue 13).

The DDS test sets the caller's environment to this test's own loopback-only domain, as a user sets
ROS_DOMAIN_ID and ROS_LOG_DIR, without the switch: the replayed bag must arrive in that domain and the
replay's ROS log in that folder (before, replay drew its own random domain and the listener got nothing).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from perception_ws.errors import PerceptionError
from perception_ws.io import open_dataset
from perception_ws.io.bag import write_bag
from perception_ws.ros_env import (
    DOMAIN_ID_OVERRIDE,
    GRAPH_PROFILE_NAME,
    LOCAL_DDS_SWITCH,
    PROFILE_VARIABLES,
    caller_ros_env,
    local_dds_requested,
)
from tests.helpers.data import REPO
from tests.helpers.ros import WAIT_S, Spinner, wait_until

QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.mark.real_data
@pytest.mark.dds
def test_replay_publishes_into_the_callers_domain_and_log_folder(
    real_data: Path, local_env: dict[str, str], ros_context: Context, tmp_path: Path
) -> None:
    dataset = open_dataset(real_data / "kitti_odometry_00")
    scans = [dataclasses.replace(dataset[i], stamp_ns=(i + 1) * 10**8) for i in range(3)]
    bag = write_bag(tmp_path / "bag", scans, topic="/points")
    logs = tmp_path / "caller_logs"
    logs.mkdir()
    # the caller's own settings: still loopback only (this test's domain), but nothing telling replay to pick one
    caller = {k: v for k, v in local_env.items() if k not in (LOCAL_DDS_SWITCH, DOMAIN_ID_OVERRIDE)}
    caller["ROS_LOG_DIR"] = str(logs)
    received: list[PointCloud2] = []
    node = Node("caller_domain_listener", context=ros_context)
    node.create_subscription(PointCloud2, "/points", received.append, QOS)
    command = [sys.executable, "-m", "perception_ws.cli", "replay", str(bag), "--wait-subscribers", str(WAIT_S)]
    try:
        with Spinner(ros_context, node):
            result = subprocess.run(command, env=caller, capture_output=True, text=True, timeout=120, check=False)
            wait_until(lambda: len(received) == len(scans), WAIT_S)  # what replay sent just before exiting
    finally:
        node.destroy_node()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ROS_DOMAIN_ID={local_env['ROS_DOMAIN_ID']} (the caller's environment)" in result.stdout
    assert len(received) == len(scans), result.stdout + result.stderr
    assert [m.header.stamp.nanosec for m in received] == [s.stamp_ns for s in scans]
    assert list(logs.glob("*.log")), "replay wrote no ROS log into the caller's ROS_LOG_DIR"


def test_the_callers_environment_is_kept_and_only_a_missing_profile_filled_in() -> None:
    given = {"ROS_DOMAIN_ID": "7", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_STATIC_PEERS": "192.0.2.7"}
    env = caller_ros_env(given)
    assert {k: env[k] for k in given} == given  # nothing of the caller's is replaced or dropped
    for name in PROFILE_VARIABLES:  # Fast DDS (the default RMW) without a profile: the graph's, as ros2 launch
        assert Path(env[name]).name == GRAPH_PROFILE_NAME
        assert Path(env[name]).is_file()
    own = caller_ros_env({"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"})
    assert own["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/my_profile.xml"
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in own
    cyclone = caller_ros_env({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"})
    assert not any(name in cyclone for name in PROFILE_VARIABLES)


def test_bad_domain_or_switch_values_are_refused() -> None:
    for bad in ("abc", "-1", "233"):
        with pytest.raises(PerceptionError, match="ROS_DOMAIN_ID"):
            caller_ros_env({"ROS_DOMAIN_ID": bad})
    assert local_dds_requested({LOCAL_DDS_SWITCH: "1"})
    assert not local_dds_requested({LOCAL_DDS_SWITCH: "0"})
    assert not local_dds_requested({})
    with pytest.raises(PerceptionError, match=LOCAL_DDS_SWITCH):
        local_dds_requested({LOCAL_DDS_SWITCH: "yes"})


@pytest.mark.parametrize(
    ("variable", "value"), [("ROS_DOMAIN_ID", "car1"), (LOCAL_DDS_SWITCH, "true")], ids=["domain", "switch"]
)
def test_replay_names_a_bad_ros_variable_in_one_line(variable: str, value: str, tmp_path: Path) -> None:
    env = {k: v for k, v in caller_ros_env().items() if k != LOCAL_DDS_SWITCH}
    env[variable] = value
    result = subprocess.run(
        [sys.executable, "-m", "perception_ws.cli", "replay", str(tmp_path / "none.mcap")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    err = result.stderr.strip()
    assert result.returncode == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"perception replay: error: {variable}={value!r}: expected"), err
