"""What a node reports about itself: frame counters, latency and rate, as diagnostic_msgs/DiagnosticArray.

Latency is measured two ways: from the scan's stamp to the publication of its results (what a
consumer waits, including transport; meaningful when the stamps come from the same clock, or with
use_sim_time during a replay) and from the arrival of the message to that publication (the node's own
processing time, always meaningful). Percentiles are over a sliding window of recent frames, so the
memory use stays constant however long the node runs. A stamp-to-publication latency outside
:data:`PLAUSIBLE_LATENCY_MS` (a stamp from another clock, a bogus or zero stamp, a replay without
use_sim_time) says nothing about the node: it is left out of the percentiles and counted instead
(``latency_implausible``), so one such frame cannot turn p50 into 1.8e12 ms. Every stage a frame reports
(the pipeline's :data:`~perception_ws.pipeline.STAGES`, the node's ``serialisation``) gets its mean, p50 and p99
over the same window (``stage_<name>_ms_mean`` / ``_p50`` / ``_p99``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

#: frames the latency percentiles are computed over.
WINDOW = 300
#: stamp-to-publication latencies kept (ms): a stamp up to 1 s in the future (clocks of two machines) to a
#: minute old; anything else comes from a stamp on another clock, not from the node.
PLAUSIBLE_LATENCY_MS = (-1_000.0, 60_000.0)


@dataclass(frozen=True)
class Report:
    """One read-out of :class:`NodeStats`: the level, a one-line summary and the values behind it."""

    level: bytes
    message: str
    values: dict[str, str]


class NodeStats:
    """Thread-safe counters of one node; :meth:`report` reads them out (and starts a new rate period)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.failed = 0
        #: processed frames whose stamp gave a latency outside PLAUSIBLE_LATENCY_MS (not in the percentiles).
        self.latency_implausible = 0
        self._latency_ms: deque[float] = deque(maxlen=WINDOW)
        self._processing_ms: deque[float] = deque(maxlen=WINDOW)
        self._stages_ms: dict[str, deque[float]] = {}
        self._period_start = time.monotonic()
        self._period_counts = (0, 0)  # (received, processed) at the start of the period
        self._period_problems = 0

    def frame_received(self) -> None:
        with self._lock:
            self.received += 1

    def frame_failed(self) -> None:
        with self._lock:
            self.failed += 1

    def frame_processed(self, latency_ms: float, processing_ms: float, stages_ms: Mapping[str, float]) -> None:
        with self._lock:
            self.processed += 1
            low, high = PLAUSIBLE_LATENCY_MS
            if low <= latency_ms <= high:  # False for NaN too
                self._latency_ms.append(latency_ms)
            else:
                self.latency_implausible += 1
            self._processing_ms.append(processing_ms)
            for name, ms in stages_ms.items():
                self._stages_ms.setdefault(name, deque(maxlen=WINDOW)).append(ms)

    def report(self, dropped: int, issues: Mapping[str, int], rejected: int) -> Report:
        """Counters, rates over the period since the last report, latency percentiles, issue counts.

        The level is WARN when frames were dropped, rejected or failed during the period, else OK.
        """
        now = time.monotonic()
        with self._lock:
            elapsed = max(now - self._period_start, 1e-9)
            received0, processed0 = self._period_counts
            rate_in, rate_out = (self.received - received0) / elapsed, (self.processed - processed0) / elapsed
            problems = dropped + rejected + self.failed
            new_problems = problems - self._period_problems
            self._period_start, self._period_counts, self._period_problems = (
                now,
                (self.received, self.processed),
                problems,
            )
            values: dict[str, Any] = {
                "frames_received": self.received,
                "frames_processed": self.processed,
                "frames_dropped": dropped,
                "frames_rejected": rejected,
                "frames_failed": self.failed,
                "input_rate_hz": f"{rate_in:.2f}",
                "output_rate_hz": f"{rate_out:.2f}",
                **_percentiles("latency_ms", self._latency_ms),
                "latency_implausible": self.latency_implausible,
                **_percentiles("processing_ms", self._processing_ms),
                **{key: value for name, ms in self._stages_ms.items() for key, value in _stage_values(name, ms)},
                **{f"issue_{reason}": count for reason, count in sorted(issues.items())},
            }
            processed = self.processed
        if new_problems > 0:
            level, message = DiagnosticStatus.WARN, f"{new_problems} frame(s) dropped, rejected or failed lately"
        elif processed == 0:
            level, message = DiagnosticStatus.OK, "waiting for input"
        else:
            level, message = DiagnosticStatus.OK, f"processing at {rate_out:.1f} Hz"
        return Report(level, message, {key: str(value) for key, value in values.items()})


def diagnostics_msg(stamp: Any, name: str, hardware_id: str, report: Report) -> DiagnosticArray:
    """One DiagnosticArray holding ``report`` as the status of ``name``."""
    status = DiagnosticStatus(
        level=report.level,
        name=name,
        message=report.message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=value) for key, value in report.values.items()],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def _stage_values(name: str, values: deque[float]) -> list[tuple[str, str]]:
    """``stage_<name>_ms_mean`` / ``_p50`` / ``_p99`` over the window: where each scan's time goes."""
    mean = float(np.mean(np.asarray(values)))
    p50, p99 = np.percentile(np.asarray(values), [50, 99])
    key = f"stage_{name}_ms"
    return [(f"{key}_mean", f"{mean:.2f}"), (f"{key}_p50", f"{p50:.2f}"), (f"{key}_p99", f"{p99:.2f}")]


def _percentiles(name: str, values: deque[float]) -> dict[str, str]:
    if not values:
        return {}
    p50, p99 = np.percentile(np.asarray(values), [50, 99])
    return {f"{name}_last": f"{values[-1]:.2f}", f"{name}_p50": f"{p50:.2f}", f"{name}_p99": f"{p99:.2f}"}
