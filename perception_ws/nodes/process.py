"""How a node process runs and ends: the ``main()`` of every node of the graph.

Order at Ctrl-C (SIGINT) or SIGTERM: stop spinning, destroy the node (its worker finishes the frame it
is on and publishes it), then shut rclpy down. rclpy's own signal handler would shut the context down
from inside the signal instead, while a worker thread may still be publishing: that publish fails
("publisher's context is invalid"), and so does every log line after it (rosout). Here the signal only
sets a flag, which the main loop sees within one spin period.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from perception_ws.errors import PerceptionError
from perception_ws.ros_args import split_ros_args

#: what ``NODE --help`` prints instead of starting the node.
NODE_USAGE = (
    "usage: {node} [--ros-args [-p NAME:=VALUE] [--params-file FILE] [-r FROM:=TO] ...]\n"
    "A ROS 2 node of perception_ws: it joins the graph of the caller's ROS environment (ROS_DOMAIN_ID, ...).\n"
    "Its parameters, with descriptions and ranges: `ros2 param describe /{node} '*'` while it runs, or\n"
    "config/perception.yaml in the package; `perception run --help` starts a whole graph."
)
#: seconds between looks at the stop flag (and at ``finished``).
SPIN_PERIOD_S = 0.1
N = TypeVar("N", bound=Node)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM inside the block (previous handlers restored after). Off the main
    thread, where Python cannot take signals, the event is only set by the caller.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_node(
    args: Sequence[str] | None,
    make_node: Callable[[], N],
    logger_name: str,
    *,
    finished: Callable[[N], bool] | None = None,
    linger_s: float = 0.0,
    on_exit: Callable[[N], Any] | None = None,
) -> int:
    """Start rclpy with ``args``, build the node and spin it until a signal, or until ``finished(node)``
    (then ``linger_s`` more seconds, e.g. for reliable messages to be acknowledged); ``on_exit(node)``
    runs before the node is destroyed. Exit status 1, with one fatal log line, when the node cannot be
    built (a :class:`PerceptionError`: configuration, weights, calibration), else 0.
    """
    own = split_ros_args(sys.argv[1:] if args is None else args)[0]
    if {"-h", "--help"} & set(own):  # a node would otherwise start and join the graph
        print(NODE_USAGE.format(node=logger_name))
        return 0
    rclpy.init(args=list(args) if args is not None else None, signal_handler_options=SignalHandlerOptions.NO)
    try:
        with stop_on_signals() as stop:
            try:
                node = make_node()
            except PerceptionError as err:
                rclpy.logging.get_logger(logger_name).fatal(str(err))
                return 1
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            try:
                while not stop.is_set() and not (finished is not None and finished(node)):
                    executor.spin_once(timeout_sec=SPIN_PERIOD_S)
                end = time.monotonic() + linger_s
                while not stop.is_set() and time.monotonic() < end:
                    executor.spin_once(timeout_sec=SPIN_PERIOD_S)
            finally:
                if on_exit is not None:
                    on_exit(node)
                executor.remove_node(node)
                node.destroy_node()  # the worker's last frame still goes out: the context is valid until below
    finally:
        rclpy.try_shutdown()
    return 0
