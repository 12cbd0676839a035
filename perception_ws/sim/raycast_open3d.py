"""Ray casting with Open3D's ``RaycastingScene`` (an Embree BVH, multi-threaded on the CPU)."""

from __future__ import annotations

import numpy as np
import open3d as o3d

from perception_ws.sim.raycast import Hits, check_rays
from perception_ws.sim.scene import TriangleSoup


class Open3DRaycaster:
    name = "open3d"

    def __init__(self, soup: TriangleSoup, threads: int = 0) -> None:
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(
            o3d.core.Tensor.from_numpy(np.ascontiguousarray(soup.vertices, dtype=np.float32)),
            o3d.core.Tensor.from_numpy(np.ascontiguousarray(soup.triangles, dtype=np.uint32)),
        )
        self._threads = threads  # 0: all cores

    def cast(self, origins: np.ndarray, directions: np.ndarray, max_range: float) -> Hits:
        o, d = check_rays(origins, directions)
        rays = o3d.core.Tensor.from_numpy(np.concatenate([o, d], axis=1))
        result = self._scene.cast_rays(rays, nthreads=self._threads)
        t = result["t_hit"].numpy()
        triangle = result["primitive_ids"].numpy().astype(np.int64)
        miss = ~np.isfinite(t) | (t > max_range) | (t <= 0)
        t = np.where(miss, np.inf, t).astype(np.float32)
        triangle[miss] = -1
        return Hits(t=t, triangle=triangle)
