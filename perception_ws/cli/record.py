"""`perception record`: record the perception outputs to MCAP (:func:`perception_ws.nodes.record.record`)."""

from __future__ import annotations

import argparse

from perception_ws.cli.args import Subparsers, add_local_dds_flag


def add_parser(sub: Subparsers) -> None:
    """Register ``perception record``: record the perception outputs (or chosen topics) to MCAP."""
    record = sub.add_parser("record", help="record the perception outputs (or --topics) to MCAP, unchanged")
    record.add_argument("--out", required=True, help="x.mcap: one MCAP file; else a rosbag2 folder (MCAP)")
    record.add_argument(
        "--topics", nargs="+", default=[], metavar="TOPIC", help="default: the node's outputs and /tf_static"
    )
    record.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    record.add_argument("--config", default=None, help="params file naming the output topics (default built-in)")
    add_local_dds_flag(record)
    record.set_defaults(handler=_cmd_record)


def _cmd_record(args: argparse.Namespace) -> int:
    from perception_ws.config import load_config
    from perception_ws.nodes.record import record
    from perception_ws.ros_env import prepare_ros_env

    config = load_config(args.config) if args.config else None
    print(f"record: {prepare_ros_env(args.local_dds)}", flush=True)
    record(args.out, args.topics, args.duration, config)
    return 0
