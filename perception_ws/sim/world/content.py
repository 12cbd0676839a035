"""The street content added on top of the v1 street: hard negatives, parked bicycles, extra people.

Real KITTI frames taught the model's mistakes: people predicted on poles, trunks and walls, cars on
hedges and walls, because the simulated streets rarely showed those shapes near people's height, nor
people beside them. Three steps fill that gap, each scaled by its density in :class:`SceneConfig`
(0 switches it off, and then it draws nothing, so a v1 scene stays as it was):

- ``street_furniture``: every 8-20 m per side (at density 1) a bollard row, a post box, a hydrant, a
  parking meter, a person-height sign post, a young tree, a traffic light, a bus shelter, a garden wall
  or a hedge along the sidewalk (:mod:`perception_ws.sim.world.furniture`, ``nature``, ``street``);
- ``parked_bicycles``: stands of 1-3 bicycles without riders, at the curb or against the back of the
  sidewalk (never a KITTI-3 cyclist);
- ``extra_people``: groups of 2-4 close together (children among them), people standing beside walls,
  fences, poles, trunks and parked cars, and people carrying things (:mod:`perception_ws.sim.world.carrying`).

They run after everything else, so they take the space that is still free.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim.world.assets import Asset
from perception_ws.sim.world.builder import NEAR_EGO_X, SceneBuilder, actor_x, along_x
from perception_ws.sim.world.carrying import pedestrian_carrying, random_item
from perception_ws.sim.world.footprints import rectangle
from perception_ws.sim.world.furniture import (
    bollard,
    bus_shelter,
    fire_hydrant,
    garden_wall,
    parking_meter,
    post_box,
    traffic_light,
)
from perception_ws.sim.world.nature import hedge, young_tree
from perception_ws.sim.world.people import parked_bicycle, pedestrian
from perception_ws.sim.world.scene import Part
from perception_ws.sim.world.street import sign_post

#: metres between two pieces of street furniture on one side, at density 1 (KITTI's residential streets have
#: a pole or trunk every 5-15 m; the trees and lamp posts of the v1 street add to these)
FURNITURE_SPACING = (8.0, 20.0)
#: which piece of furniture, how often
FURNITURE_MIX: dict[str, float] = {
    "bollards": 0.16,
    "young tree": 0.2,
    "short sign": 0.13,
    "post box": 0.08,
    "fire hydrant": 0.09,
    "parking meter": 0.09,
    "traffic light": 0.07,
    "bus shelter": 0.04,
    "garden wall": 0.07,
    "sidewalk hedge": 0.07,
}
#: people per scene at density 1 (Poisson means): groups, people beside something, people carrying things
GROUPS, BESIDE, CARRIERS = 1.5, 3.0, 2.0
BIKE_STANDS = 3.0
#: children among the extra people (more than the 8 % of the v1 pedestrians: families walk in groups)
CHILD_SHARE = 0.25
#: share of group members and people standing beside things who also carry something
CARRY_SHARE = 0.3
#: classes a person may stand beside (a wall, a fence, a pole, a trunk), besides parked vehicles
ANCHOR_CLASSES = tuple(SEMANTIC_KITTI.id_of(n) for n in ("fence", "pole", "trunk", "building"))


def add_content(b: SceneBuilder) -> None:
    """Add the hard negatives, parked bicycles and extra people of ``b.config`` (nothing at density 0)."""
    if b.config.street_furniture > 0:
        for side in (-1, 1):
            _furniture_side(b, side, b.config.street_furniture)
    if b.config.parked_bicycles > 0:
        _parked_bicycles(b, b.config.parked_bicycles)
    if b.config.extra_people > 0:
        _extra_people(b, b.config.extra_people)


def _pick(b: SceneBuilder, mix: dict[str, float]) -> str:
    names = list(mix)
    weights = np.asarray([mix[n] for n in names])
    return names[int(b.rng.choice(len(names), p=weights / weights.sum()))]


def _furniture_side(b: SceneBuilder, side: int, density: float) -> None:
    lay = b.layout
    i = 0 if side < 0 else 1
    curb = lay.curb_y(side)
    walk_out = curb + side * lay.sidewalk[i]
    toward_road = np.pi / 2 if side < 0 else -np.pi / 2
    spacing = (FURNITURE_SPACING[0] / density, FURNITURE_SPACING[1] / density)
    single: dict[str, Callable[[np.random.Generator, float, float, float, float], list[Part]]] = {
        "post box": post_box,
        "fire hydrant": fire_hydrant,
        "parking meter": parking_meter,
        "traffic light": traffic_light,
    }

    def put(x: float, y: float, size: float, build: Callable[[float, float], list[Part]]) -> None:
        if b.space.claim(rectangle(x, y, size, size, 0.0)):
            b.stuff(build(x, y))

    def place(x: float) -> None:
        what = _pick(b, FURNITURE_MIX)
        at_curb = curb + side * b.uniform(0.3, 0.6)
        at_back = walk_out - side * b.uniform(0.4, 0.8)
        if what == "bollards":
            count, step = int(b.rng.integers(2, 6)), b.uniform(1.2, 2.0)
            for k in range(count):
                put(x + k * step, at_curb, 0.3, lambda px, py: bollard(b.rng, px, py, b.z(px, py), toward_road))
        elif what == "young tree":
            put(x, at_curb, 0.6, lambda px, py: young_tree(b.rng, px, py, b.z(px, py)))
        elif what == "short sign":
            facing = np.pi if side < 0 else 0.0
            put(
                x, at_curb, 0.5,
                lambda px, py: sign_post(b.rng, px, py, b.z(px, py), facing, (1.6, 2.2), "short sign post"),
            )  # fmt: skip
        elif what in single:
            y = at_back if what == "post box" and b.rng.random() < 0.5 else at_curb
            put(x, y, 0.6, lambda px, py: single[what](b.rng, px, py, b.z(px, py), toward_road))
        elif what == "bus shelter":
            y = walk_out - side * 1.0
            if lay.sidewalk[i] > 2.0 and b.space.claim(rectangle(x, y, 4.7, 1.8, 0.0)):
                b.stuff(bus_shelter(b.rng, x, y, b.z(x, y), toward_road + np.pi / 2))
        else:  # a garden wall or a hedge along the back of the sidewalk
            x1 = min(x + b.uniform(4.0, 12.0), lay.x_max)
            y = walk_out + side * 0.2
            if lay.in_cross_street(np.array([x, x1]), 1.0).any():
                return
            if b.space.claim(rectangle((x + x1) / 2, y, x1 - x, 0.5, 0.0)):
                z = b.z(x, y)
                b.stuff(garden_wall(b.rng, x, x1, y, z) if what == "garden wall" else [hedge(b.rng, x, x1, y, z)])

    along_x(b, spacing, place)


def _parked_bicycles(b: SceneBuilder, density: float) -> None:
    lay = b.layout
    for _ in range(int(b.rng.poisson(BIKE_STANDS * density))):
        side = -1 if b.rng.random() < 0.5 else 1
        i = 0 if side < 0 else 1
        x = actor_x(b, 4.0)
        if b.rng.random() < 0.5:  # a rack at the curb, bikes across the sidewalk
            y, yaw, step = lay.curb_y(side) + side * 1.1, np.pi / 2, np.array([0.75, 0.0])
        else:  # leaning against the wall or fence at the back of the sidewalk, along it
            y, yaw = lay.curb_y(side) + side * (lay.sidewalk[i] - 0.45), 0.0
            step = np.array([1.9, 0.0])
        yaw += float(b.rng.choice([0.0, np.pi])) + float(b.rng.normal(0.0, 0.08))
        for k in range(int(b.rng.integers(1, 4))):
            b.actor(parked_bicycle(b.rng), x + k * step[0], y + k * step[1], yaw, margin=0.02)


def _person(b: SceneBuilder, walking: bool, kind: str) -> Asset:
    """An extra person: a child now and then, carrying something now and then; ``kind`` names why it is there."""
    if b.rng.random() < CARRY_SHARE:
        return pedestrian_carrying(b.rng, random_item(b.rng), CHILD_SHARE)
    asset = pedestrian(b.rng, walking, CHILD_SHARE)
    asset.parts[0].kind = f"{asset.parts[0].kind} {kind}"
    return asset


def _sidewalk_y(b: SceneBuilder, side: int) -> float:
    i = 0 if side < 0 else 1
    return b.layout.curb_y(side) + side * b.uniform(0.5, max(b.layout.sidewalk[i] - 0.5, 0.6))


def _extra_people(b: SceneBuilder, density: float) -> None:
    for _ in range(int(b.rng.poisson(GROUPS * density))):
        _group(b)
    anchors = _anchors(b)
    for _ in range(int(b.rng.poisson(BESIDE * density)) if anchors else 0):
        for _attempt in range(5):  # the space in front of an anchor is often taken: try another
            if _beside(b, anchors[int(b.rng.integers(len(anchors)))]):
                break
    for _ in range(int(b.rng.poisson(CARRIERS * density))):
        side = -1 if b.rng.random() < 0.5 else 1
        walking = bool(b.rng.random() < 0.7)
        yaw = float(b.rng.choice([0.0, np.pi])) + float(b.rng.normal(0, 0.2))
        asset = pedestrian_carrying(b.rng, random_item(b.rng), CHILD_SHARE)
        b.actor(asset, actor_x(b, 3.0), _sidewalk_y(b, side), yaw, b.uniform(0.8, 1.4) if walking else 0.0, 0.1)


def _group(b: SceneBuilder) -> None:
    """2-4 people within a metre or two of each other: walking side by side, or standing facing one another."""
    side = -1 if b.rng.random() < 0.5 else 1
    x, y = actor_x(b, 3.0), _sidewalk_y(b, side)
    walking = bool(b.rng.random() < 0.5)
    heading = float(b.rng.choice([0.0, np.pi]))
    speed = b.uniform(0.8, 1.4) if walking else 0.0
    members = int(b.rng.integers(2, 5))
    for k in range(members):
        if walking:  # abreast and staggered a little
            dx, dy = b.uniform(-0.4, 0.4), (k - (members - 1) / 2) * b.uniform(0.55, 0.8)
            yaw = heading + float(b.rng.normal(0, 0.05))
        else:  # in a circle, each facing its middle
            angle = 2 * np.pi * k / members + b.uniform(-0.3, 0.3)
            radius = b.uniform(0.5, 0.8)
            dx, dy = radius * np.cos(angle), radius * np.sin(angle)
            yaw = angle + np.pi
        b.actor(_person(b, walking, "in a group"), x + dx, y + dy, yaw, speed, margin=0.02)


#: (x range, y edge facing the road, which side of the street, what it is)
Anchor = tuple[tuple[float, float], float, int, str]


def _anchors(b: SceneBuilder) -> list[Anchor]:
    """Things near the sensor's stretch of street a person may stand beside: walls, fences, poles, trunks, and
    parked vehicles.
    """
    out: list[Anchor] = []
    for part in b.scene.parts:
        if part.semantic not in ANCHOR_CLASSES or not len(part.mesh):
            continue
        verts = part.mesh.vertices
        low = verts[verts[:, 2] < verts[:, 2].min() + 2.0]  # what stands at a person's height, not the crown
        lo, hi = low.min(axis=0), low.max(axis=0)
        if hi[0] < -NEAR_EGO_X or lo[0] > NEAR_EGO_X or lo[1] < 0 < hi[1]:
            continue  # far away, or across the road (a side-street building)
        side = 1 if lo[1] > 0 else -1
        edge = float(lo[1] if side > 0 else hi[1])
        out.append(((max(float(lo[0]), -NEAR_EGO_X), min(float(hi[0]), NEAR_EGO_X)), edge, side, part.kind or "wall"))
    for actor in b.scene.actors:
        box = actor.box
        if np.any(box.velocity) or box.name not in ("Car", "Van", "Truck") or abs(box.center[0]) > NEAR_EGO_X:
            continue
        side = 1 if box.center[1] > 0 else -1
        edge = float(box.center[1] + side * box.size[1] / 2)  # the sidewalk side of the car
        half = float(box.size[0]) / 2
        out.append(((float(box.center[0]) - half, float(box.center[0]) + half), edge, -side, "parked car"))
    return out


def _beside(b: SceneBuilder, anchor: Anchor) -> bool:
    """A person standing just in front of ``anchor``, facing the street or along it; whether one was placed."""
    (x0, x1), edge, side, what = anchor
    x = b.uniform(x0, max(x1, x0 + 1e-3))
    y = edge - side * b.uniform(0.45, 0.8)  # towards the road from the anchor's road-side edge
    yaw = -side * np.pi / 2 + b.uniform(-1.2, 1.2)  # facing the road, give or take
    return b.actor(_person(b, False, f"by {what}"), x, y, yaw, margin=0.02) is not None
