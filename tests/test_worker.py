"""The nodes' latest-wins worker thread: its warm-up hook runs in the thread that then handles the items."""

from __future__ import annotations

import threading

import pytest

from perception_ws.errors import PerceptionError
from perception_ws.nodes.issues import IssueLog
from perception_ws.nodes.worker import LatestWorker


class Failures:
    def __init__(self) -> None:
        self.count = 0

    def frame_failed(self) -> None:
        self.count += 1


def test_before_runs_in_the_handling_thread_and_wait_ready_waits_for_it() -> None:
    threads: dict[str, int] = {}
    handled: list[int] = []
    release = threading.Event()
    done = threading.Event()

    def before() -> None:
        release.wait(5.0)  # a slow warm-up: wait_ready must not return before it ends
        threads["before"] = threading.get_ident()

    def handle(item: int) -> None:
        threads["handle"] = threading.get_ident()
        handled.append(item)
        done.set()

    worker: LatestWorker[int] = LatestWorker("test_worker")
    lines: list[str] = []
    worker.start(handle, Failures(), IssueLog(lines.append, "frame"), before=before)
    with pytest.raises(TimeoutError, match=r"test_worker: not ready after 0\.05 s"):
        worker.wait_ready(0.05)
    release.set()
    worker.wait_ready(5.0)
    assert "before" in threads
    worker.slot.put(7)
    assert done.wait(5.0)
    worker.stop()
    assert handled == [7]
    assert threads["before"] == threads["handle"] != threading.get_ident()
    assert lines == []


def test_a_failing_before_is_raised_by_wait_ready_and_nothing_is_handled() -> None:
    handled: list[int] = []

    def before() -> None:
        raise PerceptionError("the network could not be compiled")

    worker: LatestWorker[int] = LatestWorker("test_worker")
    worker.start(handled.append, Failures(), IssueLog(lambda line: None, "frame"), before=before)
    with pytest.raises(PerceptionError, match="the network could not be compiled"):
        worker.wait_ready(5.0)
    worker.slot.put(1)
    worker.stop()
    assert handled == []


def test_without_before_the_worker_is_ready_at_once() -> None:
    worker: LatestWorker[int] = LatestWorker("test_worker")
    worker.start(lambda item: None, Failures(), IssueLog(lambda line: None, "frame"))
    worker.wait_ready(5.0)
    worker.stop()
