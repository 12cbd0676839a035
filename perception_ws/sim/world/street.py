"""Street furniture: lamp posts, sign posts, fences, walls, and small clutter (bins, benches, bollards).

Poles are SemanticKITTI ``pole``, sign plates ``traffic-sign`` (retro-reflective: the brightest
returns of a real scan), fences and garden walls ``fence``, and clutter ``unlabeled`` (SemanticKITTI's
"other-object" is not a learning class).
"""

from __future__ import annotations

import numpy as np

from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim.world.assets import stuff
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import Mesh, box, rotation_x, rotation_z, tube
from perception_ws.sim.world.scene import Part

_POLE = SEMANTIC_KITTI.id_of("pole")
_SIGN = SEMANTIC_KITTI.id_of("traffic-sign")
_FENCE = SEMANTIC_KITTI.id_of("fence")
_OTHER = SEMANTIC_KITTI.id_of("unlabeled")


def lamp_post(rng: np.random.Generator, x: float, y: float, z: float, toward_road: float) -> list[Part]:
    """A street light: a pole with an arm reaching over the road in direction ``toward_road`` (radians)."""
    h = rng.uniform(5.0, 9.0)
    r = rng.uniform(0.07, 0.13)
    base = np.array([x, y, z])
    top = base + np.array([0.0, 0.0, h])
    reach = rng.uniform(0.5, 2.0)
    head = top + np.array([reach * np.cos(toward_road), reach * np.sin(toward_road), -0.1])
    mesh = Mesh.concat(
        [
            tube(base, top, r, r * 0.6, segments=8, material=Mat.METAL),
            tube(top - [0, 0, 0.3], head, r * 0.4, segments=5, material=Mat.METAL),
            box((0.6, 0.25, 0.15), material=Mat.METAL).placed(head[0], head[1], head[2], toward_road),
        ]
    )
    return [stuff(mesh, _POLE, float(rng.uniform(0.7, 1.3)), kind="lamp post")]


def sign_post(
    rng: np.random.Generator,
    x: float,
    y: float,
    z: float,
    facing: float,
    height: tuple[float, float] = (2.2, 3.2),
    kind: str = "sign post",
) -> list[Part]:
    """A traffic sign: a thin pole of ``height`` (a range) with one or two plates facing ``facing`` (radians,
    the plate's normal).
    """
    h = rng.uniform(*height)
    r = rng.uniform(0.03, 0.05)
    base = np.array([x, y, z])
    pole = tube(base, base + np.array([0, 0, h]), r, segments=6, material=Mat.METAL)
    plates = []
    for level in range(int(rng.integers(1, 3))):
        size = rng.uniform(0.5, 0.8)
        shape = rng.integers(0, 3)  # 0 square, 1 disc, 2 triangle
        if shape == 1:
            plate = tube((-0.01, 0, 0), (0.01, 0, 0), size / 2, segments=12, material=Mat.SIGN)
        elif shape == 2:
            s = size / 2
            verts = np.array([[0, -s, -s * 0.8], [0, s, -s * 0.8], [0, 0, s * 0.9]])
            plate = Mesh(verts, np.array([[0, 1, 2], [0, 2, 1]]), Mat.SIGN)
        else:
            plate = box((0.02, size, size), material=Mat.SIGN)
        center = base + np.array([0.0, 0.0, h - size / 2 - level * (size + 0.1)])
        # only the face is retro-reflective sheeting; the back and the rim are bare metal
        normals = np.cross(
            *np.swapaxes(plate.vertices[plate.triangles][:, 1:] - plate.vertices[plate.triangles][:, :1], 0, 1)
        )
        face = normals[:, 0] > 1e-9 * np.abs(normals).max()
        plate = Mesh(plate.vertices, plate.triangles, np.where(face, Mat.SIGN, Mat.METAL))
        # in front of the pole, as seen from the direction the sign faces
        plate = plate.transformed(
            rotation_z(facing), center + (r + 0.02) * np.array([np.cos(facing), np.sin(facing), 0])
        )
        plates.append(plate)
    return [stuff(pole, _POLE, kind=kind), stuff(Mesh.concat(plates), _SIGN, float(rng.uniform(0.7, 1.2)), kind=kind)]


def fence(rng: np.random.Generator, x0: float, x1: float, y: float, z: float) -> Part:
    """A fence along x from ``x0`` to ``x1`` at ``y``: a solid wall, a picket fence, or posts and rails."""
    kind = rng.choice(["wall", "picket", "rails"], p=[0.4, 0.35, 0.25])
    length = x1 - x0
    mid = (x0 + x1) / 2
    if kind == "wall":
        h, t = rng.uniform(0.5, 1.8), rng.uniform(0.15, 0.3)
        mat = Mat.BRICK if rng.random() < 0.5 else Mat.CONCRETE
        mesh = box((length, t, h), (mid, y, z + h / 2), mat, bottom=False)
        return stuff(mesh, _FENCE, float(rng.uniform(0.7, 1.3)), kind="wall")
    h = rng.uniform(0.9, 1.8)
    post_step = rng.uniform(2.0, 3.0)
    posts = np.arange(x0, x1 + 1e-6, post_step)
    mat = Mat.WOOD if kind == "picket" else Mat.METAL
    parts = [box((0.08, 0.08, h), (px, y, z + h / 2), mat, bottom=False) for px in posts]
    for rail_z in (0.25 * h, 0.85 * h):
        parts.append(box((length, 0.04, 0.06), (mid, y + 0.05, z + rail_z), mat))
    if kind == "picket":  # boards with narrow gaps: mostly opaque, slits let some rays through
        width = rng.uniform(0.08, 0.12)
        gap = rng.uniform(0.03, 0.08)
        boards = np.arange(x0 + width / 2, x1, width + gap)
        parts += [box((width, 0.02, h * 0.95), (bx, y + 0.09, z + h * 0.95 / 2), mat, bottom=False) for bx in boards]
    return stuff(Mesh.concat(parts), _FENCE, float(rng.uniform(0.7, 1.3)), kind=f"{kind} fence")


def clutter(rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> Part:
    """A small unlabelled object: a wheelie bin, a bench, a bollard or a utility box."""
    kind = int(rng.integers(0, 4))
    if kind == 0:
        mesh = box((0.7, 0.6, 1.05), (0, 0, 0.525), Mat.METAL, bottom=False)
    elif kind == 1:
        seat = box((1.8, 0.45, 0.06), (0, 0, 0.45), Mat.WOOD)
        back = box((1.8, 0.05, 0.4), (0, 0.22, 0.0), Mat.WOOD).transformed(rotation_x(-0.2), (0, 0, 0.75))
        legs = [box((0.06, 0.4, 0.45), (lx, 0, 0.225), Mat.METAL, bottom=False) for lx in (-0.8, 0.8)]
        mesh = Mesh.concat([seat, back, *legs])
    elif kind == 2:
        mesh = tube((0, 0, 0), (0, 0, 0.9), 0.08, segments=8, material=Mat.METAL)
    else:
        mesh = box((0.8, 0.4, 1.3), (0, 0, 0.65), Mat.METAL, bottom=False)
    name = ("bin", "bench", "bollard", "utility box")[kind]
    return stuff(mesh.placed(x, y, z, yaw), _OTHER, float(rng.uniform(0.5, 1.5)), kind=name)
