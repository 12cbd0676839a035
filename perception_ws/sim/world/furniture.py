"""Hard negatives at people's height: the narrow upright things a real street has every few metres.

A segmenter that has only seen people standing on an empty sidewalk learns "a vertical thing 0.3-0.8 m
wide and 1-2 m tall" for a person; on real KITTI frames it then labels poles, trunks and post boxes as
people. These builders put those shapes into the simulated streets with their true classes:

======================  ===========================================================================
object                  SemanticKITTI class (learning id; KITTI-3 unknown for all)
======================  ===========================================================================
bollard, post box,      ``other-object`` -> unlabelled (0): SemanticKITTI's catch-all for street
fire hydrant            objects, not a learning class
parking meter           its post ``pole``, its head ``other-object`` (unlabelled)
traffic-light pole      its pole ``pole``, the signal heads ``traffic-sign`` (SemanticKITTI has no
                        traffic-light class; this project files the heads with the signs)
bus shelter             ``other-structure`` -> unlabelled (0); its panels are glass
garden wall             ``fence`` (as the walls of :func:`perception_ws.sim.world.street.fence`)
======================  ===========================================================================

Each builder takes (rng, x, y, z, yaw) and returns the parts in the world frame; ``yaw`` is the way the
object faces (towards the road).
"""

from __future__ import annotations

import numpy as np

from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim.world.assets import stuff
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import Mesh, box, ellipsoid, tube
from perception_ws.sim.world.scene import Part

_POLE = SEMANTIC_KITTI.id_of("pole")
_SIGN = SEMANTIC_KITTI.id_of("traffic-sign")
_FENCE = SEMANTIC_KITTI.id_of("fence")
_OTHER = SEMANTIC_KITTI.id_of("unlabeled")


def _shade(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.5, 1.5))


