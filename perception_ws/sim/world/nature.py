"""Vegetation: trees (trunk, branches, crown), young trees (a thin trunk, hardly a crown), bushes and hedges.

Foliage is not a closed surface to a laser: beams reach into a crown and come back from leaves at
many depths, and some pass through. So a crown here is a cloud of small rough blobs filling an
ellipsoid (or a cone for conifers) rather than one shell; the gaps between blobs let rays in.
"""

from __future__ import annotations

import numpy as np

from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim.world.assets import stuff
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import Mesh, ellipsoid, tube
from perception_ws.sim.world.scene import Part

_VEGETATION = SEMANTIC_KITTI.id_of("vegetation")
_TRUNK = SEMANTIC_KITTI.id_of("trunk")


def blob_cloud(
    rng: np.random.Generator, center: np.ndarray, radii: np.ndarray, blob: float, fill: float, cone: bool = False
) -> Mesh:
    """Rough blobs of radius about ``blob`` filling the ellipsoid (or upward cone) ``center`` ± ``radii``.

    ``fill`` is the blob volume over the envelope volume: about 1 gives a dense crown with a few gaps.
    """
    envelope = 4 / 3 * np.pi * np.prod(radii) * (0.25 if cone else 1.0)
    count = int(np.clip(fill * envelope / (4 / 3 * np.pi * blob**3), 4, 160))
    # uniform points in the unit ball (or cone), denser towards the surface where leaves are
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    rad = rng.uniform(0.35, 1.0, count) ** 0.5
    local = direction * rad[:, None]
    if cone:  # narrow towards the top: scale the horizontal spread by the height fraction left
        local[:, :2] *= (1.0 - (local[:, 2] + 1.0) / 2.0)[:, None] * 1.6
    sizes = blob * rng.uniform(0.6, 1.3, count)
    blobs = [
        ellipsoid(center + p * radii, (s, s, s * 0.8), 0, Mat.FOLIAGE, roughness=0.3, rng=rng)
        for p, s in zip(local, sizes, strict=True)
    ]
    return Mesh.concat(blobs)


def tree(rng: np.random.Generator, x: float, y: float, z: float, conifer: bool | None = None) -> list[Part]:
    """A street tree standing at (x, y, z): trunk and branches (trunk) and crown (vegetation)."""
    conifer = bool(rng.random() < 0.15) if conifer is None else conifer
    trunk_h = rng.uniform(1.8, 3.5)
    trunk_r = rng.uniform(0.1, 0.28)
    crown_r = rng.uniform(1.8, 4.5)
    crown_h = crown_r * rng.uniform(1.3, 2.2) * (1.6 if conifer else 1.0)
    base = np.array([x, y, z])
    top = base + np.array([rng.normal(0, 0.1), rng.normal(0, 0.1), trunk_h + 0.4 * crown_h])
    wood = [tube(base - [0, 0, 0.2], top, trunk_r, trunk_r * 0.6, segments=8, material=Mat.BARK)]
    for _ in range(int(rng.integers(2, 5))):  # a few branches forking into the crown
        angle = rng.uniform(0, 2 * np.pi)
        start = base + np.array([0.0, 0.0, trunk_h * rng.uniform(0.8, 1.0)])
        reach = crown_r * rng.uniform(0.4, 0.7)
        end = start + np.array([reach * np.cos(angle), reach * np.sin(angle), crown_h * rng.uniform(0.2, 0.45)])
        wood.append(tube(start, end, trunk_r * 0.45, trunk_r * 0.2, segments=5, caps=False, material=Mat.BARK))
    center = base + np.array([0.0, 0.0, trunk_h + crown_h / 2])
    radii = np.array([crown_r, crown_r * rng.uniform(0.85, 1.0), crown_h / 2])
    crown = blob_cloud(rng, center, radii, blob=max(0.35, crown_r / 4.5), fill=1.1, cone=conifer)
    return [
        stuff(Mesh.concat(wood), _TRUNK, float(rng.uniform(0.8, 1.2)), kind="tree"),
        stuff(crown, _VEGETATION, float(rng.uniform(0.7, 1.2)), kind="tree"),
    ]


def young_tree(rng: np.random.Generator, x: float, y: float, z: float) -> list[Part]:
    """A newly planted street tree: a trunk as thin as a person's limb, tied to a stake, a few twigs at the top
    and at most a sparse small crown. At people's height it is a bare vertical stick, which a real scan shows
    every few metres along residential streets (SemanticKITTI ``trunk``, the twigs' leaves ``vegetation``).
    """
    height = rng.uniform(2.2, 4.0)
    radius = rng.uniform(0.03, 0.07)
    base = np.array([x, y, z])
    top = base + np.array([rng.normal(0, 0.04), rng.normal(0, 0.04), height])
    wood = [tube(base - [0, 0, 0.1], top, radius, radius * 0.5, segments=6, material=Mat.BARK)]
    if rng.random() < 0.7:  # a wooden stake beside the trunk
        stake = base + np.array([0.15, 0.0, 0.0])
        wood.append(tube(stake, stake + np.array([0, 0, rng.uniform(1.2, 1.8)]), 0.03, segments=5, material=Mat.WOOD))
    for _ in range(int(rng.integers(2, 6))):
        angle = rng.uniform(0, 2 * np.pi)
        start = base + np.array([0.0, 0.0, height * rng.uniform(0.6, 0.9)])
        reach = rng.uniform(0.3, 0.9)
        end = start + np.array([reach * np.cos(angle), reach * np.sin(angle), rng.uniform(0.3, 0.8)])
        wood.append(tube(start, end, radius * 0.4, radius * 0.15, segments=4, caps=False, material=Mat.BARK))
    parts = [stuff(Mesh.concat(wood), _TRUNK, float(rng.uniform(0.8, 1.2)), kind="young tree")]
    if rng.random() < 0.5:
        r = rng.uniform(0.4, 0.9)
        crown = blob_cloud(rng, top - [0, 0, 0.3 * r], np.array([r, r, r * 1.2]), blob=0.2, fill=0.5)
        parts.append(stuff(crown, _VEGETATION, float(rng.uniform(0.7, 1.2)), kind="young tree"))
    return parts


def bush(rng: np.random.Generator, x: float, y: float, z: float) -> Part:
    """A bush of 0.5-2 m."""
    r = rng.uniform(0.4, 1.2)
    h = rng.uniform(0.5, 1.8)
    center = np.array([x, y, z + h / 2])
    crown = blob_cloud(rng, center, np.array([r, r * rng.uniform(0.7, 1.0), h / 2]), blob=max(0.2, r / 3), fill=1.3)
    return stuff(crown, _VEGETATION, float(rng.uniform(0.7, 1.2)), kind="bush")


def hedge(rng: np.random.Generator, x0: float, x1: float, y: float, z: float) -> Part:
    """A trimmed hedge along x from ``x0`` to ``x1``, centred on ``y``: a row of dense overlapping blobs."""
    h = rng.uniform(0.8, 2.0)
    depth = rng.uniform(0.5, 1.0)
    step = depth * 0.7
    xs = np.arange(x0 + step / 2, x1, step)
    blobs = [
        ellipsoid((xi, y, z + h / 2), (step * 0.9, depth / 2, h / 2), 1, Mat.FOLIAGE, roughness=0.12, rng=rng)
        for xi in xs
    ]
    return stuff(Mesh.concat(blobs), _VEGETATION, float(rng.uniform(0.7, 1.1)), kind="hedge")
