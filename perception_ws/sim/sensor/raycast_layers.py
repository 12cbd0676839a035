"""Ray casting for scenes whose actors move: the static world indexed once, the actors re-indexed per frame.

A ray caster's acceleration structure must be rebuilt whenever geometry moves (Open3D's
``RaycastingScene`` cannot move or remove what it holds). Rebuilding the whole street per frame
costs about as much as a sweep (about 65 ms for 130 000 triangles on one core of the 2-core dev
machine), but the actors are a small part of it (about 17 000 triangles, 6.5 ms). So there are two
layers: the static triangles (the soup's first ones: ``Scene.soup`` lists parts before actors),
built once, and the actors', rebuilt by :meth:`LayeredRaycaster.update`. A ray's hit is the nearer
of its two hits, with the triangle index of the whole soup, so labels are looked up as before.
"""

from __future__ import annotations

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.sensor.raycaster import Hits, Raycaster
from perception_ws.sim.world.scene import TriangleSoup


def sub_soup(soup: TriangleSoup, first: int, last: int, first_vertex: int, last_vertex: int) -> TriangleSoup:
    """Triangles ``first:last`` of ``soup``, which use only vertices ``first_vertex:last_vertex`` (re-indexed)."""
    tri = slice(first, last)
    return TriangleSoup(
        vertices=soup.vertices[first_vertex:last_vertex],
        triangles=soup.triangles[tri] - np.int32(first_vertex),
        normals=soup.normals[tri],
        semantic=soup.semantic[tri],
        kitti3=soup.kitti3[tri],
        instance=soup.instance[tri],
        material=soup.material[tri],
        albedo=soup.albedo[tri],
        glass=soup.glass[tri],
        retro=soup.retro[tri],
    )


class LayeredRaycaster:
    """A :class:`~perception_ws.sim.sensor.raycaster.Raycaster` over a static layer and a moving layer of one soup."""

    def __init__(
        self,
        soup: TriangleSoup,
        static_triangles: int,
        static_vertices: int,
        backend: str = "auto",
        device: str | None = None,
    ) -> None:
        if not 0 <= static_triangles <= len(soup) or not 0 <= static_vertices <= len(soup.vertices):
            raise PerceptionError(
                f"layered ray caster: the static layer ({static_triangles} triangles, {static_vertices} vertices) "
                f"must lie within the soup ({len(soup)} triangles, {len(soup.vertices)} vertices)"
            )
        self._backend, self._device = backend, device
        self._static_triangles, self._static_vertices = static_triangles, static_vertices
        self._static = (
            make_raycaster(sub_soup(soup, 0, static_triangles, 0, static_vertices), backend, device)
            if static_triangles
            else None
        )
        self._moving: Raycaster | None = None
        self.update(soup)

    @property
    def name(self) -> str:
        layer = self._static or self._moving
        return f"layered-{layer.name if layer else self._backend}"

    def update(self, soup: TriangleSoup) -> None:
        """Re-index the moving layer from ``soup`` (the same static triangles, actors moved)."""
        t0, v0 = self._static_triangles, self._static_vertices
        if len(soup) < t0 or len(soup.vertices) < v0:
            raise PerceptionError(
                f"layered ray caster: the soup has {len(soup)} triangles; expected the {t0} static ones and the actors'"
            )
        moving = sub_soup(soup, t0, len(soup), v0, len(soup.vertices))
        self._moving = make_raycaster(moving, self._backend, self._device) if len(moving) else None

    def cast(self, origins: np.ndarray, directions: np.ndarray, max_range: float) -> Hits:
        layers = [(c, offset) for c, offset in ((self._static, 0), (self._moving, self._static_triangles)) if c]
        if not layers:
            n = len(origins)
            return Hits(t=np.full(n, np.inf, dtype=np.float32), triangle=np.full(n, -1, dtype=np.int64))
        best: Hits | None = None
        for caster, offset in layers:
            hits = caster.cast(origins, directions, max_range)
            triangle = np.where(hits.triangle >= 0, hits.triangle + offset, -1)
            if best is None:
                best = Hits(t=hits.t, triangle=triangle)
                continue
            nearer = hits.t < best.t
            best = Hits(t=np.where(nearer, hits.t, best.t), triangle=np.where(nearer, triangle, best.triangle))
        assert best is not None
        return best
