"""`perception run` ends cleanly on Ctrl-C: every node (simulator, perception with the trained model, camera
fusion) finishes the frame it is on and exits 0, with no traceback or error line (perception_ws/nodes/process.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from typing import Any

import pytest
import rclpy
from rclpy.context import Context
from sensor_msgs.msg import Image

from perception_ws.config import FusionConfig, PerceptionConfig
from perception_ws.msg import Detection3DArray
from perception_ws.nodes.qos import output_qos
from tests.helpers.data import REPO
from tests.helpers.ros import Spinner, wait_for


@pytest.mark.dds
def test_ctrl_c_stops_the_whole_graph_without_errors(local_env: dict[str, str], ros_context: Context) -> None:
    listener = rclpy.create_node("shutdown_listener", context=ros_context)
    got: dict[str, list[Any]] = {"detections": [], "overlay": []}
    topics = PerceptionConfig().topics
    listener.create_subscription(Detection3DArray, topics.detections, got["detections"].append, output_qos(5))
    listener.create_subscription(Image, FusionConfig().topics.overlay, got["overlay"].append, output_qos(5))
    graph = subprocess.Popen(
        [sys.executable, "-m", "perception_ws.cli", "run", "--sim", "true", "--camera", "true"],
        cwd=REPO, env=local_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        with Spinner(ros_context, listener):
            # every node is working (the model is busy on the next scan) when the signal comes
            wait_for(lambda: bool(got["detections"] and got["overlay"]) or graph.poll() is not None, "results", 60)
        graph.send_signal(signal.SIGINT)
        log, _ = graph.communicate(timeout=30)
    finally:
        if graph.poll() is None:
            graph.kill()
        listener.destroy_node()
    assert got["detections"], log
    assert got["overlay"], log
    assert graph.returncode == 0, log
    assert "segmenter model" in log, log
    assert "[sim_node]: published" in log, log
    assert not re.search(r"traceback|error|context is invalid", log, re.IGNORECASE), log
