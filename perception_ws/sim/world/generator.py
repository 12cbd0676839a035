"""Procedural urban streets: one seed, one scene, always the same.

:func:`generate_scene` lays out a street (:mod:`perception_ws.sim.world.layout`), builds its ground, lines
it with buildings, trees, hedges, fences, lamp posts, signs and clutter, parks cars along the
curbs, and puts moving cars, cyclists and pedestrians on it; last, :mod:`perception_ws.sim.world.content`
adds hard negatives at people's height, parked bicycles and more people (SceneConfig's densities). The
sensor car drives in a right-hand lane; the scene suggests a few poses along it, so one scene serves several scans.

Every random draw comes from one ``numpy.random.Generator`` seeded by ``seed``, in a fixed order,
so a seed reproduces its scene exactly on any machine.
"""

from __future__ import annotations

import numpy as np

from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim.world.builder import SceneBuilder, actor_x, along_x
from perception_ws.sim.world.buildings import building
from perception_ws.sim.world.content import add_content
from perception_ws.sim.world.footprints import rectangle
from perception_ws.sim.world.ground import ground
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import Mesh
from perception_ws.sim.world.nature import bush, hedge, tree
from perception_ws.sim.world.people import cyclist, pedestrian
from perception_ws.sim.world.scene import EgoPose, Part, Scene
from perception_ws.sim.world.scene_config import SceneConfig
from perception_ws.sim.world.street import clutter, fence, lamp_post, sign_post
from perception_ws.sim.world.vehicles import random_vehicle

__all__ = ["EGO_SIZE", "SceneConfig", "generate_scene"]

EGO_SIZE = (4.6, 1.9)  # the sensor car's footprint, kept free of other objects


def generate_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """The street scene of ``seed`` (world frame, road along x, ground near z = 0)."""
    b = SceneBuilder(seed, config or SceneConfig())
    _ego(b)
    b.stuff(ground(b.layout, b.config.y_extent))
    _buildings(b)
    _roadside(b)
    _parked(b)
    _moving(b)
    _people(b)
    _asphalt_wear(b)
    # the hard negatives, parked bicycles and extra people come last: with their densities at 0 nothing is
    # drawn and the scene is the v1 street of this seed, draw for draw
    add_content(b)
    return b.scene


#: Asphalt comes in patches: fresh (nearly black at 905 nm) and worn (grey). Real KITTI road remissions spread
#: from 0 to 0.4, a fifth of them below 0.1, within one scan. Per scene: the share of fresh patches; per patch
#: (a ground cell, about 2 x 0.75 m): fresh or worn, and each kind one albedo scale per scene.
FRESH_SHARE = (0.1, 0.6)
FRESH_SHADE = (0.15, 0.4)
WORN_SHADE = (0.8, 1.3)


def _asphalt_wear(b: SceneBuilder) -> None:
    """Split the asphalt into fresh and worn patches (drawn last, so the rest of the scene does not depend on it)."""
    share, fresh_shade, worn_shade = b.uniform(*FRESH_SHARE), b.uniform(*FRESH_SHADE), b.uniform(*WORN_SHADE)
    drivable = {SEMANTIC_KITTI.id_of("road"), SEMANTIC_KITTI.id_of("parking")}
    for part in [p for p in b.scene.parts if p.semantic in drivable and np.all(p.mesh.materials == Mat.ASPHALT)]:
        mesh = part.mesh
        quads = len(mesh) // 2  # ground quads: triangle i and i + quads make quad i (mesh.quads)
        fresh = np.tile(b.rng.random(quads) < share, 2)
        part.mesh = Mesh(mesh.vertices, mesh.triangles[~fresh], mesh.materials[~fresh])
        part.albedo_scale *= worn_shade
        patches = Mesh(mesh.vertices, mesh.triangles[fresh], mesh.materials[fresh])
        b.stuff(Part(patches, part.semantic, albedo_scale=part.albedo_scale / worn_shade * fresh_shade))


