"""Child processes that end with their parent, even when the parent is killed with SIGKILL.

A parent that is SIGKILLed (or OOM-killed) cannot stop its children, and children started in their own
session (``perception run``'s nodes) or by ``multiprocessing`` (``sim generate``'s workers) would keep
working, re-parented to PID 1. Two guards, both set up in the child:

- ``PR_SET_PDEATHSIG`` (Linux): the kernel sends the child ``SIGTERM`` when the thread that started it
  ends. The nodes stop cleanly on it, as on ``kill`` (:mod:`perception_ws.nodes.process`).
- a watchdog thread that sees ``os.getppid()`` change, for what the kernel guard misses (other systems;
  a parent that dies between the child's fork and its ``prctl``). It needs Python code in the child,
  so it is for worker processes (:func:`init_worker`); a child that ``exec``s a program relies on the
  kernel guard alone (:func:`preexec_die_with_parent`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

#: prctl option of <linux/prctl.h>: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: seconds between the watchdog's looks at the parent pid.
WATCH_PERIOD_S = 0.2

# loaded here, not in the forked child, where loading a library is not safe
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when ``parent`` dies (Linux; elsewhere nothing);
    if ``parent`` is already gone, send it now.
    """
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # died before the guard was set: the kernel will not send it
        os.kill(os.getpid(), sig)


def preexec_die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that applies :func:`die_with_parent` to the child.
    Only the kernel guard survives the ``exec``; call Popen from a thread that lives as long as the child
    should (the main thread): the signal comes when that thread ends.
    """
    parent = os.getpid()
    return lambda: die_with_parent(parent, sig)


def watch_parent(parent: int, sig: int = signal.SIGTERM, period_s: float = WATCH_PERIOD_S) -> threading.Thread:
    """A daemon thread that sends ``sig`` to this process once its parent is no longer ``parent``."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period_s)
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread


def init_worker(parent: int) -> None:
    """``initializer`` of a ``multiprocessing`` pool (``initargs=(os.getpid(),)``): both guards."""
    die_with_parent(parent)
    watch_parent(parent)
