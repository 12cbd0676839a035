"""What a simulated scene is: labelled meshes, the objects (actors) they belong to, and where the car drives.

A :class:`Part` is one mesh with one SemanticKITTI class (a tree is two parts: trunk and crown; a
cyclist is a bicycle part and a rider part). Parts of a countable object share its instance id and
KITTI-3 class, and the object itself is an :class:`Actor` with its 3D box. Stuff (road, buildings,
vegetation) has instance 0. Everything is in the world frame (z up, ground near z = 0); the LiDAR
turns it into its own frame.

:meth:`Scene.soup` merges all parts into one triangle soup with per-triangle tables, which is what
the ray casters index: a hit triangle id gives class, instance, material and normal in one lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.sim.world.layout import StreetLayout
from perception_ws.sim.world.materials import ALBEDO, IS_GLASS, IS_RETRO
from perception_ws.sim.world.mesh import Mesh, rotation_z


@dataclass
class Part:
    """One mesh of a scene with its class ids, instance and albedo scale."""

    mesh: Mesh
    semantic: int  # SemanticKITTI learning id
    kitti3: int = 0  # KITTI-3 id (0 for stuff and for objects KITTI-3 does not count, e.g. vans)
    instance: int = 0  # 0 = stuff
    #: multiplies the materials' albedo (a white car against a grey one, fresh against worn paint).
    albedo_scale: float = 1.0
    #: what the part is ("tree", "bollard", "parked bicycle" ...): read by the content audit
    #: (benchmarks/bench_sim_content.py), never by the sensor.
    kind: str = ""
    #: False for a part an object carries along that is not part of it (a stroller a person pushes): it moves
    #: with the object's actor but keeps instance 0 and KITTI-3 unknown, and stays out of the object's box.
    in_instance: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.semantic < len(SEMANTIC_KITTI):
            raise PerceptionError(f"part: semantic id must lie in 0..{len(SEMANTIC_KITTI) - 1}; got {self.semantic}")
        if not 0 <= self.kitti3 < len(KITTI3):
            raise PerceptionError(f"part: KITTI-3 id must lie in 0..{len(KITTI3) - 1}; got {self.kitti3}")


@dataclass
class Actor:
    """A countable object: its instance id, its box in the world frame (with label, name and velocity)."""

    instance: int
    box: Box3D
    parts: list[Part]


@dataclass(frozen=True)
class EgoPose:
    """Where the sensor car stands: position of the point on the ground below the LiDAR, and heading."""

    x: float = 0.0
    y: float = 0.0
    ground_z: float = 0.0
    yaw: float = 0.0

    def matrix(self) -> np.ndarray:
        """4x4 pose of the vehicle frame (on the ground below the LiDAR, x along ``yaw``) in the scene frame."""
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rotation_z(self.yaw), (self.x, self.y, self.ground_z)
        return pose


@dataclass
class TriangleSoup:
    """All triangles of a scene in one array, with one row of every per-triangle table per triangle."""

    vertices: np.ndarray  # (V, 3) float32
    triangles: np.ndarray  # (T, 3) int32
    normals: np.ndarray  # (T, 3) float32 unit face normals
    semantic: np.ndarray  # (T,) uint8
    kitti3: np.ndarray  # (T,) uint8
    instance: np.ndarray  # (T,) uint32
    material: np.ndarray  # (T,) uint8
    albedo: np.ndarray  # (T,) float32
    glass: np.ndarray  # (T,) bool
    retro: np.ndarray  # (T,) bool

    def __len__(self) -> int:
        return len(self.triangles)


@dataclass
class Scene:
    """A generated street: static parts, moving actors, suggested sensor poses and the layout."""

    seed: int
    parts: list[Part] = field(default_factory=list)
    actors: list[Actor] = field(default_factory=list)
    #: suggested sensor poses (the first is the default), along the drivable lane.
    ego_poses: list[EgoPose] = field(default_factory=lambda: [EgoPose()])
    #: the street the scene was laid out on (ground height, lanes, side street), which moving actors
    #: follow (motion.py); None for hand-built scenes.
    layout: StreetLayout | None = None

    def all_parts(self) -> list[Part]:
        return self.parts + [p for a in self.actors for p in a.parts]

    def meshed_parts(self) -> list[Part]:
        """The parts with triangles, in the order :attr:`soup` merges them."""
        return [p for p in self.all_parts() if len(p.mesh)]

    def part_of_triangles(self) -> np.ndarray:
        """(T,) index into :meth:`meshed_parts` of every triangle of :attr:`soup`."""
        counts = [len(p.mesh) for p in self.meshed_parts()]
        return np.repeat(np.arange(len(counts)), counts)

    @cached_property
    def soup(self) -> TriangleSoup:
        """The merged triangle soup (computed once; a scene is not edited after it is built)."""
        parts = self.meshed_parts()
        if not parts:
            raise PerceptionError(f"scene {self.seed}: it has no triangles to cast rays against")
        mesh = Mesh.concat([p.mesh for p in parts])
        counts = np.array([len(p.mesh) for p in parts])

        def per_triangle(values: list[float] | list[int], dtype: type) -> np.ndarray:
            return np.repeat(np.asarray(values, dtype=dtype), counts)

        v = mesh.vertices[mesh.triangles]
        normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = normals / np.maximum(length, 1e-12)
        material = mesh.materials
        return TriangleSoup(
            vertices=mesh.vertices.astype(np.float32),
            triangles=mesh.triangles.astype(np.int32),
            normals=normals.astype(np.float32),
            semantic=per_triangle([p.semantic for p in parts], np.uint8),
            kitti3=per_triangle([p.kitti3 for p in parts], np.uint8),
            instance=per_triangle([p.instance for p in parts], np.uint32),
            material=material,
            albedo=(ALBEDO[material] * per_triangle([p.albedo_scale for p in parts], np.float32)).astype(np.float32),
            glass=IS_GLASS[material],
            retro=IS_RETRO[material],
        )

    def __len__(self) -> int:
        return sum(len(p.mesh) for p in self.all_parts())
