"""ROS arguments on a command line (``--ros-args ... [--]`` blocks), split off without loading rclpy.

``ros2 launch`` and ``ros2 run`` hand every process such blocks; the ``perception`` command and the nodes'
entry points look at what is left (their own options, ``--help``) and give the blocks to ``rclpy.init``.
"""

from __future__ import annotations

from collections.abc import Sequence


def split_ros_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` without its ROS arguments, and those (each ``--ros-args ... [--]`` block, markers included).

    rcl's own grammar (what ``rclpy.utilities.remove_ros_args`` applies, without loading rclpy): a block
    starts at ``--ros-args`` and runs to a lone ``--`` or the end. ``ros2 launch`` appends such a block to
    every process it starts as a ROS node.
    """
    plain: list[str] = []
    ros: list[str] = []
    inside = False
    for arg in argv:
        if arg == "--ros-args":
            inside = True
        elif inside and arg == "--":
            inside = False
            ros.append(arg)
            continue
        (ros if inside else plain).append(arg)
    return plain, ros
