"""`perception run`: the node graph of launch/perception.launch.py without ros2 launch
(:mod:`perception_ws.nodes.launch_graph` owns its options and runs it).
"""

from __future__ import annotations

import argparse

from perception_ws.cli.args import Subparsers, add_local_dds_flag


def add_parser(sub: Subparsers) -> None:
    """Register ``perception run``: the launch file's node graph, started without ros2 launch."""
    from perception_ws.nodes.launch_graph import add_arguments  # standard library only: keeps --help instant

    run = sub.add_parser("run", help="start the node graph of launch/perception.launch.py without ros2 launch")
    add_arguments(run)
    add_local_dds_flag(run)
    run.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from perception_ws.nodes.launch_graph import GraphOptions, run_graph

    return run_graph(GraphOptions.from_namespace(args), local_dds=args.local_dds)
