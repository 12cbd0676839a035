"""Running ROS 2 nodes in a test: spin them in the background, wait for a condition, run the simulator node."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from perception_ws.nodes.sim_node import SimNode
from perception_ws.sim.carla.client import SessionFactory
from perception_ws.sim.stream_config import SimConfig

#: longest wait for discovery, a node's start-up or one frame's results (all far shorter on an idle machine).
WAIT_S = 30.0


class Spinner:
    """Spins nodes in a background thread for the length of a ``with`` block."""

    def __init__(self, context: Context, *nodes: Node) -> None:
        self.executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)

    def __enter__(self) -> Spinner:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # the spin thread must be gone before the caller destroys the nodes: on a loaded machine a callback can
        # outlast a short shutdown, and a node destroyed under a running spin raises InvalidHandle in the thread
        self.executor.shutdown(timeout_sec=30.0)
        self.thread.join(timeout=30.0)
        if self.thread.is_alive():
            raise AssertionError("the executor's spin thread did not stop within 30 s of shutdown")


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout_s`` passed (False)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    if not wait_until(condition, timeout_s):
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def simulate_until(
    ros_context: Context,
    config: SimConfig,
    done: Callable[[], bool],
    what: str,
    timeout_s: float = 120.0,
    carla_session: SessionFactory | None = None,
) -> SimNode:
    """A simulator node with ``config`` (and a stand-in CARLA session), spun until ``done()`` (the graph already
    spinning answers it), then destroyed; returned for its counters."""
    sim = SimNode(context=ros_context, defaults=config, carla_session=carla_session)
    try:
        with Spinner(ros_context, sim):
            wait_for(done, what, timeout_s)
    finally:
        sim.destroy_node()
    return sim
