"""The `perception` command line: one entry point, one sub-command per job.

Each verb is a module of this package that registers its sub-parser (``add_parser``) and the handler it
runs. Sub-commands import their modules lazily so that `perception --help` is instant and a missing
optional dependency only affects the command that needs it. Every `PerceptionError` becomes one line on
stderr and exit status 2, and so does a full disk (ENOSPC, EDQUOT: the machine's state, not a bug); nothing
else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence

from perception_ws.cli import (
    adapt,
    demo,
    evaluate,
    export,
    info,
    label,
    quantize,
    record,
    replay,
    run,
    search,
    sensors,
    sim,
    train,
    viz,
)
from perception_ws.cli.args import Handler
from perception_ws.errors import PerceptionError
from perception_ws.ros_args import split_ros_args

#: errors of a full disk or quota: reported in one line naming the path, never as a traceback.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

#: the verbs in the order `perception --help` lists them.
VERBS = (info, sensors, viz, demo, replay, record, run, sim, evaluate, label, train, search, adapt, export, quantize)


def build_parser() -> argparse.ArgumentParser:
    """The ``perception`` argument parser, one sub-command per entry of ``VERBS``."""
    parser = argparse.ArgumentParser(prog="perception", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``perception`` sub-command; its exit status (2 after a PerceptionError, 130 after Ctrl-C)."""
    parser = build_parser()
    # ROS arguments (``ros2 launch`` appends them): kept for the verbs that start a ROS node themselves
    plain, ros_args = split_ros_args(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(plain)
    if ros_args and not getattr(args, "takes_ros_args", False):
        parser.error(f"{args.command} takes no --ros-args (only: replay)")
    args.ros_args = ros_args
    handler: Handler = args.handler
    try:
        return handler(args)
    except PerceptionError as error:
        print(f"perception {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        # a write on an open file names no path; the verb's --out is where it was writing
        where = error.filename or getattr(args, "out", None)
        print(f"perception {args.command}: error: no space left on device writing {where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"perception {args.command}: interrupted", file=sys.stderr)
        return 130
