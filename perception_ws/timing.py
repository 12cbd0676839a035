"""Wall time of named stages: ``with stage(timings, "ground"): ...`` records milliseconds under that name.

Shared by the pipeline and the instance stage, which time their own parts (docs/design.md: every stage's time
reaches the node's diagnostics and the benchmarks).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def stage(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    """Time the block into ``timings[name]`` (ms); ``timings`` None: nothing is recorded."""
    if timings is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = (time.perf_counter() - start) * 1e3
