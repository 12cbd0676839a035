"""Vehicles: hatchbacks, sedans, wagons, SUVs, vans, pickups and trucks as light lofted meshes with wheels and glass.

A body is lofted through cross-sections along its length: each section runs from the sill up the
side to the belt line, then (where there is a cabin) leans inwards to the roof. The side profile
(roof, hood and boot heights along the car) is what tells the body types apart. Quads in the cabin
band become glass (side windows, windscreen, rear window) except at the pillars, so the physical
dropout can lose or see through them the way a real LiDAR does. Wheel arches are cut by raising the
sill over each wheel. About 300-500 triangles per vehicle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.sim.world.assets import Asset
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import Mesh, box, quad_strip_triangles, wheel
from perception_ws.sim.world.scene import Part


@dataclass(frozen=True)
class BodyType:
    """A kind of vehicle: its classes, size ranges and the side profile its body is built from."""

    name: str
    kitti_name: str  # KITTI object type: only "Car" counts as a KITTI-3 car
    semantic: str  # SemanticKITTI class
    length: tuple[float, float]  # uniform range, metres
    width: tuple[float, float]
    height: tuple[float, float]
    #: side profile: (position from rear 0..1, top height / total height) key points
    profile: tuple[tuple[float, float], ...]
    belt: float  # belt line / total height
    clearance: float  # sill height above ground, metres
    wheel_radius: float
    overhang: float  # wheel centre distance from the ends / length


# Profiles run rear -> front. Figures are typical of European street cars; KITTI's mean car is about
# 3.9 x 1.6 x 1.5 m (its boxes are tight and leave out mirrors).
BODY_TYPES: dict[str, BodyType] = {
    "hatchback": BodyType(
        "hatchback",
        "Car",
        "car",
        (3.4, 4.1),
        (1.52, 1.66),
        (1.40, 1.52),
        ((0.0, 0.62), (0.03, 0.86), (0.12, 1.0), (0.55, 1.0), (0.72, 0.66), (0.93, 0.6), (1.0, 0.45)),
        0.6,
        0.16,
        0.30,
        0.16,
    ),
    "sedan": BodyType(
        "sedan",
        "Car",
        "car",
        (4.2, 4.7),
        (1.62, 1.76),
        (1.38, 1.48),
        ((0.0, 0.62), (0.04, 0.7), (0.2, 0.71), (0.33, 1.0), (0.62, 1.0), (0.76, 0.67), (0.95, 0.6), (1.0, 0.45)),
        0.6,
        0.15,
        0.31,
        0.18,
    ),
    "wagon": BodyType(
        "wagon",
        "Car",
        "car",
        (4.3, 4.8),
        (1.64, 1.76),
        (1.42, 1.52),
        ((0.0, 0.62), (0.02, 0.9), (0.06, 1.0), (0.62, 1.0), (0.76, 0.66), (0.95, 0.6), (1.0, 0.45)),
        0.6,
        0.15,
        0.32,
        0.18,
    ),
    "suv": BodyType(
        "suv",
        "Car",
        "car",
        (4.2, 4.7),
        (1.72, 1.86),
        (1.62, 1.80),
        ((0.0, 0.6), (0.02, 0.92), (0.06, 1.0), (0.65, 1.0), (0.78, 0.7), (0.95, 0.66), (1.0, 0.5)),
        0.62,
        0.22,
        0.36,
        0.17,
    ),
    "van": BodyType(
        "van",
        "Van",
        "car",
        (4.8, 5.6),
        (1.90, 2.05),
        (1.90, 2.40),
        ((0.0, 0.96), (0.02, 1.0), (0.8, 1.0), (0.9, 0.62), (0.98, 0.55), (1.0, 0.4)),
        0.5,
        0.2,
        0.36,
        0.15,
    ),
    # a crew-cab pickup whose bed carries a cover at the height of its side walls. SemanticKITTI's class
    # definitions put pickup trucks under `truck` (a cargo part separate from the cabin), and this project
    # derives KITTI-3 from SemanticKITTI classes, so a pickup is no KITTI-3 car (box type "Truck").
    "pickup": BodyType(
        "pickup",
        "Truck",
        "truck",
        (5.0, 5.6),
        (1.85, 2.0),
        (1.75, 1.95),
        ((0.0, 0.6), (0.4, 0.6), (0.42, 0.97), (0.45, 1.0), (0.68, 1.0), (0.8, 0.64), (0.96, 0.6), (1.0, 0.45)),
        0.57,
        0.25,
        0.38,
        0.16,
    ),
}
TRUCK_SIZE = {"length": (6.0, 9.0), "width": (2.3, 2.5), "height": (2.8, 3.5)}


def _profile_height(profile: tuple[tuple[float, float], ...], u: np.ndarray) -> np.ndarray:
    keys = np.asarray(profile)
    return np.asarray(np.interp(u, keys[:, 0], keys[:, 1]))


def _section(half_width: float, sill: float, belt: float, top: float, tumble: float) -> np.ndarray:
    """One closed cross-section (K, 2) in (y, z), from the lower left round to the lower right."""
    cabin = top > belt + 0.05
    belt_z = belt if cabin else top - 0.08
    roof_w = half_width * (tumble if cabin else 0.97)
    left = [
        (-0.9 * half_width, sill),
        (-half_width, sill + 0.08),
        (-half_width, belt_z),
        (-roof_w, top - 0.06),
        (-0.88 * roof_w, top),
    ]
    right = [(-y, z) for y, z in reversed(left)]
    return np.asarray(left + right)


# ring edges (between section vertices k and k+1) that lie in the cabin band: sides 2-3 and 6-7,
# roof corners 3-4, 5-6 and the roof 4-5
_SIDE_EDGES = (2, 6)
_TOP_EDGES = (3, 4, 5)


def _loft_body(
    length: float, width: float, height: float, body: BodyType, paint: Mat, rng: np.random.Generator
) -> Mesh:
    wheel_x = np.array([-0.5 + body.overhang, 0.5 - body.overhang]) * length
    arch = body.wheel_radius * 1.15
    # stations: profile keys, a regular fill, and the edges of the wheel arches
    u = np.concatenate(
        [
            np.asarray(body.profile)[:, 0],
            np.linspace(0, 1, 12),
            ((wheel_x[:, None] + [-arch, 0, arch]) / length + 0.5).ravel(),
        ]
    )
    u = np.unique(np.clip(np.round(u, 4), 0, 1))
    x = (u - 0.5) * length
    top = _profile_height(body.profile, u) * height
    # rounded ends in plan view: the half-width narrows over the last 12% at each end
    end = np.clip((np.abs(u - 0.5) - 0.38) / 0.12, 0, 1)
    half_w = width / 2 * (1 - 0.1 * end**2)
    sill = np.full_like(x, body.clearance)
    for wx in wheel_x:  # wheel arches: raise the sill over each wheel
        d = np.clip(1 - ((x - wx) / arch) ** 2, 0, None)
        sill = np.maximum(sill, body.wheel_radius * (1.0 + 0.55 * np.sqrt(d)) * (d > 0))
    belt = body.belt * height
    tumble = rng.uniform(0.8, 0.86)
    sections = [_section(hw, s, belt, t, tumble) for hw, s, t in zip(half_w, sill, top, strict=True)]
    k = len(sections[0])
    verts = np.concatenate([np.column_stack([np.full(k, xi), sec]) for xi, sec in zip(x, sections, strict=True)])
    shell = quad_strip_triangles(len(x), k, wrap=True)[:, [0, 2, 1]]  # outward normals
    # materials of the shell's quads: (segment, ring edge) of each triangle
    seg = np.tile(np.repeat(np.arange(len(x) - 1), k), 2)
    edge = np.tile(np.tile(np.arange(k), len(x) - 1), 2)
    mid_top = (top[seg] + top[seg + 1]) / 2
    slope = np.abs(top[seg + 1] - top[seg]) / np.maximum(x[seg + 1] - x[seg], 1e-6)
    cabin = mid_top > belt + 0.12
    mid_x = (x[seg] + x[seg + 1]) / 2
    b_pillar = np.abs(mid_x - (np.mean(mid_x[cabin]) if cabin.any() else 0.0)) < 0.12
    side_glass = cabin & np.isin(edge, _SIDE_EDGES) & ~b_pillar
    screen_glass = cabin & np.isin(edge, _TOP_EDGES) & (slope > 0.45)
    materials = np.where(side_glass | screen_glass, Mat.CAR_GLASS, paint).astype(np.uint8)
    # end caps: fans over the first and last section (the bumpers' faces)
    fan = np.arange(1, k - 1)
    rear = np.stack([np.zeros_like(fan), fan, fan + 1], 1)
    front = np.stack([np.zeros_like(fan), fan + 1, fan], 1) + (len(x) - 1) * k
    caps = np.concatenate([rear, front])
    return Mesh(verts, np.concatenate([shell, caps]), np.concatenate([materials, np.full(len(caps), paint)]))


def _interior(length: float, width: float, height: float, body: BodyType) -> Mesh:
    """Seats, head rests and dashboard as one dark block behind the glass: a beam through a window of a real
    car mostly returns from them (a car point), it does not cross the car to the street behind.
    """
    u = np.linspace(0.0, 1.0, 101)
    top = _profile_height(body.profile, u) * height
    belt = body.belt * height
    cabin = u[top > belt + 0.12]
    x0, x1 = (cabin.min() - 0.5) * length, (cabin.max() - 0.5) * length
    low, high = belt - 0.15, belt + 0.55 * (float(top.max()) - belt)
    size = (0.85 * (x1 - x0), 0.78 * width, high - low)
    return box(size, ((x0 + x1) / 2, 0.0, (low + high) / 2), Mat.CLOTH_DARK, bottom=False)


def _wheels(axle_x: list[float], width: float, radius: float) -> Mesh:
    track = width / 2 - 0.13
    parts = [
        wheel(radius, 0.2, material=Mat.RUBBER).transformed(translation=(x, side * track, radius))
        for x in axle_x
        for side in (-1, 1)
    ]
    return Mesh.concat(parts)


def _plates(length: float, z: float, half_width: float = 0.26) -> Mesh:
    return Mesh.concat(
        [box((0.02, 2 * half_width, 0.11), (sign * (length / 2 + 0.005), 0.0, z), Mat.PLATE) for sign in (-1, 1)]
    )


def _paint(rng: np.random.Generator) -> tuple[Mat, float]:
    """Paint material and albedo scale: most cars are dark at 905 nm (black, blue, grey, also many colours that
    look light to the eye): real KITTI car remissions are below 0.1 for about 60 % of their points.
    """
    if rng.random() < 0.7:
        return Mat.CAR_PAINT_DARK, float(rng.uniform(0.5, 2.0))
    return Mat.CAR_PAINT_LIGHT, float(rng.uniform(0.6, 1.6))


def car(kind: str, rng: np.random.Generator) -> Asset:
    """A car-like vehicle of body type ``kind`` (see :data:`BODY_TYPES`), random size within the type."""
    if kind == "truck":
        return truck(rng)
    if kind not in BODY_TYPES:
        raise PerceptionError(f"unknown vehicle type {kind!r}; known: {', '.join([*BODY_TYPES, 'truck'])}")
    body = BODY_TYPES[kind]
    length, width, height = (float(rng.uniform(*r)) for r in (body.length, body.width, body.height))
    paint, scale = _paint(rng)
    shell = _loft_body(length, width, height, body, paint, rng)
    mesh = Mesh.concat(
        [
            shell,
            _interior(length, width, height, body),
            _wheels([(o - 0.5) * length for o in (body.overhang, 1 - body.overhang)], width, body.wheel_radius),
            _plates(length, body.clearance + 0.28),
        ]
    )
    kitti3 = KITTI3.id_of("car") if body.kitti_name == "Car" else 0
    part = Part(mesh=mesh, semantic=SEMANTIC_KITTI.id_of(body.semantic), albedo_scale=scale, kind=kind)
    return Asset(parts=[part], name=body.kitti_name, kitti3=kitti3)


def truck(rng: np.random.Generator) -> Asset:
    """A box truck: a cab with a windscreen in front of a tall cargo box, on two or three axles."""
    length, width, height = (float(rng.uniform(*TRUCK_SIZE[k])) for k in ("length", "width", "height"))
    cab_len, radius = 2.1, 0.48
    front_axle = 0.95  # behind the front end, under the cab
    cab_body = BodyType(
        "cab", "Truck", "truck", (cab_len, cab_len), (width, width), (height * 0.85, height * 0.85),
        ((0.0, 1.0), (0.75, 1.0), (0.9, 0.62), (1.0, 0.5)), 0.55, 0.45, radius, front_axle / cab_len,
    )  # fmt: skip
    paint, scale = _paint(rng)
    cab = _loft_body(cab_len, width, height * 0.85, cab_body, paint, rng)
    cab = cab.transformed(translation=((length - cab_len) / 2, 0.0, 0.0))
    cargo_len = length - cab_len - 0.15
    cargo = box((cargo_len, width, height - 0.75), (-length / 2 + cargo_len / 2, 0.0, 0.75 + (height - 0.75) / 2))
    cargo = cargo.with_material(Mat.METAL)
    rear_axles = [-length / 2 + 1.4] + ([-length / 2 + 2.5] if length > 7.5 else [])
    wheels = _wheels([length / 2 - front_axle, *rear_axles], width, radius)
    mesh = Mesh.concat([cab, cargo, wheels, _plates(length, 0.55)])
    part = Part(mesh=mesh, semantic=SEMANTIC_KITTI.id_of("truck"), albedo_scale=scale, kind="truck")
    return Asset(parts=[part], name="Truck", kitti3=0)


#: how often each body type appears among parked and moving vehicles (KITTI streets: mostly cars)
VEHICLE_MIX: dict[str, float] = {
    "hatchback": 0.3, "sedan": 0.25, "wagon": 0.2, "suv": 0.13, "van": 0.08, "pickup": 0.04, "truck": 0.04,
}  # fmt: skip
#: the mix before pickups came in (SceneConfig's "v1" content keeps its scenes as they were)
VEHICLE_MIX_V1: dict[str, float] = {k: v for k, v in VEHICLE_MIX.items() if k != "pickup"}


def random_vehicle(rng: np.random.Generator, mix: dict[str, float] | None = None) -> Asset:
    """A vehicle of a kind drawn from ``mix`` (default VEHICLE_MIX, weights need not sum to 1)."""
    mix = mix or VEHICLE_MIX
    kinds = list(mix)
    p = np.asarray([mix[k] for k in kinds], dtype=np.float64)
    return car(kinds[int(rng.choice(len(kinds), p=p / p.sum()))], rng)
