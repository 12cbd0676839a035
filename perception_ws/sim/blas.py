"""One BLAS thread for the small matrix products of a sweep, which run between multi-threaded ray casts.

A sweep turns its 131 072 ray directions with one ``(N, 3) @ (3, 3)`` product. OpenBLAS splits that over
all cores, and its threads then have to wait for cores the ray caster's worker threads (Open3D's TBB
pool) still spin on: on the 2-core dev machine the product took 30 ms that way instead of 0.2 ms on one
thread. One thread computes the same rows with the same kernel, so the results are bit for bit the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS libraries once (a few ms)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block, BLAS calls (numpy's matmul) run on the calling thread only."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
