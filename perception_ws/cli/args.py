"""What the verb modules of :mod:`perception_ws.cli` share: the sub-parser and handler types, and argparse types.

Standard library only, so that `perception --help` stays instant.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeAlias

#: what ``add_subparsers()`` returns; each verb module registers itself on it (a string: not generic at run time).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: the simulator's street-content presets and the default one, for `sim generate` and `train` (the simulator's
#: own table, perception_ws.sim.world.scene_config.SCENE_CONTENT, imports numpy; tests/test_sim_content.py keeps
#: the two equal)
SCENE_CONTENT_CHOICES = ("v1", "v2")
DEFAULT_SCENE_CONTENT = "v2"

#: a verb's implementation, stored as the ``handler`` default of its sub-parser: parsed arguments -> exit status.
Handler = Callable[[argparse.Namespace], int]


def positive(text: str) -> int:
    """argparse type: a whole number >= 1 (argparse turns the ValueError into a one-line usage error)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def non_negative(text: str) -> int:
    """argparse type: a whole number >= 0."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0 (seconds, factors)."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(text)
    return value


positive.__name__ = "whole number >= 1"  # argparse names the type in its error line
non_negative.__name__ = "whole number >= 0"
positive_number.__name__ = "number > 0"


def add_local_dds_flag(parser: argparse.ArgumentParser) -> None:
    """``--local-dds``: the verb's ROS 2 processes on a loopback-only random domain (perception_ws.ros_env)
    instead of the caller's ROS environment.
    """
    parser.add_argument(
        "--local-dds",
        action="store_true",
        help="loopback-only DDS on a random domain, logs in a temporary folder (for tests and demos; also "
        "PERCEPTION_LOCAL_DDS=1); default: the caller's ROS_DOMAIN_ID, discovery range, ROS_LOG_DIR and RMW",
    )
