"""Triangle meshes for the simulator: one container and the few primitives every asset is built from.

A :class:`Mesh` is an indexed triangle list with one material id per triangle (see
:mod:`perception_ws.sim.world.materials`). Assets build their shapes from boxes, tubes, ellipsoids and
tori, then place them with a rigid transform; the scene merges everything into one soup for the
ray caster. Outward normals follow the right-hand rule on (v0, v1, v2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from perception_ws.errors import PerceptionError


class Mesh:
    """Vertices (V, 3) float64, triangles (T, 3) int64 indices, one uint8 material id per triangle."""

    def __init__(self, vertices: ArrayLike, triangles: ArrayLike, materials: ArrayLike) -> None:
        self.vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
        self.triangles = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
        self.materials = np.broadcast_to(np.asarray(materials, dtype=np.uint8), (len(self.triangles),)).copy()
        if len(self.triangles) and (self.triangles.min() < 0 or self.triangles.max() >= len(self.vertices)):
            raise PerceptionError(
                f"mesh: triangle indices must lie in 0..{len(self.vertices) - 1}; "
                f"got {self.triangles.min()}..{self.triangles.max()}"
            )

    def __len__(self) -> int:
        return len(self.triangles)

    def transformed(self, rotation: np.ndarray | None = None, translation: ArrayLike = (0, 0, 0)) -> Mesh:
        """The mesh moved by ``x -> R x + t``."""
        verts = self.vertices if rotation is None else self.vertices @ np.asarray(rotation, dtype=np.float64).T
        return Mesh(verts + np.asarray(translation, dtype=np.float64), self.triangles, self.materials)

    def placed(self, x: float, y: float, z: float, yaw: float) -> Mesh:
        """The mesh turned by ``yaw`` about +z, then moved to (x, y, z)."""
        return self.transformed(rotation_z(yaw), (x, y, z))

    def with_material(self, material: int) -> Mesh:
        return Mesh(self.vertices, self.triangles, np.full(len(self.triangles), material, dtype=np.uint8))

    @staticmethod
    def concat(meshes: Sequence[Mesh]) -> Mesh:
        meshes = [m for m in meshes if len(m)]
        if not meshes:
            return empty_mesh()
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return Mesh(
            np.concatenate([m.vertices for m in meshes]),
            np.concatenate([m.triangles + off for m, off in zip(meshes, offsets, strict=True)]),
            np.concatenate([m.materials for m in meshes]),
        )


def empty_mesh() -> Mesh:
    """A mesh with no vertices or triangles."""
    return Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.uint8))


def rotation_z(yaw: float) -> np.ndarray:
    """3x3 rotation by ``yaw`` about +z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_y(pitch: float) -> np.ndarray:
    """3x3 rotation by ``pitch`` about +y."""
    c, s = np.cos(pitch), np.sin(pitch)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_x(roll: float) -> np.ndarray:
    """3x3 rotation by ``roll`` about +x."""
    c, s = np.cos(roll), np.sin(roll)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def quad_strip_triangles(rows: int, cols: int, wrap: bool = False) -> np.ndarray:
    """Triangles of a (rows x cols) vertex grid stored row-major; ``wrap`` closes each row into a ring."""
    c_count = cols if wrap else cols - 1
    grid = np.meshgrid(np.arange(rows - 1), np.arange(c_count), indexing="ij")
    r, c = grid[0].ravel(), grid[1].ravel()
    a = r * cols + c
    b = r * cols + (c + 1) % cols
    d = (r + 1) * cols + c
    e = (r + 1) * cols + (c + 1) % cols
    return np.concatenate([np.stack([a, b, e], 1), np.stack([a, e, d], 1)])


def box(size: ArrayLike, center: ArrayLike = (0, 0, 0), material: int = 0, bottom: bool = True) -> Mesh:
    """An axis-aligned box; ``bottom=False`` leaves out the face no ray can reach from above ground."""
    half = np.asarray(size, dtype=np.float64) / 2.0
    signs = np.array([[x, y, z] for z in (-1, 1) for y in (-1, 1) for x in (-1, 1)], dtype=np.float64)
    faces = [
        (0, 2, 3, 1),  # bottom (-z)
        (4, 5, 7, 6),  # top (+z)
        (0, 1, 5, 4),  # -y
        (2, 6, 7, 3),  # +y
        (0, 4, 6, 2),  # -x
        (1, 3, 7, 5),  # +x
    ]
    if not bottom:
        faces = faces[1:]
    tris = np.array([[a, b, c] for a, b, c, d in faces] + [[a, c, d] for a, b, c, d in faces])
    return Mesh(signs * half + np.asarray(center, dtype=np.float64), tris, material)


