"""People carrying things: an umbrella, a shopping bag, a backpack, or pushing a stroller or a trolley.

The class rules decide where the carried thing goes. What a person wears or holds in the hand (umbrella,
bag, backpack) moves with the body and sits inside the tight box an annotator draws round the person, so
it is SemanticKITTI ``person`` and part of the person's instance (KITTI-3 pedestrian). A stroller or a
trolley stands on its own wheels, outside the person's box: SemanticKITTI labels it ``other-object``,
which is no learning class (unlabelled, id 0) and no KITTI-3 object, so it is a part with instance 0 that
moves with the person's actor (``Part.in_instance=False``) and stays out of the person's box.
"""

from __future__ import annotations

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim.world.assets import Asset
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import Mesh, box, ellipsoid, torus, tube
from perception_ws.sim.world.people import backpack, person_asset, person_body
from perception_ws.sim.world.scene import Part

#: what a person may carry, and how often (of the people who carry something)
CARRIED_ITEMS: dict[str, float] = {"umbrella": 0.3, "bag": 0.3, "backpack": 0.15, "stroller": 0.15, "trolley": 0.1}


def random_item(rng: np.random.Generator) -> str:
    """One of :data:`CARRIED_ITEMS`, drawn with its weight."""
    names = list(CARRIED_ITEMS)
    weights = np.asarray([CARRIED_ITEMS[n] for n in names])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def umbrella(handle: np.ndarray, top_z: float, radius: float) -> Mesh:
    """An open umbrella: a shaft from ``handle`` up to a flat canopy of ``radius`` centred at ``top_z``."""
    tip = np.array([handle[0] - 0.05, handle[1] * 0.4, top_z])
    return Mesh.concat(
        [
            tube(handle, tip, 0.012, segments=5, material=Mat.METAL),
            ellipsoid(tip - [0, 0, 0.08], (radius, radius, 0.16), 1, Mat.CLOTH_DARK),
        ]
    )


def shopping_bag(hand: np.ndarray, rng: np.random.Generator) -> Mesh:
    """A bag hanging from ``hand``."""
    size = np.array([rng.uniform(0.1, 0.18), rng.uniform(0.3, 0.42), rng.uniform(0.3, 0.42)])
    return box(size, hand - [0.0, 0.0, size[2] / 2 + 0.03], Mat.CLOTH_LIGHT if rng.random() < 0.5 else Mat.CLOTH_DARK)


def _wheels(xs: tuple[float, float], half_track: float, radius: float) -> Mesh:
    return Mesh.concat(
        [
            torus(radius, 0.025, 10, 4, Mat.RUBBER).transformed(translation=(x, side * half_track, radius))
            for x in xs
            for side in (-1.0, 1.0)
        ]
    )


def stroller(bar: np.ndarray, rng: np.random.Generator) -> Mesh:
    """A pram ahead of the bar at ``bar`` (its middle): a hooded basket on a frame and four wheels."""
    length = rng.uniform(0.7, 0.9)
    x0 = bar[0] + 0.1  # the basket's back edge
    basket_z = rng.uniform(0.45, 0.6)
    half = 0.24
    return Mesh.concat(
        [
            box((length, 2 * half, 0.35), (x0 + length / 2, 0.0, basket_z + 0.175), Mat.CLOTH_DARK),
            ellipsoid((x0 + 0.2, 0.0, basket_z + 0.4), (0.25, half, 0.22), 1, Mat.CLOTH_DARK),  # the hood
            tube(bar + np.array([0, -half, 0]), (x0, -half, basket_z), 0.015, segments=5, material=Mat.METAL),
            tube(bar + np.array([0, half, 0]), (x0, half, basket_z), 0.015, segments=5, material=Mat.METAL),
            tube(bar + np.array([0, -half, 0]), bar + np.array([0, half, 0]), 0.015, segments=5, material=Mat.METAL),
            _wheels((x0 + 0.05, x0 + length - 0.05), half - 0.03, 0.13),
        ]
    )


def trolley(bar: np.ndarray, rng: np.random.Generator) -> Mesh:
    """A shopping trolley ahead of the bar: a metal basket high on a wheeled chassis."""
    length = rng.uniform(0.7, 0.95)
    x0 = bar[0] + 0.08
    half = 0.27
    return Mesh.concat(
        [
            box((length, 2 * half, 0.45), (x0 + length / 2, 0.0, bar[2] - 0.2), Mat.METAL),
            box((length * 0.9, 0.45, 0.04), (x0 + length / 2, 0.0, 0.2), Mat.METAL),  # the lower shelf
            tube(bar + np.array([0, -half, 0]), bar + np.array([0, half, 0]), 0.015, segments=5, material=Mat.METAL),
            _wheels((x0 + 0.05, x0 + length - 0.05), half - 0.05, 0.06),
        ]
    )


def pedestrian_carrying(rng: np.random.Generator, item: str, child_probability: float = 0.08) -> Asset:
    """A person facing +x carrying ``item`` (one of :data:`CARRIED_ITEMS`); pushers walk or stand behind it."""
    if item not in CARRIED_ITEMS:
        raise PerceptionError(f"unknown carried item {item!r}; known: {', '.join(CARRIED_ITEMS)}")
    pushes = item in ("stroller", "trolley")
    # the grips are fixed before the body is drawn, in proportion to an adult: a child pushes from higher up
    bar = np.array([rng.uniform(0.4, 0.5), 0.0, rng.uniform(0.95, 1.05)])
    handle = np.array([rng.uniform(0.25, 0.32), -0.12, rng.uniform(1.15, 1.3)])
    if pushes:
        grips: tuple[np.ndarray | None, np.ndarray | None] = (bar + np.array([0, 0.2, 0]), bar - np.array([0, 0.2, 0]))
    elif item == "umbrella":
        grips = (None, handle)
    else:
        grips = (None, None)
    body = person_body(rng, walking=None, child_probability=0.0 if pushes else child_probability, grips=grips)
    meshes = list(body.meshes)
    carried: list[Part] = []
    if item == "umbrella":
        meshes.append(umbrella(handle, body.build.height + rng.uniform(0.25, 0.4), rng.uniform(0.45, 0.55)))
    elif item == "bag":
        meshes.append(shopping_bag(body.hands[1], rng))
    elif item == "backpack":
        meshes.append(backpack(body.shoulder))
    else:
        thing = stroller(bar, rng) if item == "stroller" else trolley(bar, rng)
        carried.append(Part(mesh=thing, semantic=SEMANTIC_KITTI.id_of("unlabeled"), kind=item, in_instance=False))
    return person_asset(meshes, rng, f"person with {item}", carried)