def bollard(rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> list[Part]:
    """A post of 0.7-1.1 m that keeps cars off the sidewalk (round, or square with a cap)."""
    height, radius = rng.uniform(0.7, 1.1), rng.uniform(0.05, 0.12)
    if rng.random() < 0.6:
        mesh = Mesh.concat(
            [
                tube((0, 0, 0), (0, 0, height), radius, segments=8, material=Mat.METAL),
                ellipsoid((0, 0, height), (radius, radius, radius * 0.6), 0, Mat.METAL),
            ]
        )
    else:
        mesh = box((2 * radius, 2 * radius, height), (0, 0, height / 2), Mat.CONCRETE, bottom=False)
    return [stuff(mesh.placed(x, y, z, yaw), _OTHER, _shade(rng), kind="bollard")]


def post_box(rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> list[Part]:
    """A mailbox: a round pillar box or a box on a post, 1.1-1.6 m tall."""
    if rng.random() < 0.5:
        height, radius = rng.uniform(1.3, 1.6), rng.uniform(0.22, 0.3)
        mesh = Mesh.concat(
            [
                tube((0, 0, 0), (0, 0, height), radius, segments=10, material=Mat.METAL),
                ellipsoid((0, 0, height), (radius * 1.05, radius * 1.05, 0.1), 0, Mat.METAL),
            ]
        )
    else:
        height = rng.uniform(1.1, 1.4)
        mesh = Mesh.concat(
            [
                tube((0, 0, 0), (0, 0, height - 0.5), 0.05, segments=6, material=Mat.METAL),
                box((0.35, 0.5, 0.55), (0, 0, height - 0.27), Mat.METAL),
            ]
        )
    return [stuff(mesh.placed(x, y, z, yaw), _OTHER, _shade(rng), kind="post box")]


def fire_hydrant(rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> list[Part]:
    """A pillar hydrant of 0.6-0.9 m: a barrel, a domed cap and two side outlets."""
    height, radius = rng.uniform(0.6, 0.9), rng.uniform(0.1, 0.14)
    outlet_z = height * 0.65
    mesh = Mesh.concat(
        [
            tube((0, 0, 0), (0, 0, height), radius, segments=8, material=Mat.METAL),
            ellipsoid((0, 0, height), (radius, radius, radius * 0.7), 0, Mat.METAL),
            tube((0, -radius - 0.08, outlet_z), (0, radius + 0.08, outlet_z), 0.05, segments=6, material=Mat.METAL),
        ]
    )
    return [stuff(mesh.placed(x, y, z, yaw), _OTHER, _shade(rng), kind="fire hydrant")]


def parking_meter(rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> list[Part]:
    """A parking meter or ticket machine: a post with a head at chest height."""
    height = rng.uniform(1.1, 1.4)
    post = tube((0, 0, 0), (0, 0, height), rng.uniform(0.035, 0.06), segments=6, material=Mat.METAL)
    head_size = (rng.uniform(0.15, 0.35), rng.uniform(0.2, 0.45), rng.uniform(0.3, 0.6))
    head = box(head_size, (0, 0, height + head_size[2] / 2 - 0.05), Mat.METAL)
    return [
        stuff(post.placed(x, y, z, yaw), _POLE, kind="parking meter"),
        stuff(head.placed(x, y, z, yaw), _OTHER, _shade(rng), kind="parking meter"),
    ]


def traffic_light(rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> list[Part]:
    """A traffic-light pole of 3-4.5 m with a signal head on top and, often, a pedestrian signal at 2.2 m."""
    height, radius = rng.uniform(3.0, 4.5), rng.uniform(0.06, 0.11)
    pole = tube((0, 0, 0), (0, 0, height), radius, segments=8, material=Mat.METAL)
    head_h = rng.uniform(0.8, 1.05)
    heads = [box((0.25, 0.35, head_h), (radius + 0.13, 0, height - head_h / 2 + 0.1), Mat.METAL)]
    if rng.random() < 0.6:
        heads.append(box((0.2, 0.3, 0.55), (radius + 0.1, 0, 2.2), Mat.METAL))
    return [
        stuff(pole.placed(x, y, z, yaw), _POLE, kind="traffic light"),
        stuff(Mesh.concat(heads).placed(x, y, z, yaw), _SIGN, _shade(rng), kind="traffic light"),
    ]


def bus_shelter(rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> list[Part]:
    """A bus shelter open towards the road (+x of its frame): four posts, a roof, glass back and side panels,
    a bench inside.
    """
    length, depth, height = rng.uniform(3.0, 4.5), rng.uniform(1.2, 1.6), rng.uniform(2.3, 2.6)
    posts = [
        tube((px, py, 0), (px, py, height), 0.04, segments=6, material=Mat.METAL)
        for px in (-depth / 2, depth / 2)
        for py in (-length / 2, length / 2)
    ]
    roof = box((depth + 0.2, length + 0.2, 0.12), (0, 0, height), Mat.METAL)
    panels = [
        box((0.02, length, height - 0.3), (-depth / 2, 0, height / 2 + 0.05), Mat.WINDOW, bottom=False),
        box((depth * 0.7, 0.02, height - 0.3), (-depth * 0.15, -length / 2, height / 2 + 0.05), Mat.WINDOW),
    ]
    bench = box((0.4, length * 0.6, 0.06), (-depth / 2 + 0.3, 0, 0.45), Mat.WOOD)
    mesh = Mesh.concat([*posts, roof, *panels, bench])
    return [stuff(mesh.placed(x, y, z, yaw), _OTHER, _shade(rng), kind="bus shelter")]


def garden_wall(rng: np.random.Generator, x0: float, x1: float, y: float, z: float) -> list[Part]:
    """A low garden wall (0.4-1.1 m, about a person's waist) along x from ``x0`` to ``x1``, with posts now and then."""
    height, thickness = rng.uniform(0.4, 1.1), rng.uniform(0.2, 0.4)
    material = Mat.BRICK if rng.random() < 0.5 else Mat.CONCRETE
    pieces = [box((x1 - x0, thickness, height), ((x0 + x1) / 2, y, z + height / 2), material, bottom=False)]
    if rng.random() < 0.5:  # pillars every few metres stand a little higher, like a person's head over the wall
        for px in np.arange(x0, x1 + 1e-6, rng.uniform(2.5, 4.0)):
            pieces.append(box((0.4, thickness + 0.1, height + 0.3), (px, y, z + (height + 0.3) / 2), material))
    return [stuff(Mesh.concat(pieces), _FENCE, _shade(rng), kind="garden wall")]
