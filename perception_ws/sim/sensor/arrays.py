"""One formula for numpy arrays and torch tensors: the sweep models (noise, dropout, intensity) run on both.

A model writes its math with operators and the few functions numpy and torch share by name and
meaning (``where``, ``exp``, ``clip``, ``take``), taken from :func:`namespace` of its input; constant
tables (a per-beam gain, a measured dropout map) go through :func:`table_like`. The same code then
serves :meth:`Lidar.scan <perception_ws.sim.sensor.lidar.Lidar.scan>` (numpy, CPU) and the batched sweeps of
:mod:`perception_ws.sim.sensor.gpu_sweeps` (torch, any device). :class:`TorchRandom` gives the models the
two draws they take from a numpy ``Generator``, as tensors on a device.
"""

from __future__ import annotations

import sys
from typing import Any, TypeAlias

import numpy as np

#: a numpy array or a torch tensor, whichever kind the input was: the sweep models' values on either backend
#: (typed loosely on purpose: numpy and torch share these operators but no static type).
Array: TypeAlias = Any

_TABLES: dict[tuple[int, str], tuple[np.ndarray, Any]] = {}  # (id, device) -> (table, its tensor)


def namespace(x: Any) -> Any:
    """The array module of ``x``: torch for a torch tensor, else numpy."""
    torch = sys.modules.get("torch")  # a tensor means torch is imported: never import it for numpy input
    if torch is not None and isinstance(x, torch.Tensor):
        return torch
    return np


def table_like(table: np.ndarray, like: Any) -> Any:
    """A constant numpy ``table`` as the kind of ``like``: itself, or a tensor on ``like``'s device.

    Tensors are made once per table and device (tables are fixed: read-only arrays cached by their models).
    """
    xp = namespace(like)
    if xp is np:
        return table
    key = (id(table), str(like.device))
    cached = _TABLES.get(key)
    if cached is None or cached[0] is not table:
        cached = _TABLES[key] = (table, xp.as_tensor(np.array(table), device=like.device))
    return cached[1]


def as_float32(x: Any) -> Any:
    """``x`` as float32 (numpy ``astype``, torch ``to``)."""
    return x.astype(np.float32) if isinstance(x, np.ndarray) else x.to(namespace(x).float32)


class TorchRandom:
    """The draws the sweep models take from a numpy ``Generator`` (``random``, ``standard_normal``), in torch.

    Seeded, so a seed gives the same draws on the same device (not the same numbers numpy would draw).
    """

    def __init__(self, seed: int, device: Any) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def random(self, size: int, dtype: Any = np.float32) -> Any:
        """Uniform in [0, 1), float32."""
        return self._torch.rand(size, generator=self.generator, device=self.device)

    def standard_normal(self, size: int, dtype: Any = np.float32) -> Any:
        """Standard normal, float32."""
        return self._torch.randn(size, generator=self.generator, device=self.device)


def standard_normals(rng: Any, n: int) -> Any:
    """(n,) float32 standard normal draws: from a numpy ``Generator`` (the sweep kernels' fast way) or a
    :class:`TorchRandom` (a tensor on its device).
    """
    if isinstance(rng, TorchRandom):
        return rng.standard_normal(n)
    from perception_ws.sim.sensor.sweep_kernels import standard_normals as numpy_normals

    return numpy_normals(rng, n)


def falses(like: Any) -> Any:
    """All-False bools shaped and placed like ``like``."""
    xp = namespace(like)
    return xp.zeros_like(like, dtype=xp.bool)


def ones32(like: Any) -> Any:
    """float32 ones shaped and placed like ``like``."""
    xp = namespace(like)
    return xp.ones_like(like, dtype=xp.float32)