def _frame_along(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to ``axis`` and to each other."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(axis, u)


def tube(
    p0: ArrayLike,
    p1: ArrayLike,
    radius0: float,
    radius1: float | None = None,
    segments: int = 8,
    caps: bool = True,
    material: int = 0,
) -> Mesh:
    """A (possibly tapered) cylinder from ``p0`` to ``p1``: limbs, trunks, poles, bicycle tubes."""
    a, b = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    axis = b - a
    length = float(np.linalg.norm(axis))
    if length <= 0:
        raise PerceptionError(f"tube: end points must differ; got {a.tolist()} twice")
    u, v = _frame_along(axis / length)
    ang = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ring = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v
    r1 = radius0 if radius1 is None else radius1
    verts = np.concatenate([a + radius0 * ring, b + r1 * ring])
    tris = quad_strip_triangles(2, segments, wrap=True)
    parts = [Mesh(verts, tris, material)]
    if caps:
        fan = np.arange(1, segments - 1)
        bottom = np.stack([np.zeros_like(fan), fan + 1, fan], 1)
        top = np.stack([np.zeros_like(fan), fan, fan + 1], 1) + segments
        parts.append(Mesh(verts, np.concatenate([bottom, top]), material))
    return Mesh.concat(parts)


def _icosahedron() -> tuple[np.ndarray, np.ndarray]:
    g = (1.0 + 5**0.5) / 2.0
    verts = np.array(
        [[-1, g, 0], [1, g, 0], [-1, -g, 0], [1, -g, 0], [0, -1, g], [0, 1, g],
         [0, -1, -g], [0, 1, -g], [g, 0, -1], [g, 0, 1], [-g, 0, -1], [-g, 0, 1]],
        dtype=np.float64,
    )  # fmt: skip
    tris = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
         [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
         [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]],
    )  # fmt: skip
    return verts / np.linalg.norm(verts, axis=1, keepdims=True), tris


def _subdivide(verts: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split every triangle into four, projecting the new edge midpoints onto the unit sphere."""
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    unique, inverse = np.unique(edges, axis=0, return_inverse=True)
    mids = verts[unique[:, 0]] + verts[unique[:, 1]]
    mids /= np.linalg.norm(mids, axis=1, keepdims=True)
    m = inverse.reshape(3, -1).T + len(verts)  # midpoint index of edges (01, 12, 20) per triangle
    a, b, c = tris.T
    new = np.concatenate(
        [np.stack([a, m[:, 0], m[:, 2]], 1), np.stack([b, m[:, 1], m[:, 0]], 1),
         np.stack([c, m[:, 2], m[:, 1]], 1), m],
    )  # fmt: skip
    return np.concatenate([verts, mids]), new


_SPHERES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def unit_sphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of an icosphere (20 * 4**subdivisions triangles), cached."""
    if subdivisions not in _SPHERES:
        verts, tris = _icosahedron()
        for _ in range(subdivisions):
            verts, tris = _subdivide(verts, tris)
        _SPHERES[subdivisions] = (verts, tris)
    return _SPHERES[subdivisions]


def ellipsoid(
    center: ArrayLike,
    radii: ArrayLike,
    subdivisions: int = 1,
    material: int = 0,
    roughness: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Mesh:
    """An icosphere scaled to ``radii``; ``roughness`` jitters each vertex radially (foliage, rocks)."""
    verts, tris = unit_sphere(subdivisions)
    scale = np.ones(len(verts))
    if roughness > 0:
        if rng is None:
            raise PerceptionError("ellipsoid: roughness > 0 needs an rng for reproducible jitter")
        scale = 1.0 + rng.uniform(-roughness, roughness, len(verts))
    return Mesh(verts * scale[:, None] * np.asarray(radii) + np.asarray(center), tris, material)


def torus(major: float, minor: float, major_segments: int = 16, minor_segments: int = 4, material: int = 0) -> Mesh:
    """A torus in the x-z plane around the y axis (a wheel's tyre rolling along x)."""
    u = np.linspace(0, 2 * np.pi, major_segments, endpoint=False)
    v = np.linspace(0, 2 * np.pi, minor_segments, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    rad = major + minor * np.cos(vv)
    verts = np.stack([rad * np.cos(uu), minor * np.sin(vv), rad * np.sin(uu)], axis=-1).reshape(-1, 3)
    tris = quad_strip_triangles(major_segments + 1, minor_segments, wrap=True)
    # the strip has one extra row: map it back onto row 0 to close the ring
    tris = tris % (major_segments * minor_segments)
    return Mesh(verts, tris, material)


def wheel(radius: float, width: float, segments: int = 12, material: int = 0) -> Mesh:
    """A closed cylinder along y centred at the origin (a car wheel)."""
    return tube((0, -width / 2, 0), (0, width / 2, 0), radius, segments=segments, material=material)


def quads(corners: np.ndarray, material: ArrayLike) -> Mesh:
    """Quads (N, 4, 3), each counter-clockwise seen from its front, as one mesh."""
    n = len(corners)
    base = 4 * np.arange(n)[:, None]
    tris = np.concatenate([base + np.array([0, 1, 2]), base + np.array([0, 2, 3])])
    mats = np.broadcast_to(np.asarray(material, dtype=np.uint8), (n,))
    return Mesh(corners.reshape(-1, 3), tris, np.concatenate([mats, mats]))
