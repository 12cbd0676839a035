"""Ray casting with Open3D's ``RaycastingScene`` (an Embree BVH, multi-threaded on the CPU)."""

from __future__ import annotations

import numpy as np
import open3d as o3d

from perception_ws.sim.sensor.raycaster import Hits, check_rays
from perception_ws.sim.sensor.sweep_kernels import first_hits
from perception_ws.sim.world.scene import TriangleSoup


class Open3DRaycaster:
    """Ray casting with Open3D's RaycastingScene (an Embree BVH): the fastest backend on a CPU."""

    name = "open3d"

    def __init__(self, soup: TriangleSoup, threads: int = 0) -> None:
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(
            o3d.core.Tensor.from_numpy(np.ascontiguousarray(soup.vertices, dtype=np.float32)),
            o3d.core.Tensor.from_numpy(np.ascontiguousarray(soup.triangles, dtype=np.uint32)),
        )
        self._threads = threads  # 0: all cores

    def cast(self, origins: np.ndarray, directions: np.ndarray, max_range: float) -> Hits:
        rays = packed_rays(origins, directions)
        if rays is None:
            o, d = check_rays(origins, directions)
            rays = np.empty((len(o), 6), dtype=np.float32)
            rays[:, :3], rays[:, 3:] = o, d
        result = self._scene.cast_rays(o3d.core.Tensor.from_numpy(rays), nthreads=self._threads)
        # t_hit is a fresh array of ours: first_hits marks the misses in it in place
        t, triangle = first_hits(result["t_hit"].numpy(), result["primitive_ids"].numpy(), max_range)
        return Hits(t=t, triangle=triangle)


def packed_rays(origins: np.ndarray, directions: np.ndarray) -> np.ndarray | None:
    """The (N, 6) float32 array whose first and last three columns ``origins`` and ``directions`` are, if they
    are (as :meth:`perception_ws.sim.sensor.lidar.Lidar.cast` passes them): Open3D's layout, used without a copy.
    """
    if not (isinstance(origins, np.ndarray) and isinstance(directions, np.ndarray)):
        return None
    base = origins.base
    if not (
        isinstance(base, np.ndarray)
        and directions.base is base
        and base.dtype == np.float32
        and base.flags.c_contiguous
        and base.shape == (len(origins), 6)
        and origins.shape == directions.shape == (len(base), 3)
        and origins.strides == directions.strides == base.strides
    ):
        return None
    start = base.__array_interface__["data"][0]
    o_at, d_at = origins.__array_interface__["data"][0], directions.__array_interface__["data"][0]
    return base if (o_at, d_at) == (start, start + 3 * base.itemsize) else None