def _ego(b: SceneBuilder) -> None:
    """Sensor poses along a right-hand lane; their footprints (and a little room) stay empty."""
    lanes = b.layout.lane_centers()[: b.layout.lanes]
    y = float(b.rng.choice(lanes)) + b.uniform(-0.3, 0.3)
    others = np.linspace(-30.0, 30.0, max(b.config.ego_poses - 1, 1))[: b.config.ego_poses - 1]
    xs = [0.0, *others.tolist()]
    poses = []
    for x in xs:
        yaw = float(b.rng.normal(0.0, 0.02))
        poses.append(EgoPose(x=float(x), y=y, ground_z=b.z(x, y), yaw=yaw))
        b.space.add(rectangle(x, y, EGO_SIZE[0], EGO_SIZE[1], yaw, margin=1.0))
    b.scene.ego_poses = poses


def _frontages(b: SceneBuilder) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
    """Building lines as (start point, unit direction along it, length, outward depth limit)."""
    lay = b.layout
    lines = []
    for side in (-1, 1):
        y = lay.building_y(side)
        # split the line where the side street crosses it
        cuts = [lay.x_min, lay.x_max]
        if lay.cross_x is not None:
            gap = lay.cross_half_width + max(lay.sidewalk) + 2.0
            cuts = [lay.x_min, lay.cross_x - gap, lay.cross_x + gap, lay.x_max]
        for x0, x1 in zip(cuts[::2], cuts[1::2], strict=True):
            if x1 - x0 < 6:
                continue
            # walk so that the facade faces the road: direction = (-normal) x z
            if side > 0:
                lines.append((np.array([x0, y]), np.array([1.0, 0.0]), x1 - x0, b.config.y_extent - abs(y)))
            else:
                lines.append((np.array([x1, y]), np.array([-1.0, 0.0]), x1 - x0, b.config.y_extent - abs(y)))
    if lay.cross_x is not None:  # buildings along the side street, beyond the main street's building lines
        for side_x in (-1, 1):
            x = lay.cross_x + side_x * (lay.cross_half_width + max(lay.sidewalk) + b.uniform(0.0, 5.0))
            for side_y in (-1, 1):
                y0 = lay.building_y(side_y) + side_y * 2.0
                y1 = side_y * b.config.y_extent
                direction = np.array([0.0, -side_x * 1.0])
                start = np.array([x, y0 if direction[1] * side_y > 0 else y1])
                lines.append((start, direction, abs(y1 - y0), 30.0))
    return lines


def _buildings(b: SceneBuilder) -> None:
    for start, direction, length, depth_limit in _frontages(b):
        s = b.uniform(0.0, 6.0)
        yaw = float(np.arctan2(direction[1], direction[0]))
        while s < length - 6.0:
            gap = b.uniform(0.5, 5.0) if b.rng.random() < 0.7 else b.uniform(6.0, 18.0)
            size = min(b.uniform(8.0, 30.0), length - s)
            depth = min(b.uniform(8.0, 18.0), max(depth_limit, 6.0))
            setback = b.uniform(-0.5, 2.5)
            normal_in = np.array([-direction[1], direction[0]])  # the local +y: away from the street
            origin = start + direction * s + normal_in * setback
            ends = np.array([origin, origin + direction * size])
            base = float(b.layout.surface_height(ends[:, 0], ends[:, 1]).min())
            part = building(b.rng, size, depth, 0.0)
            center = origin + direction * size / 2 + normal_in * depth / 2
            if b.space.claim(rectangle(center[0], center[1], size, depth, yaw)):  # corners of side streets
                part.mesh = part.mesh.placed(origin[0], origin[1], base, yaw + b.uniform(-0.02, 0.02))
                b.stuff(part)
            s += size + gap


def _roadside(b: SceneBuilder) -> None:
    lay = b.layout
    for side in (-1, 1):
        _roadside_of(b, side)
    for _ in range(int(b.rng.integers(1, 6))):  # traffic signs near the curb, facing the traffic
        side = int(b.rng.choice([-1, 1]))
        x = b.uniform(lay.x_min + 5, lay.x_max - 5)
        y = lay.curb_y(side) + side * 0.4
        # the plate faces the traffic of its side: right-side traffic drives +x, so it faces -x
        facing = np.pi if side < 0 else 0.0
        if b.space.claim(rectangle(x, y, 0.6, 0.6, 0.0)):
            b.stuff(sign_post(b.rng, x, y, b.z(x, y), facing))
    for _ in range(int(b.rng.integers(0, 9))):  # bins, benches, bollards on the sidewalks
        side = int(b.rng.choice([-1, 1]))
        i = 0 if side < 0 else 1
        x = b.uniform(lay.x_min + 3, lay.x_max - 3)
        y = lay.curb_y(side) + side * b.uniform(0.4, max(lay.sidewalk[i] - 0.5, 0.5))
        yaw = float(b.rng.choice([0.0, np.pi])) + b.uniform(-0.1, 0.1)
        if b.space.claim(rectangle(x, y, 1.9, 0.6, yaw)):
            b.stuff(clutter(b.rng, x, y, b.z(x, y), yaw))


