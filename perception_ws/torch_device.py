"""Torch devices by name: a checked ``torch.device``, a line naming the hardware, and a timing-safe clock.

Shared by the commands that take ``--device`` (the simulator's raster caster, ``perception search``), so a wrong
name or a missing GPU is the same one line everywhere.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from perception_ws.errors import PerceptionError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device (None: CUDA when present, else the CPU), or a clear error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise PerceptionError(
            f"device {device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1'): {exc}"
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise PerceptionError(f"device {device!r}: torch sees no CUDA GPU here; use 'cpu'")
    if resolved.type not in ("cpu", "cuda"):
        raise PerceptionError(f"device {device!r}: only 'cpu' and 'cuda' are supported")
    return resolved


def device_hardware(device: torch.device) -> str:
    """What a time measured on ``device`` depends on: the GPU's model, or the CPU's model and torch's thread count.

    No index: two cards of one model time alike, so a measurement made on ``cuda:0`` holds on ``cuda:1``.
    """
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({_cpu_model()}, torch threads: {torch.get_num_threads()})"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def device_clock(device: torch.device) -> float:
    """Seconds (``time.perf_counter``) once the work queued on ``device`` has finished: GPU kernels run
    asynchronously, so a clock read without waiting would time only their launch.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
