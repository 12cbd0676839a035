"""`perception replay`: publish a bag over ROS 2 (:func:`perception_ws.nodes.replay.replay`)."""

from __future__ import annotations

import argparse

from perception_ws.cli.args import Subparsers, add_local_dds_flag


def add_parser(sub: Subparsers) -> None:
    """Register ``perception replay``: publish a bag over ROS 2 with its original timing; ROS arguments
    (``--ros-args -r __ns:=/car1 --log-level debug``) may follow.
    """
    replay = sub.add_parser("replay", help="publish a bag over ROS 2 with its original timing and /clock")
    replay.add_argument("bag", help="a rosbag2 folder (sqlite3 or MCAP), a .db3 or .mcap file, or a ROS 1 .bag")
    replay.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1: as recorded)")
    replay.add_argument("--loop", action="store_true", help="start over at the end until interrupted")
    replay.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="only these topics")
    replay.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish FROM under TO")
    replay.add_argument(
        "--wait-subscribers", type=float, default=0.0, metavar="S",
        help="wait up to S seconds for a subscriber on every topic before starting (default 0)",
    )  # fmt: skip
    add_local_dds_flag(replay)
    # `ros2 launch` starts it like a node (bag:=): ROS arguments after --ros-args reach its rclpy context
    replay.set_defaults(handler=_cmd_replay, takes_ros_args=True)


def _cmd_replay(args: argparse.Namespace) -> int:
    from perception_ws.nodes.replay import replay
    from perception_ws.ros_env import prepare_ros_env

    print(f"replay: {prepare_ros_env(args.local_dds)}", flush=True)
    return replay(
        args.bag, args.rate, args.loop, args.topics, args.remap, args.wait_subscribers, ros_args=args.ros_args
    )
