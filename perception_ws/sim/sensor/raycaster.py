"""What every ray-casting backend is: a :class:`Raycaster` answering rays with :class:`Hits`.

Its own module so that the backends (:mod:`~perception_ws.sim.sensor.raycast_open3d`,
:mod:`~perception_ws.sim.sensor.raycast_torch`, :mod:`~perception_ws.sim.sensor.raycast_layers`)
and the backend choice (:mod:`~perception_ws.sim.sensor.raycast`) import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from perception_ws.errors import PerceptionError


@dataclass
class Hits:
    """First hits of a batch of rays: distance and triangle per ray."""

    t: np.ndarray  # (N,) float32 distance along the ray, inf where nothing was hit
    triangle: np.ndarray  # (N,) int64 triangle index into the soup, -1 where nothing was hit


class Raycaster(Protocol):
    """What every ray-casting backend provides: a name and first hits against one scene's triangles."""

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
