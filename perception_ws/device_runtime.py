"""What the per-scan device path needs besides its kernels: pinned host memory for the copies, stage times, one wait.

:class:`PinnedTransfers` stages the points into page-locked host memory and copies them to the device without
blocking; it copies the per-point results back the same way and waits for the device once, for everything queued
for the scan (:meth:`PinnedTransfers.download`). The buffers are kept and reused scan after scan (allocating pinned
memory is slow); they grow when a scan has more points. On a CPU device nothing is copied or pinned.

:class:`StageClock` times named stages of work queued on a device. ``events=True`` (the device path): CUDA events
recorded at each stage's start and end, read after the scan's one wait, so the times are the device's and nobody
waits at a stage boundary; on a CPU the wall clock (the work is done when the call returns). ``events=False``:
wall clock, waiting for the device at the end of each stage (the host path's per-call timing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch


class StageClock:
    """Milliseconds of named stages on ``device``; see the module doc. :meth:`read` after the device finished."""

    def __init__(self, device: torch.device, *, events: bool) -> None:
        self.device = device
        cuda = device.type == "cuda"
        self._events = events and cuda
        self._wait = cuda and not events
        self._marks: dict[str, tuple[torch.cuda.Event, torch.cuda.Event]] = {}
        self._ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._events:
            start, end = _timing_event(), _timing_event()
            start.record()
            try:
                yield
            finally:
                end.record()
                self._marks[name] = (start, end)
            return
        begin = time.perf_counter()
        try:
            yield
        finally:
            if self._wait:  # the queued work belongs to this stage, not to the next
                torch.cuda.synchronize(self.device)
            self._ms[name] = (time.perf_counter() - begin) * 1e3

    def read(self) -> dict[str, float]:
        """Every stage's milliseconds (events: only once the device has run them, e.g. after a download)."""
        return {**self._ms, **{name: start.elapsed_time(end) for name, (start, end) in self._marks.items()}}


def _timing_event() -> torch.cuda.Event:
    return torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]


class PinnedTransfers:
    """Page-locked staging buffers between the host and ``device``, reused across scans; see the module doc."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._pinned = device.type == "cuda"
        self._buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def upload(self, name: str, columns: Sequence[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
        """(len(columns), N) tensor of ``dtype`` on the device from equally long 1-D host arrays; not waited for."""
        n = len(columns[0]) if columns else 0
        if not self._pinned:
            host = np.empty((len(columns), n), dtype=torch.empty((), dtype=dtype).numpy().dtype)
            for row, column in zip(host, columns, strict=True):
                row[:] = column
            return torch.from_numpy(host)
        staging = self._staging(f"up:{name}", dtype, len(columns) * n).view(len(columns), n)
        view = staging.numpy()
        for row, column in zip(view, columns, strict=True):
            row[:] = column  # one pass per column: casts and de-interleaves a structured cloud's field
        return staging.to(self.device, non_blocking=True)

    def download(self, tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """Host copies of 1-D device tensors: every copy queued, then the scan's one wait for the device."""
        if not self._pinned:
            return [tensor.numpy() for tensor in tensors]
        staged = []
        for i, tensor in enumerate(tensors):
            staging = self._staging(f"down:{i}", tensor.dtype, len(tensor))
            staging.copy_(tensor, non_blocking=True)
            staged.append(staging)
        torch.cuda.current_stream(self.device).synchronize()
        return [staging.numpy().copy() for staging in staged]  # the buffers are overwritten by the next scan

    def _staging(self, key: str, dtype: torch.dtype, size: int) -> torch.Tensor:
        """A pinned 1-D buffer of at least ``size`` elements: the first ``size`` of it."""
        buffer = self._buffers.get((key, dtype))
        if buffer is None or len(buffer) < size:
            buffer = torch.empty(max(size, 1) * 5 // 4 + 1024, dtype=dtype, pin_memory=True)  # room for larger scans
            self._buffers[(key, dtype)] = buffer
        return buffer[:size]
