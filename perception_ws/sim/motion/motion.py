"""Moving scenes: where the ego car and every actor are at time t, and the scene as it stands then.

A generated scene is the world at t = 0. :class:`SceneMotion` plans its traffic once
(:mod:`perception_ws.sim.motion.traffic`: a path and a speed profile for the ego car and every actor the
generator gave a speed, such that nobody runs into anything) and then answers for any t >= 0:
the ego's pose and velocity, every actor's box, heading and velocity, and the scene itself with the
actors' triangles moved. Positions are closed-form functions of t, the same for the same seed.

Actors keep their heading except while they swerve around something; their height follows the
ground under them (the highest ground under the footprint, as the generator stands them), and so
does the ego's. Each actor moves rigidly (a walking pedestrian keeps the pose it was built in).

:meth:`SceneMotion.scene_at` moves each actor's vertices with one rigid transform (the static
triangles and every per-triangle table are shared with the original scene), and
:meth:`SceneMotion.raycaster` gives a :class:`~perception_ws.sim.sensor.raycast_layers.LayeredRaycaster` that
indexes the static triangles once and re-indexes only the actors per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.errors import PerceptionError
from perception_ws.sim.motion.traffic import MotionConfig, Mover, plan_traffic
from perception_ws.sim.sensor.raycast_layers import LayeredRaycaster
from perception_ws.sim.world.layout import StreetLayout
from perception_ws.sim.world.mesh import Mesh, rotation_z
from perception_ws.sim.world.scene import Actor, EgoPose, Part, Scene, TriangleSoup

__all__ = ["ActorStates", "EgoState", "MotionConfig", "SceneMotion", "scene_at"]

_SLOPE_STEP = 0.25  # m: half the baseline of the ground slope that gives the vertical speed


@dataclass
class ActorStates:
    """Every actor of the scene (in scene order) at one time, world frame."""

    center: np.ndarray  # (A, 3) box centres
    yaw: np.ndarray  # (A,) headings
    velocity: np.ndarray  # (A, 3) m/s
    moving: np.ndarray  # (A,) bool: the actor has a path (it may be waiting on it)


@dataclass(frozen=True)
class EgoState:
    """The ego vehicle at one instant: its pose, velocity and yaw rate."""

    pose: EgoPose
    velocity: np.ndarray  # (3,) m/s, world frame
    yaw_rate: float = 0.0  # rad/s


class SceneMotion:
    """The motion of one scene: planned once, then asked for any time t >= 0."""

    def __init__(self, scene: Scene, config: MotionConfig | None = None) -> None:
        self.scene = scene
        self.config = config or MotionConfig()
        self.layout: StreetLayout | None = scene.layout
        self._soup = scene.soup
        self._static_triangles, self._static_vertices = _check_soup_order(scene)
        actors = scene.actors
        self._center0 = np.array([a.box.center for a in actors]).reshape(-1, 3)
        self._yaw0 = np.array([a.box.yaw for a in actors], dtype=np.float64)
        self._size = np.array([a.box.size for a in actors]).reshape(-1, 3)
        self._ego0 = scene.ego_poses[0]
        self.movers: list[Mover] = plan_traffic(scene, self._static_vertices, self.config)
        self._actor_movers = [m for m in self.movers if m.actor >= 0]
        self._moving = np.zeros(len(actors), dtype=bool)
        self._moving[[m.actor for m in self._actor_movers]] = True
        self._ground0 = self._ground_under(self._center0[:, :2], self._yaw0, self._size)
        # the soup lists each actor's vertices and triangles after the static ones, in actor order
        vcount = [sum(len(p.mesh.vertices) for p in a.parts if len(p.mesh)) for a in actors]
        tcount = [sum(len(p.mesh) for p in a.parts) for a in actors]
        self._vertex_actor = np.repeat(np.arange(len(actors)), vcount)
        self._triangle_actor = np.repeat(np.arange(len(actors)), tcount)

    @property
    def ego_speed(self) -> float:
        """The ego's cruising speed (m/s), drawn for this scene's seed."""
        return self.movers[0].profile.cruise.speed

    def raycaster(self, backend: str = "auto", device: str | None = None) -> LayeredRaycaster:
        """A ray caster for this scene's frames: the static layer is built now; ``update(frame.soup)`` per frame."""
        return LayeredRaycaster(self._soup, self._static_triangles, self._static_vertices, backend, device)

    # -- state at time t ------------------------------------------------------------------------------

    def ego(self, t: float) -> EgoState:
        """The ego car at time ``t`` (world frame)."""
        m = self.movers[0]
        xy, yaw, velocity, yaw_rate = _on_path(m, _time(t))
        x, y = float(xy[0, 0]), float(xy[0, 1])
        climb = 0.0
        ground = self._ego0.ground_z
        if self.layout is not None:
            ground = _height(self.layout, x, y)
            heading = velocity[0] / max(float(np.hypot(*velocity[0])), 1e-9)
            ahead, behind = xy[0] + _SLOPE_STEP * heading, xy[0] - _SLOPE_STEP * heading
            rise = _height(self.layout, ahead[0], ahead[1]) - _height(self.layout, behind[0], behind[1])
            climb = float(rise) / (2 * _SLOPE_STEP) * float(np.hypot(*velocity[0]))
        pose = EgoPose(x=x, y=y, ground_z=ground, yaw=self._ego0.yaw + float(yaw[0]))
        return EgoState(pose=pose, velocity=np.array([*velocity[0], climb]), yaw_rate=float(yaw_rate[0]))

    def actor_states(self, t: float) -> ActorStates:
        """Every actor at time ``t``: box centre, heading and velocity (world frame)."""
        t = _time(t)
        center, yaw = self._center0.copy(), self._yaw0.copy()
        velocity = np.zeros_like(center)
        if self._actor_movers:
            index = np.array([m.actor for m in self._actor_movers])
            states = [_on_path(m, t) for m in self._actor_movers]
            xy = np.concatenate([st[0] for st in states])
            center[index, :2] = xy
            yaw[index] += np.concatenate([st[1] for st in states])
            planar = np.concatenate([st[2] for st in states])
            velocity[index, :2] = planar
            if self.layout is not None:
                size = self._size[index]
                center[index, 2] += self._ground_under(xy, yaw[index], size) - self._ground0[index]
                speed = np.hypot(planar[:, 0], planar[:, 1])
                heading = planar / np.maximum(speed, 1e-9)[:, None]
                ahead = self._ground_under(xy + _SLOPE_STEP * heading, yaw[index], size)
                behind = self._ground_under(xy - _SLOPE_STEP * heading, yaw[index], size)
                velocity[index, 2] = speed * (ahead - behind) / (2 * _SLOPE_STEP)
        return ActorStates(center=center, yaw=yaw, velocity=velocity, moving=self._moving.copy())

    def scene_at(self, t: float) -> Scene:
        """The scene at time ``t``: actors moved (meshes, boxes, velocities), the ego's pose at ``t`` first.

        Static parts and the per-triangle tables are shared with the original scene; only the actors'
        vertices and normals are new, and the result's ``soup`` comes ready (not merged again).
        """
        scene, states = self.scene, self.actor_states(t)
        base = self._soup
        rot = np.stack([rotation_z(d) for d in states.yaw - self._yaw0]) if len(scene.actors) else np.zeros((0, 3, 3))
        # each actor turns about its old box centre and moves to the new one: x -> R x + shift
        shift = states.center - np.einsum("aij,aj->ai", rot, self._center0)
        v0, t0 = self._static_vertices, self._static_triangles
        owner, tri_owner = self._vertex_actor, self._triangle_actor
        moved = np.einsum("nij,nj->ni", rot[owner], base.vertices[v0:].astype(np.float64)) + shift[owner]
        normals = base.normals.copy()
        normals[t0:] = np.einsum("nij,nj->ni", rot[tri_owner], base.normals[t0:].astype(np.float64))
        soup = TriangleSoup(
            vertices=np.concatenate([base.vertices[:v0], moved.astype(np.float32)]),
            triangles=base.triangles,
            normals=normals,
            semantic=base.semantic,
            kitti3=base.kitti3,
            instance=base.instance,
            material=base.material,
            albedo=base.albedo,
            glass=base.glass,
            retro=base.retro,
        )
        actors = [
            _moved_actor(a, rot[i], shift[i], states.center[i], float(states.yaw[i]), states.velocity[i])
            for i, a in enumerate(scene.actors)
        ]
        ego = [self.ego(t).pose]
        out = Scene(seed=scene.seed, parts=scene.parts, actors=actors, ego_poses=ego, layout=scene.layout)
        out.soup = soup  # fill the cached property: the moved soup, not a fresh merge
        return out

    def _ground_under(self, xy: np.ndarray, yaw: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Highest ground under the centre and the inner corners of each footprint (as the generator stands actors)."""
        if self.layout is None or len(xy) == 0:
            return np.zeros(len(xy))
        signs = np.array([[0.0, 0.0], [1, 1], [1, -1], [-1, 1], [-1, -1]]) * 0.4  # 80 % of the footprint
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        lx, ly = signs[None, :, 0] * size[:, None, 0], signs[None, :, 1] * size[:, None, 1]
        x = xy[:, None, 0] + c * lx - s * ly
        y = xy[:, None, 1] + s * lx + c * ly
        return np.asarray(self.layout.surface_height(x, y).max(axis=1))


def scene_at(scene: Scene, t: float, motion: SceneMotion | None = None) -> Scene:
    """``scene`` at time ``t`` seconds. Plans the motion on every call unless ``motion`` (of this scene) is given."""
    if motion is not None and motion.scene is not scene:
        raise PerceptionError(f"scene_at: the motion was planned for scene {motion.scene.seed}, not for this one")
    return (motion or SceneMotion(scene)).scene_at(t)


def _on_path(m: Mover, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Position (1, 2), heading change (1,), planar velocity (1, 2) and yaw rate (1,) of ``m`` at ``t``."""
    s, v = m.profile.at(np.array([t]))
    _, d1, d2 = m.path.offset(s)
    u, n = m.path.direction, m.path.normal
    velocity = v[:, None] * (u + d1[:, None] * n)
    return m.path.point(s), np.arctan(d1), velocity, d2 * v / (1.0 + d1**2)


def _moved_actor(
    actor: Actor, rot: np.ndarray, shift: np.ndarray, center: np.ndarray, yaw: float, velocity: np.ndarray
) -> Actor:
    b = actor.box
    box = Box3D(
        center=center, size=b.size.copy(), yaw=yaw, label=b.label, name=b.name, track_id=b.track_id, velocity=velocity
    )
    parts = [
        Part(
            mesh=Mesh(p.mesh.vertices @ rot.T + shift, p.mesh.triangles, p.mesh.materials),
            semantic=p.semantic,
            kitti3=p.kitti3,
            instance=p.instance,
            albedo_scale=p.albedo_scale,
        )
        for p in actor.parts
    ]
    return Actor(instance=actor.instance, box=box, parts=parts)


def _check_soup_order(scene: Scene) -> tuple[int, int]:
    """(triangles, vertices) of the static parts, which the soup lists before every actor's."""
    parts = [p for p in scene.parts if len(p.mesh)]
    triangles = sum(len(p.mesh) for p in parts)
    vertices = sum(len(p.mesh.vertices) for p in parts)
    soup = scene.soup
    actor_tris = soup.triangles[triangles:]
    if (soup.instance[:triangles] != 0).any() or (len(actor_tris) and actor_tris.min() < vertices):
        raise PerceptionError(
            f"scene {scene.seed}: its soup does not list the static triangles before the actors'; "
            "motion needs Scene.soup to merge the parts first, then the actors"
        )
    return triangles, vertices


def _time(t: float) -> float:
    t = float(t)
    if not (np.isfinite(t) and t >= 0.0):
        raise PerceptionError(f"motion: time must be a finite number of seconds >= 0; got {t}")
    return t


def _height(layout: StreetLayout, x: float, y: float) -> float:
    """Ground height at one point (the layout works on arrays)."""
    return float(layout.surface_height(np.array([x]), np.array([y]))[0])
