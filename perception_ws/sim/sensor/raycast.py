"""The choice of ray-casting backend (the interface they share: :mod:`perception_ws.sim.sensor.raycaster`).

A backend is built once per scene from its :class:`~perception_ws.sim.world.scene.TriangleSoup` and then
answers batches of rays with the first hit of each: the distance along the (unit) direction and
the index of the triangle hit, or ``inf`` / -1 for a miss. Everything else about a hit (class,
instance, material, normal) is a lookup by triangle index in the soup, so all backends label points
identically. Backends:

* ``open3d``: Open3D's ``RaycastingScene`` (Embree BVH) on the CPU; the fastest on a CPU.
* ``torch``: :mod:`perception_ws.sim.sensor.raycast_torch`, a BVH traversed breadth-first by batched
  tensor operations; runs wherever torch does, and fast on a GPU.

Whole sweeps at many poses at once (a GPU's way) are rasterised instead of traced:
:mod:`perception_ws.sim.sensor.raycast_raster` (first hits of a ray pattern) and
:func:`perception_ws.sim.sensor.gpu_sweeps.make_sweep_renderer` (labelled sweeps left on the device).
"""

from __future__ import annotations

import importlib.util
from typing import Literal, get_args

from perception_ws.errors import PerceptionError
from perception_ws.sim.sensor.raycaster import Raycaster
from perception_ws.sim.world.scene import TriangleSoup

#: a ray-casting backend by name, and every one there is.
Backend = Literal["open3d", "torch"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)


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
    # imported only when chosen: open3d and torch are optional packages
    if backend == "open3d":
        from perception_ws.sim.sensor.raycast_open3d import Open3DRaycaster

        return Open3DRaycaster(soup)
    from perception_ws.sim.sensor.raycast_torch import TorchRaycaster

    return TorchRaycaster(soup, device=device)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
