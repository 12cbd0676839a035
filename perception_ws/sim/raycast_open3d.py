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
        rays = np.empty((len(o), 6), dtype=np.float32)
        rays[:, :3], rays[:, 3:] = o, d
        result = self._scene.cast_rays(o3d.core.Tensor.from_numpy(rays), nthreads=self._threads)
        t = result["t_hit"].numpy()  # float32, a fresh array of ours: edited in place
        triangle = result["primitive_ids"].numpy().astype(np.int64)
        miss = ~(t <= np.float32(max_range)) | (t <= 0)  # not <= max_range: also inf and NaN
        t[miss] = np.inf
        triangle[miss] = -1
        return Hits(t=t, triangle=triangle)
