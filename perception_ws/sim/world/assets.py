"""Countable objects before placement: labelled meshes in their own frame, and how they enter a scene.

An :class:`Asset` is built around its own origin (on the ground, x along its heading, y to its
left); :meth:`Asset.place` moves it into the world, hands every part the object's instance id, and
measures its 3D box tightly around the placed mesh, the way annotators draw KITTI boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from perception_ws.boxes import Box3D
from perception_ws.sim.world.mesh import Mesh, rotation_z
from perception_ws.sim.world.scene import Actor, Part


@dataclass
class Asset:
    """A movable object's parts in its own frame (x forward, on the ground), placed into a scene as an actor."""

    parts: list[Part]
    #: KITTI object type: "Car", "Van", "Truck", "Pedestrian", "Cyclist", "Misc" (a parked bicycle).
    name: str
    kitti3: int

    def local_extent(self, instance_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) corners of all parts (or of the parts of the object itself) in the asset frame."""
        parts = [p for p in self.parts if p.in_instance or not instance_only]
        verts = np.concatenate([p.mesh.vertices for p in parts])
        return verts.min(axis=0), verts.max(axis=0)

    def place(
        self, x: float, y: float, z: float, yaw: float, instance: int, velocity: ArrayLike = (0.0, 0.0, 0.0)
    ) -> Actor:
        lo, hi = self.local_extent(instance_only=True)  # the box holds the object, not what it pushes
        rot = rotation_z(yaw)
        center = rot @ ((lo + hi) / 2.0) + np.array([x, y, z])
        box = Box3D(
            center=center,
            size=hi - lo,
            yaw=yaw,
            label=self.kitti3,
            name=self.name,
            track_id=instance,
            velocity=np.asarray(velocity, dtype=np.float64),
        )
        parts = [
            Part(
                mesh=p.mesh.transformed(rot, (x, y, z)),
                semantic=p.semantic,
                kitti3=self.kitti3 if p.in_instance else 0,
                instance=instance if p.in_instance else 0,
                albedo_scale=p.albedo_scale,
                kind=p.kind,
                in_instance=p.in_instance,
            )
            for p in self.parts
        ]
        return Actor(instance=instance, box=box, parts=parts)


def stuff(mesh: Mesh, semantic: int, albedo_scale: float = 1.0, kind: str = "") -> Part:
    """A part with no instance (road, building, vegetation …)."""
    return Part(mesh=mesh, semantic=semantic, albedo_scale=albedo_scale, kind=kind)
