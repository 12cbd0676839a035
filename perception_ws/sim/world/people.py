"""People: pedestrians with limbs in a walking or standing pose, cyclists (a rider on a bicycle), parked bicycles.

Bodies are a skeleton dressed in tubes and ellipsoids, in body proportions scaled to a random
height (adults about 1.75 m, now and then a child). The walking pose swings legs and arms in
opposite phase; the rider's feet sit on the pedals and hands on the bar, solved with two-bone
inverse kinematics. A cyclist's rider is SemanticKITTI ``bicyclist`` and the bicycle ``bicycle``,
and both are one KITTI-3 cyclist instance (KITTI's Cyclist box holds rider and bicycle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.sim.world.assets import Asset
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import Mesh, box, ellipsoid, rotation_x, rotation_y, torus, tube
from perception_ws.sim.world.scene import Part


@dataclass(frozen=True)
class Build:
    """Body measures (metres) derived from the height with a little individual variation."""

    height: float
    girth: float  # 1 = average build

    @property
    def hip_z(self) -> float:
        return 0.53 * self.height

    @property
    def shoulder_z(self) -> float:
        return 0.815 * self.height

    @property
    def thigh(self) -> float:
        return 0.245 * self.height

    @property
    def shin(self) -> float:
        return 0.246 * self.height

    @property
    def upper_arm(self) -> float:
        return 0.186 * self.height

    @property
    def forearm(self) -> float:
        return 0.25 * self.height  # to the middle of the hand

    @property
    def shoulder_half(self) -> float:
        return 0.12 * self.height * self.girth

    @property
    def hip_half(self) -> float:
        return 0.052 * self.height * self.girth


def random_build(rng: np.random.Generator, child_probability: float = 0.08) -> Build:
    """A body drawn from ``rng``: an adult of about 1.74 m or, with ``child_probability``, a child."""
    if rng.random() < child_probability:
        height = rng.uniform(1.05, 1.45)
    else:
        height = float(np.clip(rng.normal(1.74, 0.08), 1.5, 1.98))
    return Build(height=float(height), girth=float(rng.uniform(0.9, 1.15)))


def _limb(p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, material: Mat) -> Mesh:
    return tube(p0, p1, r0, r1, segments=7, material=material)


def _bend(origin: np.ndarray, length: float, angle: float) -> np.ndarray:
    """The end of a bone of ``length`` hanging from ``origin``, swung forward by ``angle`` (x-z plane)."""
    return origin + length * np.array([np.sin(angle), 0.0, -np.cos(angle)])


def two_bone(root: np.ndarray, target: np.ndarray, a: float, b: float, bend_forward: bool) -> np.ndarray:
    """The middle joint (knee or elbow) reaching ``target`` from ``root`` with bones ``a`` and ``b``.

    The joint stays in the vertical plane through root and target, bending forward (knees) or
    backward/down (elbows); an unreachable target is reached in a straight line.
    """
    d_vec = target - root
    d = float(np.clip(np.linalg.norm(d_vec), 1e-6, a + b - 1e-6))
    along = d_vec / max(np.linalg.norm(d_vec), 1e-9)
    # a unit vector in the bending plane, perpendicular to the root-target line
    side = np.cross(along, [0.0, 1.0, 0.0])
    if np.linalg.norm(side) < 1e-6:
        side = np.array([1.0, 0.0, 0.0])
    side /= np.linalg.norm(side)
    if (side[0] > 0) != bend_forward:
        side = -side
    cos_a = np.clip((a * a + d * d - b * b) / (2 * a * d), -1.0, 1.0)
    return np.asarray(root + a * (cos_a * along + np.sqrt(1 - cos_a**2) * side))


@dataclass(frozen=True)
class Clothes:
    """Materials of the upper and lower body, with their albedo scales."""

    top: Mat
    bottom: Mat
    top_scale: float
    bottom_scale: float


def random_clothes(rng: np.random.Generator) -> Clothes:
    """Dark or light top and bottom drawn from ``rng``, each with its own albedo scale."""

    def pick() -> Mat:
        return Mat.CLOTH_DARK if rng.random() < 0.55 else Mat.CLOTH_LIGHT

    return Clothes(pick(), pick(), float(rng.uniform(0.6, 1.4)), float(rng.uniform(0.6, 1.4)))


def _torso_and_head(b: Build, pelvis: np.ndarray, lean: float, clothes: Clothes) -> tuple[Mesh, np.ndarray]:
    """Pelvis, chest, neck and head leaning forward by ``lean`` about the pelvis; returns the shoulder centre."""
    h, g = b.height, b.girth
    rot = rotation_y(lean)
    chest_c = np.array([0.0, 0.0, 0.17 * h])
    shoulder_c = np.array([0.0, 0.0, b.shoulder_z - b.hip_z])
    head_c = np.array([0.01 * h, 0.0, 0.405 * h])
    parts = [
        ellipsoid((0, 0, 0.02 * h), (0.075 * h * g, 0.1 * h * g, 0.065 * h), 1, clothes.bottom),
        ellipsoid(chest_c, (0.07 * h * g, 0.105 * h * g, 0.17 * h), 1, clothes.top),
        tube((0, 0, 0.26 * h), (0, 0, 0.35 * h), 0.033 * h, segments=6, material=Mat.SKIN),
        ellipsoid(head_c, (0.058 * h, 0.05 * h, 0.066 * h), 1, Mat.SKIN),
    ]
    mesh = Mesh.concat(parts).transformed(rot, pelvis)
    return mesh, rot @ shoulder_c + pelvis


def _leg(b: Build, hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, clothes: Clothes) -> Mesh:
    h = b.height
    foot_c = ankle + np.array([0.045 * h, 0.0, -0.02 * h])
    return Mesh.concat(
        [
            _limb(hip, knee, 0.05 * h * b.girth, 0.033 * h, clothes.bottom),
            _limb(knee, ankle, 0.031 * h, 0.022 * h, clothes.bottom),
            box((0.15 * h, 0.055 * h, 0.045 * h), foot_c, Mat.CLOTH_DARK),
        ]
    )


def _arm(b: Build, shoulder: np.ndarray, elbow: np.ndarray, hand: np.ndarray, clothes: Clothes) -> Mesh:
    h = b.height
    return Mesh.concat(
        [
            _limb(shoulder, elbow, 0.027 * h, 0.023 * h, clothes.top),
            _limb(elbow, hand, 0.022 * h, 0.018 * h, Mat.SKIN),
        ]
    )


@dataclass(frozen=True)
class Body:
    """A posed person in its own frame (facing +x, feet on z = 0): meshes and the points things attach to."""

    meshes: list[Mesh]
    build: Build
    shoulder: np.ndarray  # the shoulder centre
    hands: tuple[np.ndarray, np.ndarray]  # left (+y) and right (-y) hand


def person_body(
    rng: np.random.Generator,
    walking: bool | None = None,
    child_probability: float = 0.08,
    grips: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> Body:
    """A person walking (random phase and stride) or standing; ``grips`` puts the left / right hand on a point
    (a stroller's bar, an umbrella's handle) instead of letting the arm swing. The draws do not depend on
    ``grips``, so a grip changes the arm and nothing else.
    """
    b = random_build(rng, child_probability)
    clothes = random_clothes(rng)
    walking = bool(rng.random() < 0.7) if walking is None else walking
    phase = rng.uniform(0, 2 * np.pi)
    stride = rng.uniform(0.25, 0.45) if walking else rng.uniform(0.0, 0.08)
    hip_z = b.hip_z
    parts: list[Mesh] = []
    feet_z = []
    legs = []
    for side, sign in ((1.0, 1.0), (-1.0, -1.0)):
        swing = sign * stride * np.sin(phase)
        # the leg swinging forward bends its knee most
        knee_flex = 0.08 + (0.6 * stride * max(0.0, np.cos(phase) * sign) if walking else 0.0)
        hip = np.array([0.0, side * b.hip_half, hip_z])
        knee = _bend(hip, b.thigh, swing)
        ankle = _bend(knee, b.shin, swing - knee_flex)
        legs.append((hip, knee, ankle))
        feet_z.append(ankle[2])
    drop = np.array([0.0, 0.0, 0.045 * b.height - min(feet_z)])  # the lower foot stands on the ground
    for hip, knee, ankle in legs:
        parts.append(_leg(b, hip + drop, knee + drop, ankle + drop, clothes))
    pelvis = np.array([0.0, 0.0, hip_z]) + drop
    lean = rng.uniform(0.0, 0.12) if walking else rng.uniform(-0.03, 0.06)
    torso, shoulder_c = _torso_and_head(b, pelvis, lean, clothes)
    parts.append(torso)
    hands = []
    for (side, sign), grip in zip(((1.0, -1.0), (-1.0, 1.0)), grips, strict=True):
        # arms swing against the legs on the same side
        shoulder = shoulder_c + np.array([0.0, side * b.shoulder_half, -0.02 * b.height])
        swing = sign * 0.7 * stride * np.sin(phase)
        elbow = _bend(shoulder, b.upper_arm, swing) + np.array([0.0, side * 0.02, 0.0])
        hand = _bend(elbow, b.forearm * 0.8, swing + rng.uniform(0.1, 0.5))
        if grip is not None:
            hand = grip
            elbow = two_bone(shoulder, hand, b.upper_arm, b.forearm * 0.8, bend_forward=False)
        parts.append(_arm(b, shoulder, elbow, hand, clothes))
        hands.append(hand)
    return Body(parts, b, shoulder_c, (hands[0], hands[1]))


def backpack(shoulder: np.ndarray) -> Mesh:
    """A backpack on the back of a person whose shoulder centre is ``shoulder``."""
    return box((0.14, 0.3, 0.38), shoulder + np.array([-0.17, 0.0, -0.2]), Mat.CLOTH_DARK)


def person_kind(build: Build) -> str:
    """The audit name of a person: a child (under 1.46 m) or a pedestrian."""
    return "child" if build.height < 1.46 else "pedestrian"


def pedestrian(rng: np.random.Generator, walking: bool | None = None, child_probability: float = 0.08) -> Asset:
    """A person facing +x, feet on z = 0: walking (random phase and stride) or standing, now and then with a
    backpack or bag.
    """
    body = person_body(rng, walking, child_probability)
    parts = list(body.meshes)
    if rng.random() < 0.25:  # a backpack or a bag changes the silhouette
        parts.append(backpack(body.shoulder))
    return person_asset(parts, rng, person_kind(body.build))


def person_asset(meshes: list[Mesh], rng: np.random.Generator, kind: str, carried: list[Part] | None = None) -> Asset:
    """A KITTI-3 pedestrian of ``meshes`` (SemanticKITTI person), plus ``carried`` parts outside its instance."""
    mesh = Mesh.concat(meshes)
    person = Part(
        mesh=mesh, semantic=SEMANTIC_KITTI.id_of("person"), albedo_scale=float(rng.uniform(0.8, 1.2)), kind=kind
    )
    return Asset(parts=[person, *(carried or [])], name="Pedestrian", kitti3=KITTI3.id_of("pedestrian"))


@dataclass(frozen=True)
class BikeGeometry:
    """Where a rider meets the bicycle (saddle, handlebar, cranks), for posing the rider."""

    wheel_radius: float
    wheelbase: float
    saddle: np.ndarray  # top of the saddle
    bar: np.ndarray  # middle of the handlebar
    bar_half: float
    crank_axis: np.ndarray
    crank: float


def bicycle(rng: np.random.Generator, saddle_height: float) -> tuple[Mesh, BikeGeometry]:
    """A bicycle facing +x, wheels on the ground, saddle ``saddle_height`` above the bottom bracket."""
    r = rng.uniform(0.32, 0.35)
    wb = rng.uniform(1.0, 1.1)
    rear = np.array([-wb / 2, 0.0, r])
    front = np.array([wb / 2, 0.0, r])
    bb = np.array([-wb / 2 + 0.42, 0.0, 0.29])  # bottom bracket
    seat_top = bb + np.array([-0.2, 0.0, saddle_height])
    head_low = front + np.array([-0.14, 0.0, 0.33])
    head_high = head_low + np.array([-0.06, 0.0, 0.2])
    # city bikes (most of KITTI's cyclists) carry the bar high, so their riders sit upright
    bar = head_high + np.array([-0.1, 0.0, rng.uniform(0.08, 0.25)])
    bar_half = rng.uniform(0.27, 0.31)
    tube_r, frame = 0.018, Mat.METAL
    parts = [
        torus(r, 0.022, 18, 4, Mat.RUBBER).transformed(translation=rear),
        torus(r, 0.022, 18, 4, Mat.RUBBER).transformed(translation=front),
        tube(bb, seat_top - [0, 0, 0.08], tube_r, segments=5, material=frame),  # seat tube
        tube(bb, head_low, tube_r * 1.3, segments=5, material=frame),  # down tube
        tube(seat_top - [0, 0, 0.12], head_high, tube_r, segments=5, material=frame),  # top tube
        tube(bb, rear, tube_r * 0.8, segments=5, material=frame),  # chain stays
        tube(seat_top - [0, 0, 0.12], rear, tube_r * 0.8, segments=5, material=frame),  # seat stays
        tube(head_low, front, tube_r, segments=5, material=frame),  # fork
        tube(head_low, head_high, tube_r * 1.4, segments=5, material=frame),  # head tube
        tube(head_high, bar, tube_r, segments=5, material=frame),  # stem
        tube(
            bar - np.array([0, bar_half, 0]), bar + np.array([0, bar_half, 0]), 0.014, segments=5, material=frame
        ),  # handlebar
        box((0.26, 0.14, 0.05), seat_top, Mat.CLOTH_DARK),  # saddle
    ]
    geometry = BikeGeometry(r, wb, seat_top + np.array([0, 0, 0.025]), bar, bar_half, bb, crank=0.17)
    return Mesh.concat(parts), geometry


def cyclist(rng: np.random.Generator) -> Asset:
    """A rider pedalling a bicycle, facing +x (about 1.75 x 0.6 x 1.75 m, as KITTI's cyclists)."""
    b = random_build(rng, child_probability=0.05)
    clothes = random_clothes(rng)
    h = b.height
    # saddle height fitted to the rider: the leg is almost straight at the bottom of the stroke
    crank, hip_above_saddle, ankle_above_pedal = 0.17, 0.025 + 0.05 * h, 0.06
    drop = np.sqrt((0.95 * (b.thigh + b.shin)) ** 2 - 0.2**2)
    bike, g = bicycle(rng, drop - hip_above_saddle - crank + ankle_above_pedal)
    phase = rng.uniform(0, 2 * np.pi)
    pelvis = g.saddle + np.array([0.02, 0.0, hip_above_saddle - 0.025])
    parts = []
    for side, offset in ((1.0, 0.0), (-1.0, np.pi)):
        pedal = g.crank_axis + g.crank * np.array([np.cos(phase + offset), 0.0, np.sin(phase + offset)])
        pedal[1] = side * 0.1
        hip = pelvis + np.array([0.0, side * b.hip_half, 0.0])
        ankle = pedal + np.array([0.0, 0.0, ankle_above_pedal])
        knee = two_bone(hip, ankle, b.thigh, b.shin, bend_forward=True)
        parts.append(_leg(b, hip, knee, ankle, clothes))
    # mostly upright (KITTI's cyclists stand about 1.75 m tall); the arms bend to reach the bar
    lean = float(rng.uniform(0.12, 0.45))
    torso, shoulder_c = _torso_and_head(b, pelvis, lean, clothes)
    parts.append(torso)
    for side in (1.0, -1.0):
        shoulder = shoulder_c + np.array([0.0, side * b.shoulder_half, -0.02 * h])
        hand = g.bar + np.array([0.0, side * (g.bar_half - 0.05), 0.0])
        elbow = two_bone(shoulder, hand, b.upper_arm, b.forearm * 0.85, bend_forward=False)
        parts.append(_arm(b, shoulder, elbow, hand, clothes))
    rider = Part(mesh=Mesh.concat(parts), semantic=SEMANTIC_KITTI.id_of("bicyclist"), kind="cyclist")
    bicycle_part = Part(mesh=bike, semantic=SEMANTIC_KITTI.id_of("bicycle"), kind="cyclist")
    return Asset(parts=[rider, bicycle_part], name="Cyclist", kitti3=KITTI3.id_of("cyclist"))


def parked_bicycle(rng: np.random.Generator) -> Asset:
    """A bicycle with no rider, facing +x, leaning a little on its kickstand.

    SemanticKITTI ``bicycle`` with its own instance, but KITTI-3 unknown: KITTI's Cyclist is a rider on a
    bicycle, and a parked bicycle gets no KITTI box (its box type here is "Misc", which KITTI-3 leaves out).
    """
    bike, _ = bicycle(rng, saddle_height=float(rng.uniform(0.5, 0.75)))
    tilted = bike.transformed(rotation_x(float(rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.2))))
    lift = -float(tilted.vertices[:, 2].min())  # the lower wheel stays on the ground
    mesh = tilted.transformed(translation=(0.0, 0.0, lift))
    part = Part(mesh=mesh, semantic=SEMANTIC_KITTI.id_of("bicycle"), kind="parked bicycle")
    return Asset(parts=[part], name="Misc", kitti3=0)
