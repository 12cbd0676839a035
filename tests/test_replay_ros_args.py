"""`perception replay` started the way `ros2 launch` starts a node (`bag:=`): with a `--ros-args ...` block
appended, which reaches its rclpy context; other verbs refuse such a block with one usage line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from perception_ws.cli import build_parser
from perception_ws.io import open_dataset
from perception_ws.io.bag import write_bag
from perception_ws.ros_args import split_ros_args
from tests.helpers.ros import WAIT_S, Spinner, wait_for


def test_ros_arguments_are_split_off_and_the_rest_parses() -> None:
    argv = ["replay", "run1.mcap", "--rate", "2", "--ros-args", "-r", "__node:=x", "-p", "a:=1", "--", "--loop"]
    plain, ros = split_ros_args(argv)
    assert plain == ["replay", "run1.mcap", "--rate", "2", "--loop"]
    assert ros == ["--ros-args", "-r", "__node:=x", "-p", "a:=1", "--"]
    args = build_parser().parse_args(plain)
    assert (args.bag, args.rate, args.loop, args.takes_ros_args) == ("run1.mcap", 2.0, True, True)
    # what launch_ros appends: one block to the end
    assert split_ros_args(["replay", "b", "--ros-args", "--log-level", "info", "-r", "__ns:=/car1"]) == (
        ["replay", "b"],
        ["--ros-args", "--log-level", "info", "-r", "__ns:=/car1"],
    )


def test_a_verb_that_starts_no_node_refuses_ros_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "perception_ws.cli", "sensors", "--ros-args", "-r", "__node:=x"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "perception: error: sensors takes no --ros-args (only: replay)"
    assert "Traceback" not in result.stderr


@pytest.mark.real_data
@pytest.mark.dds
def test_replay_applies_the_ros_arguments_it_is_given(
    real_data: Path, local_env: dict[str, str], ros_context: Context, tmp_path: Path
) -> None:
    bag = write_bag(tmp_path / "one", [open_dataset(real_data / "kitti_odometry_00")[0]], topic="/points")
    listener = Node("listener", context=ros_context)
    received: list[PointCloud2] = []
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    listener.create_subscription(PointCloud2, "/car1/points", received.append, qos)
    # a remap rule only rclpy applies: the scan reaches /car1/points only if the block reached rclpy.init
    command = [sys.executable, "-m", "perception_ws.cli", "replay", str(bag), "--wait-subscribers", str(WAIT_S)]
    command += ["--ros-args", "-r", "__node:=bag_player", "-r", "/points:=/car1/points", "--log-level", "warn"]
    try:
        with Spinner(ros_context, listener):
            result = subprocess.run(command, env=local_env, capture_output=True, text=True, timeout=120, check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "/points->/car1/points" not in result.stdout  # the bag's own plan is unchanged: rclpy remaps
            assert "replay: published" in result.stdout
            wait_for(lambda: len(received) == 1, "the scan on /car1/points")
    finally:
        listener.destroy_node()


@pytest.mark.parametrize("module", ["perception_node", "fusion_node", "sim_node"])
def test_a_node_asked_for_help_prints_its_usage_and_starts_nothing(module: str, local_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"perception_ws.nodes.{module}", "--help"],
        env=local_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {module} [--ros-args")
    assert "listening" not in done.stdout + done.stderr  # the node was never built