def _roadside_of(b: SceneBuilder, side: int) -> None:
    """Street trees, lamp posts, hedges or fences, and bushes on one side of the main road."""
    lay = b.layout
    i = 0 if side < 0 else 1
    curb = lay.curb_y(side)
    walk_out = curb + side * lay.sidewalk[i]
    yard = lay.yard[i]
    facing_road = np.pi / 2 if side < 0 else -np.pi / 2

    def solid(x: float, y: float, size: float, parts: list[Part] | Part) -> None:
        if b.space.claim(rectangle(x, y, size, size, 0.0)):
            b.stuff(parts)

    if b.rng.random() < 0.85:  # a row of street trees
        in_yard = yard > 2.5 and b.rng.random() < 0.5
        offset = b.uniform(1.0, yard - 1.0) if in_yard else min(0.8, lay.sidewalk[i] / 2)
        tree_y = (walk_out if in_yard else curb) + side * offset

        def put_tree(x: float) -> None:
            solid(x, tree_y, 0.8, tree(b.rng, x, tree_y, b.z(x, tree_y)))

        along_x(b, (5.0, 12.0), put_tree)
    if b.rng.random() < 0.8:  # lamp posts at the curb

        def put_lamp(x: float) -> None:
            y = curb + side * 0.5
            solid(x, y, 0.5, lamp_post(b.rng, x, y, b.z(x, y), facing_road))

        along_x(b, (20.0, 38.0), put_lamp)
    if yard <= 1.0:
        return
    if yard > 3.0 and b.rng.random() < 0.5:  # garden trees in front of the houses
        garden_y = walk_out + side * (yard - b.uniform(1.0, 2.0))

        def put_garden_tree(x: float) -> None:
            solid(x, garden_y, 1.0, tree(b.rng, x, garden_y, b.z(x, garden_y)))

        along_x(b, (6.0, 16.0), put_garden_tree)
    if b.rng.random() < 0.75:  # a hedge or a fence on the property line
        line_y = walk_out + side * b.uniform(0.3, 0.8)

        def put_boundary(x: float) -> None:
            x1 = min(x + b.uniform(5.0, 20.0), lay.x_max)
            if lay.in_cross_street(np.array([x, x1]), 1.0).any():
                return
            z = b.z(x, line_y)
            part = hedge(b.rng, x, x1, line_y, z) if b.rng.random() < 0.55 else fence(b.rng, x, x1, line_y, z)
            if b.space.claim(rectangle((x + x1) / 2, line_y, x1 - x, 0.6, 0.0)):
                b.stuff(part)

        along_x(b, (12.0, 30.0), put_boundary)

    def put_bush(x: float) -> None:
        y = walk_out + side * b.uniform(1.0, max(yard - 0.5, 1.1))
        solid(x, y, 1.6, bush(b.rng, x, y, b.z(x, y)))

    along_x(b, (2.5, 8.0), put_bush)


def _parked(b: SceneBuilder) -> None:
    lay = b.layout
    density = b.uniform(*b.config.parked_density)
    skipped = False
    for side in (-1, 1):
        # no parking on this side (never on both: a street without cars teaches a car detector nothing)
        if lay.parking_width == 0 and not skipped and b.rng.random() < 0.35:
            skipped = True
            continue
        x = lay.x_min + b.uniform(0.0, 4.0)
        while x < lay.x_max - 3.0:
            asset = random_vehicle(b.rng, b.config.vehicle_mix)
            lo, hi = asset.local_extent()
            length, width = hi[0] - lo[0], hi[1] - lo[1]
            gap = b.uniform(0.4, 2.5)
            if b.rng.random() < density and not lay.in_cross_street(np.array([x, x + length]), 3.0).any():
                # mostly facing the traffic direction of that side, a few turned round
                yaw = (0.0 if side < 0 else np.pi) + (np.pi if b.rng.random() < 0.2 else 0.0)
                yaw += float(b.rng.normal(0.0, 0.03))
                y = side * (lay.half_road - width / 2 - b.uniform(0.1, 0.35))
                b.actor(asset, x + length / 2, y, yaw, margin=0.05)
                x += length + gap
            else:
                x += b.uniform(3.0, 8.0)


