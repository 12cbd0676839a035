"""A node's worker thread: it takes the newest item from a one-item mailbox (:mod:`.latest`) and handles it.

The node's callbacks (or a timer) put items in :attr:`LatestWorker.slot`; a daemon thread handles them one at
a time, always the newest (latest-only, never a queue; the slot counts the replaced ones). An exception
from the handler does not stop the thread: the item is counted as failed and the reason logged once per
type (:class:`~perception_ws.nodes.issues.IssueLog`), with its traceback. On shutdown :meth:`LatestWorker.stop`
closes the mailbox and waits for the item the thread is on.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from perception_ws.errors import PerceptionError
from perception_ws.nodes.issues import IssueLog
from perception_ws.nodes.latest import LatestSlot

T = TypeVar("T")

#: how long stop() waits for the worker to finish the item it is on.
JOIN_TIMEOUT_S = 10.0


class FailureCounter(Protocol):
    """What the worker reports a failed item to: the node's NodeStats (a protocol, so that this module and its
    loop run without ROS, e.g. in benchmarks/bench_gpu.py).
    """

    def frame_failed(self) -> None: ...


class LatestWorker(Generic[T]):
    """The mailbox and the thread named ``name``; built before the node (its shutdown must work on a node
    that failed half-way), started once the node can handle items.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.slot: LatestSlot[T] = LatestSlot()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()  # set once ``before`` has run (or raised) in the thread
        self._before_error: BaseException | None = None

    def start(
        self,
        handle: Callable[[T], object],
        stats: FailureCounter,
        issues: IssueLog,
        *,
        expected: str = "",
        before: Callable[[], None] | None = None,
    ) -> None:
        """Run ``handle`` on each item in a daemon thread, after ``before`` (in that thread: e.g. a warm-up whose
        state is the thread's own, see :meth:`wait_ready`). A :class:`PerceptionError` is recorded as
        ``<expected>_<type>`` with its message when ``expected`` is given; any other exception as
        ``internal_<type>`` with its traceback.
        """
        self._thread = threading.Thread(
            target=self._run, args=(handle, stats, issues, expected, before), name=self.name, daemon=True
        )
        self._thread.start()

    def _run(
        self,
        handle: Callable[[T], object],
        stats: FailureCounter,
        issues: IssueLog,
        expected: str,
        before: Callable[[], None] | None,
    ) -> None:
        try:
            if before is not None:
                before()
        except BaseException as err:  # handed to wait_ready; the thread handles nothing
            self._before_error = err
            return
        finally:
            self._ready.set()
        while (item := self.slot.take()) is not None:
            try:
                handle(item)
            except Exception as err:  # a bug, or publishing while shutting down: counted, logged once per type
                stats.frame_failed()
                if expected and isinstance(err, PerceptionError):  # a failure the handler's code foresees
                    issues.record(f"{expected}_{type(err).__name__}", str(err))
                else:
                    issues.record(f"internal_{type(err).__name__}", traceback.format_exc())

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Wait until the thread has run ``before``, and raise what it raised (TimeoutError after ``timeout_s``)."""
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"{self.name}: not ready after {timeout_s} s")
        if self._before_error is not None:
            raise self._before_error

    def stop(self) -> None:
        """Wake the thread for good and wait (up to :data:`JOIN_TIMEOUT_S`) for the item it is on."""
        self.slot.close()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_TIMEOUT_S)
