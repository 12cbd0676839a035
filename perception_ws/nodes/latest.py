"""A one-item mailbox between a subscription callback and a worker thread: latest-only processing.

When frames arrive faster than the worker handles them, the newest frame replaces the one still
waiting, which is dropped and counted: the worker always starts on the freshest data and latency
stays bounded by one processing time, never growing with a queue.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds at most one pending item; see the module doc. Thread-safe."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._closed = False
        self._ready = threading.Condition()
        #: items replaced before the worker took them.
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Make ``item`` the pending one; True when it replaced (dropped) an item still waiting."""
        with self._ready:
            replaced = self._item is not None
            self.dropped += replaced
            self._item = item
            self._ready.notify()
        return replaced

    def take(self, timeout_s: float | None = None) -> T | None:
        """The pending item (waiting up to ``timeout_s``, forever when None); None on timeout or once closed."""
        with self._ready:
            self._ready.wait_for(lambda: self._item is not None or self._closed, timeout_s)
            if self._closed:
                return None
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake the worker for good: every later take() returns None."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