def _moving(b: SceneBuilder) -> None:
    lay = b.layout
    lanes = lay.lane_centers()
    for _ in range(int(b.rng.integers(b.config.moving_vehicles[0], b.config.moving_vehicles[1] + 1))):
        asset = random_vehicle(b.rng, b.config.vehicle_mix)
        speed = b.uniform(4.0, 14.0)
        if lay.cross_x is not None and b.rng.random() < 0.25:  # on the side street
            direction = float(b.rng.choice([-1.0, 1.0]))
            x = lay.cross_x + direction * -lay.lane_width / 2  # keep right
            y = b.uniform(-b.config.y_extent + 5, b.config.y_extent - 5)
            yaw = direction * np.pi / 2
        else:
            y = float(b.rng.choice(lanes)) + float(b.rng.normal(0.0, 0.2))
            x = b.uniform(lay.x_min + 5, lay.x_max - 5)
            yaw = 0.0 if y < 0 else np.pi
        b.actor(asset, x, y, yaw + float(b.rng.normal(0.0, 0.02)), speed, margin=1.5)
    for _ in range(int(b.rng.integers(b.config.cyclists[0], b.config.cyclists[1] + 1))):
        for _attempt in range(10):
            side = -1 if b.rng.random() < 0.6 else 1
            i = 0 if side < 0 else 1
            if b.rng.random() < 0.25:  # on the sidewalk
                y = lay.curb_y(side) + side * b.uniform(0.5, max(lay.sidewalk[i] - 0.5, 0.6))
            else:
                y = side * (lay.half_road - lay.parking_width - b.uniform(0.6, 1.2))
            yaw = (0.0 if side < 0 else np.pi) + float(b.rng.normal(0.0, 0.05))
            x = actor_x(b, 5.0)
            if b.actor(cyclist(b.rng), x, y, yaw, b.uniform(3.0, 7.0), margin=0.4):
                break


def _people(b: SceneBuilder) -> None:
    lay = b.layout
    count = int(b.rng.integers(b.config.pedestrians[0], b.config.pedestrians[1] + 1))
    placed = 0
    for _attempt in range(count * 10):
        if placed >= count:
            break
        walking = bool(b.rng.random() < 0.7)
        where = b.rng.random()
        side = -1 if b.rng.random() < 0.5 else 1
        i = 0 if side < 0 else 1
        x = actor_x(b, 3.0)
        if where < 0.12:  # crossing the road
            y = b.uniform(-lay.half_road + 1, lay.half_road - 1)
            yaw = float(b.rng.choice([-1, 1])) * np.pi / 2 + float(b.rng.normal(0, 0.15))
            walking = True
        elif where < 0.25 and lay.yard[i] > 1.5:  # in a front yard
            y = lay.curb_y(side) + side * (lay.sidewalk[i] + b.uniform(0.5, lay.yard[i] - 0.5))
            yaw = b.uniform(-np.pi, np.pi)
        else:  # on the sidewalk, mostly walking along it
            y = lay.curb_y(side) + side * b.uniform(0.4, max(lay.sidewalk[i] - 0.4, 0.5))
            yaw = (
                (float(b.rng.choice([0.0, np.pi])) + float(b.rng.normal(0, 0.2)))
                if walking
                else b.uniform(-np.pi, np.pi)
            )
        group = 1 + (int(b.rng.integers(1, 3)) if b.rng.random() < 0.25 else 0)
        for member in range(group):
            dx, dy = (0.0, 0.0) if member == 0 else (b.uniform(-1.2, 1.2), b.uniform(-0.8, 0.8))
            asset = pedestrian(b.rng, walking)
            speed = b.uniform(0.9, 1.7) if walking else 0.0
            if b.actor(asset, x + dx, y + dy, yaw + float(b.rng.normal(0, 0.1)), speed, margin=0.1):
                placed += 1
