"""The ray-casting interface the LiDAR uses, and the choice of backend.

A backend is built once per scene from its :class:`~perception_ws.sim.scene.TriangleSoup` and then
answers batches of rays with the first hit of each: the distance along the (unit) direction and
the index of the triangle hit, or ``inf`` / -1 for a miss. Everything else about a hit (class,
instance, material, normal) is a lookup by triangle index in the soup, so all backends label points
identically. Backends:

* ``open3d``: Open3D's ``RaycastingScene`` (Embree BVH) on the CPU; the fastest on a CPU.
* ``torch``: :mod:`perception_ws.sim.raycast_torch`, a BVH traversed breadth-first by batched
  tensor operations; runs wherever torch does, and fast on a GPU.

Whole sweeps at many poses at once (a GPU's way) are rasterised instead of traced:
:mod:`perception_ws.sim.raycast_raster` (first hits of a ray pattern) and
:func:`perception_ws.sim.gpu_sweeps.make_sweep_renderer` (labelled sweeps left on the device).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.sim.scene import TriangleSoup

BACKENDS = ("open3d", "torch")


@dataclass
class Hits:
    t: np.ndarray  # (N,) float32 distance along the ray, inf where nothing was hit
    triangle: np.ndarray  # (N,) int64 triangle index into the soup, -1 where nothing was hit


class Raycaster(Protocol):
    name: str

    def cast(self, origins: np.ndarray, directions: np.ndarray, max_range: float) -> Hits:
        """First hits of rays ``origins`` + t * ``directions`` (both (N, 3), unit directions), 0 < t <= max_range."""
        ...


def check_rays(origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rays as contiguous (N, 3) float32 arrays, or one clear error."""
    o = np.ascontiguousarray(origins, dtype=np.float32)
    d = np.ascontiguousarray(directions, dtype=np.float32)
    if o.ndim != 2 or o.shape[1] != 3 or d.shape != o.shape:
        raise PerceptionError(
            f"rays: origins and directions must both be (N, 3); got {np.shape(origins)} and {np.shape(directions)}"
        )
    return o, d


def available_backends() -> list[str]:
    """The backends that can run here (Open3D is optional; torch is needed for the other one)."""
    return [name for name, module in (("open3d", "open3d"), ("torch", "torch")) if importlib.util.find_spec(module)]


def make_raycaster(soup: TriangleSoup, backend: str = "auto", device: str | None = None) -> Raycaster:
    """A ray caster over ``soup``: ``open3d``, ``torch`` (on ``device``, default CUDA if present) or ``auto``.

    ``auto`` takes the torch backend when a CUDA GPU is there, else Open3D when installed, else torch
    on the CPU.
    """
    have = available_backends()
    if backend == "auto":
        cuda = "torch" in have and _cuda_available()
        backend = "torch" if cuda or "open3d" not in have else "open3d"
    if backend not in BACKENDS:
        raise PerceptionError(f"unknown ray-casting backend {backend!r}; expected one of auto, {', '.join(BACKENDS)}")
    if backend not in have:
        raise PerceptionError(
            f"ray-casting backend {backend!r} needs the {backend} package, which is not installed; "
            f"available here: {', '.join(have) or 'none'}"
        )
    if backend == "open3d":
        from perception_ws.sim.raycast_open3d import Open3DRaycaster

        return Open3DRaycaster(soup)
    from perception_ws.sim.raycast_torch import TorchRaycaster

    return TorchRaycaster(soup, device=device)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
