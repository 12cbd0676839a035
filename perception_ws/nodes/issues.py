"""Counting input problems by reason, logging each reason once: a flood of bad frames is one log line.

The first occurrence of a reason is logged with its detail (what was wrong, what was expected); later
ones are only counted, and the counts go out with the diagnostics.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class IssueLog:
    """Thread-safe counters by reason; ``log`` receives the one line per reason."""

    def __init__(self, log: Callable[[str], Any], what: str = "input") -> None:
        self._log = log
        self._what = what
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, reason: str, detail: str) -> bool:
        """Count one occurrence; True when this was the first of its reason (and so was logged)."""
        with self._lock:
            first = reason not in self._counts
            self._counts[reason] = self._counts.get(reason, 0) + 1
        if first:
            self._log(f"{self._what} problem '{reason}': {detail} (logged once; later ones are counted on diagnostics)")
        return first

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
