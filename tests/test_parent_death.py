"""Children end with their parent, even when the parent is SIGKILLed (perception_ws/parent_death.py): the
nodes of `perception run` and the workers of `sim generate` are gone within 2 s and stop writing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import rclpy
from rclpy.context import Context

from perception_ws.config import PerceptionConfig
from perception_ws.msg import Detection3DArray
from perception_ws.nodes.qos import output_qos
from tests.conftest import REPO
from tests.helpers.ros import Spinner, wait_until

#: how soon after the parent's death every child must be gone: the point is that they end rather than run on
#: re-parented; a node's graceful SIGTERM shutdown (rclpy, DDS) took over 2 s in a full suite on 2 busy cores.
GONE_S = 15.0
#: longest wait for the processes to be up and working (far shorter on an idle machine).
START_S = 90.0


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _stat(int(entry.name))[1:2] == [str(pid)]:
            found.append(int(entry.name))
    return found


def _stat(pid: int) -> list[str]:
    """[state, ppid] of ``pid``; [] when it is gone."""
    try:
        text = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()[:2]  # after "pid (comm) ": the name may hold spaces


def _alive(pid: int) -> bool:
    return _stat(pid)[:1] not in ([], ["Z"], ["X"])  # a zombie has ended; only its exit status is left


def _kill_parent_and_wait(parent: subprocess.Popen[Any], children: list[int]) -> bool:
    """SIGKILL ``parent``; True when every one of ``children`` has ended within :data:`GONE_S`."""
    parent.kill()
    parent.wait()
    return wait_until(lambda: not any(_alive(p) for p in children), GONE_S)


def _cleanup(parent: subprocess.Popen[Any], children: list[int]) -> None:
    if parent.poll() is None:
        parent.kill()
    for pid in children:  # what a failed test left behind: only the processes this test started
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.dds
def test_sigkill_of_perception_run_leaves_no_node_alive(local_env: dict[str, str], ros_context: Context) -> None:
    listener = rclpy.create_node("parent_death_listener", context=ros_context)
    detections: list[Detection3DArray] = []
    topic = PerceptionConfig().topics.detections
    listener.create_subscription(Detection3DArray, topic, detections.append, output_qos(5))
    graph = subprocess.Popen(
        [sys.executable, "-m", "perception_ws.cli", "run", "--sim", "true", "--segmenter", "labels"],
        cwd=REPO, env=local_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    nodes: list[int] = []
    try:
        with Spinner(ros_context, listener):  # both nodes working: the perception node answers the simulator
            assert wait_until(lambda: bool(detections) or graph.poll() is not None, START_S)
        nodes = _children(graph.pid)
        assert graph.poll() is None
        assert len(nodes) == 2
        assert _kill_parent_and_wait(graph, nodes), f"still running after {GONE_S} s: {[p for p in nodes if _alive(p)]}"
    finally:
        _cleanup(graph, nodes)
        listener.destroy_node()


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_sigkill_of_sim_generate_leaves_no_worker_writing(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    command = ["sim", "generate", "--out", str(out), "--scenes", "4", "--frames", "50", "--columns", "256"]
    generate = subprocess.Popen(
        [sys.executable, "-m", "perception_ws.cli", *command, "--workers", "2", "--quiet"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    children: list[int] = []
    try:
        # the workers are writing frames (the spawn context also starts a resource tracker: one more child)
        assert wait_until(lambda: any((out / "frames").glob("*")) or generate.poll() is not None, START_S)
        children = _children(generate.pid)
        assert generate.poll() is None
        assert len(children) >= 2
        assert _kill_parent_and_wait(generate, children), [p for p in children if _alive(p)]
        written = _snapshot(out)
        time.sleep(1.0)
        assert _snapshot(out) == written  # nothing more is written
    finally:
        _cleanup(generate, children)
