"""Traffic planning: a path and a speed profile for the ego car and for every actor that moves, such that
nothing runs into anything.

Planned once per scene from the scene at t = 0 (:class:`~perception_ws.sim.motion.motion.SceneMotion` uses it):

1. Movers: the ego car, and every actor with a speed. Headings near a street axis are snapped onto
   it, so cars stay in their lanes and pedestrians on their sidewalks. Priority, highest first:
   pedestrians crossing (not walking along the street), pedestrians walking along it, side-street
   traffic, main-street traffic; within a level, those that need not swerve, then by scene order,
   the ego last.
2. Paths (:mod:`perception_ws.sim.motion.paths`): what stands below head height in the way (trunks, poles,
   signs, bushes, hedges, fences, buildings, parked cars, standing people) is passed with a smooth
   sideways step if the step is small enough (vehicles to the left only, into the oncoming lane if
   need be; pedestrians to either side); otherwise the path ends before it. Paths also end at the
   street's end, a side street's stop line, the far sidewalk of a pedestrian crossing the road, and
   the curb for pedestrians on the sidewalk. Overlaps are found by sampling the path every half
   metre and testing the actor's footprint (turned with the path) against each obstacle.
3. Speed profiles (:mod:`perception_ws.sim.motion.speed_profile`): cruise at the scene's speed (the ego's is
   drawn per seed), stop smoothly before the path's end, keep a gap behind the mover ahead in the same
   lane, and wait before any stretch of path where the footprint would meet a mover of higher
   priority, until it has passed (unless this mover is through before it arrives).

Nobody swerves around another mover. Two pedestrians walking at each other on one line of a
sidewalk pass through each other: the one overlap this plan leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim.motion.paths import Path, Swerve, merge_swerves
from perception_ws.sim.motion.speed_profile import Cruise, Follow, Profile, Wall, Yield
from perception_ws.sim.world.generator import EGO_SIZE
from perception_ws.sim.world.layout import StreetLayout
from perception_ws.sim.world.scene import Actor, EgoPose, Scene

#: KITTI object types that walk (every other actor with a speed rides or drives)
WALKERS = ("Pedestrian",)
#: classes of the ground itself: never obstacles
GROUND_CLASSES = np.isin(
    np.arange(len(SEMANTIC_KITTI)),
    [SEMANTIC_KITTI.id_of(n) for n in ("road", "parking", "sidewalk", "other-ground", "terrain")],
)
_BODY_HEIGHT = 2.0  # what stands lower than this above the ground is in the way (tree crowns are not)
_STEP = 0.5  # m: paths are sampled this finely when looking for overlaps
_GRID = 0.05  # s: crossing times are searched on this grid
_SPEED_EPS = 0.05  # m/s: slower counts as standing


@dataclass(frozen=True)
class MotionConfig:
    """How the ego car drives and how actors keep their distance."""

    #: ego cruising speed, drawn per seed from this range (KITTI's city drives: about 20-40 km/h)
    ego_speed: tuple[float, float] = (6.0, 11.0)
    #: relative amplitude of the ego's slow speed oscillation (0: constant speed), and its period
    ego_speed_variation: float = 0.1
    ego_speed_period: float = 12.0
    #: the ego stops this far before the street ends (metres)
    ego_end_margin: float = 10.0
    #: bumper-to-bumper gap kept behind the mover ahead (metres)
    vehicle_gap: float = 2.5
    walker_gap: float = 0.5
    #: braking that sets the blend band before a limit: about v^2 / (2 * braking) metres
    vehicle_braking: float = 3.0
    walker_braking: float = 1.0
    #: clearance kept ahead (obstacles, crossings, the street's end) and to the sides (metres)
    vehicle_margin: float = 1.0
    walker_margin: float = 0.3
    side_clearance: float = 0.15
    #: the largest sideways step around an obstacle (metres): vehicles, cyclists, pedestrians
    #: (pedestrians crossing the road may step further, to a gap between parked cars)
    vehicle_swerve: float = 2.5
    cyclist_swerve: float = 1.5
    walker_swerve: float = 1.0
    crossing_swerve: float = 4.0
    #: a swerve steps out over about this many seconds of travel (at least 4 m for vehicles)
    swerve_time: float = 2.0
    #: headings within this of a street axis are snapped onto it (degrees)
    snap_deg: float = 30.0
    #: how far ahead crossing times are searched (seconds); later crossings are not waited for
    horizon: float = 120.0

    def __post_init__(self) -> None:
        lo, hi = self.ego_speed
        if not 0.0 <= lo <= hi:
            raise PerceptionError(f"motion config: ego_speed must be a range 0 <= low <= high m/s; got {(lo, hi)}")
        for name in ("ego_speed_period", "vehicle_braking", "walker_braking", "horizon", "swerve_time"):
            if not getattr(self, name) > 0:
                raise PerceptionError(f"motion config: {name} must be > 0; got {getattr(self, name)}")
        if not 0.0 <= self.ego_speed_variation < 1.0:
            raise PerceptionError(
                f"motion config: ego_speed_variation must lie in [0, 1); got {self.ego_speed_variation}"
            )


@dataclass
class Mover:
    """The ego car (``actor`` = -1) or one actor, on its path with its speed profile."""

    actor: int
    path: Path
    profile: Profile
    half_along: float  # half the footprint along the path
    half_across: float  # and across it
    walker: bool
    level: int  # 0 crossing pedestrians … 3 main-street traffic
    band: float  # blend band of its limits (metres)
    margin: float  # clearance it keeps ahead
    gap: float  # gap it keeps behind a leader
    max_swerve: float
    reach: float = 0.0  # how far along its path it can ever get
    deps: list[int] = field(default_factory=list)  # movers planned before it: leader, and who it yields to

    @property
    def key(self) -> tuple[int, bool, bool, int]:
        """Priority order: smaller goes first."""
        return (self.level, bool(self.path.swerves), self.actor < 0, self.actor)


def plan_traffic(scene: Scene, static_vertices: int, config: MotionConfig | None = None) -> list[Mover]:
    """The ego (first) and every moving actor of ``scene``, with planned paths and speed profiles."""
    return _Planner(scene, static_vertices, config or MotionConfig()).movers


class _Planner:
    def __init__(self, scene: Scene, static_vertices: int, config: MotionConfig) -> None:
        self.scene, self.config = scene, config
        self.layout: StreetLayout | None = scene.layout
        rng = np.random.default_rng(np.random.SeedSequence([scene.seed, 0x6D6F7665]))  # "move"
        movers = [self._ego(scene.ego_poses[0], rng)]
        movers += [m for i, a in enumerate(scene.actors) if (m := self._actor(i, a)) is not None]
        self.movers = movers
        moving = {m.actor for m in movers}
        self.lo, self.hi = self._obstacles(scene, static_vertices, moving)
        self.bounds = self._street_bounds(scene)
        for m in movers:
            self._route(m)
        order = sorted(range(len(movers)), key=lambda i: movers[i].key)
        rank = {i: r for r, i in enumerate(order)}
        conflicts: dict[tuple[int, int], tuple[float, float, float, float]] = {}
        for i, m in enumerate(movers):
            leader = self._leader(i)
            if leader is not None:
                m.deps.append(leader)
            for j, o in enumerate(movers):
                if rank[j] < rank[i] and not self._same_lane(m, o) and not self._same_lane(o, m):
                    region = _conflict(m, o, config.side_clearance)
                    if region is not None:
                        conflicts[i, j] = region
                        m.deps.append(j)
        self._schedule(conflicts)

    # -- movers ------------------------------------------------------------------------------------

    def _ego(self, ego: EgoPose, rng: np.random.Generator) -> Mover:
        cfg = self.config
        speed = float(rng.uniform(*cfg.ego_speed))
        cruise = Cruise(speed, cfg.ego_speed_variation, cfg.ego_speed_period, float(rng.uniform(0, 2 * np.pi)))
        heading = self._snap(ego.yaw)
        along, across = _half_extents(EGO_SIZE[0], EGO_SIZE[1], ego.yaw - heading)
        top = speed * (1.0 + cfg.ego_speed_variation)
        return Mover(
            actor=-1,
            path=Path(np.array([ego.x, ego.y]), np.array([np.cos(heading), np.sin(heading)])),
            profile=Profile(cruise),
            half_along=along,
            half_across=across,
            walker=False,
            level=3,
            band=max(top**2 / (2 * cfg.vehicle_braking), 0.3),
            margin=cfg.vehicle_margin,
            gap=cfg.vehicle_gap,
            max_swerve=cfg.vehicle_swerve,
        )

    def _actor(self, index: int, actor: Actor) -> Mover | None:
        cfg = self.config
        v = actor.box.velocity[:2]
        speed = float(np.hypot(v[0], v[1]))
        if speed < _SPEED_EPS:
            return None
        heading = self._snap(float(np.arctan2(v[1], v[0])))
        u = np.array([np.cos(heading), np.sin(heading)])
        along, across = _half_extents(actor.box.size[0], actor.box.size[1], actor.box.yaw - heading)
        walker = actor.box.name in WALKERS
        along_street = abs(u[0]) > 0.7
        level = (1 if along_street else 0) if walker else (3 if along_street else 2)
        braking = cfg.walker_braking if walker else cfg.vehicle_braking
        if walker:
            swerve = cfg.walker_swerve if along_street else cfg.crossing_swerve
        else:
            swerve = cfg.cyclist_swerve if actor.box.name == "Cyclist" else cfg.vehicle_swerve
        return Mover(
            actor=index,
            path=Path(actor.box.center[:2].copy(), u),
            profile=Profile(Cruise(speed)),
            half_along=along,
            half_across=across,
            walker=walker,
            level=level,
            band=max(speed**2 / (2 * braking), 0.1 if walker else 0.3),
            margin=cfg.walker_margin if walker else cfg.vehicle_margin,
            gap=cfg.walker_gap if walker else cfg.vehicle_gap,
            max_swerve=swerve,
        )

    def _snap(self, heading: float) -> float:
        """``heading`` snapped onto the nearest street axis (a multiple of 90 degrees) when close to it."""
        axis = float(np.round(heading / (np.pi / 2)) * (np.pi / 2))
        return axis if abs(heading - axis) < np.radians(self.config.snap_deg) else heading

    # -- the world at rest -------------------------------------------------------------------------

    def _obstacles(self, scene: Scene, static_vertices: int, moving: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """Footprints (K, 2) lo and hi: the low parts of static stuff, and the actors that do not move."""
        parts = [p for p in scene.parts if len(p.mesh)]
        lo, hi = np.zeros((0, 2)), np.zeros((0, 2))
        if parts:
            counts = np.array([len(p.mesh.vertices) for p in parts], dtype=np.int64)
            verts = scene.soup.vertices[:static_vertices].astype(np.float64)
            solid = ~GROUND_CLASSES[np.repeat([p.semantic for p in parts], counts)]
            low = solid & (verts[:, 2] < self._ground(verts[:, :2]) + _BODY_HEIGHT)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            big = np.finfo(np.float64).max
            lo = np.minimum.reduceat(np.where(low[:, None], verts[:, :2], big), starts)
            hi = np.maximum.reduceat(np.where(low[:, None], verts[:, :2], -big), starts)
            keep = np.add.reduceat(low.astype(np.int64), starts) > 0
            lo, hi = lo[keep], hi[keep]
        still = [a for i, a in enumerate(scene.actors) if i not in moving]
        if still:
            corners = np.stack([a.box.bev_corners() for a in still])
            lo, hi = np.concatenate([lo, corners.min(axis=1)]), np.concatenate([hi, corners.max(axis=1)])
        return lo, hi

    def _ground(self, xy: np.ndarray) -> np.ndarray:
        if self.layout is None:
            return np.full(len(xy), self.scene.ego_poses[0].ground_z)
        return self.layout.surface_height(xy[:, 0], xy[:, 1])

    @staticmethod
    def _street_bounds(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) xy corners of the ground: nobody leaves it."""
        soup = scene.soup
        ground = np.flatnonzero(GROUND_CLASSES[soup.semantic] & (soup.instance == 0))
        if len(ground) == 0:
            return np.full(2, -np.inf), np.full(2, np.inf)
        xy = soup.vertices[soup.triangles[ground].ravel(), :2].astype(np.float64)
        return xy.min(axis=0), xy.max(axis=0)

    # -- paths -------------------------------------------------------------------------------------

    def _route(self, m: Mover) -> None:
        """Swerves and the end of ``m``'s path; its profile stops there."""
        limit = self._limit(m)
        swerves = merge_swerves(self._swerves(m, limit))
        while True:
            m.path = Path(m.path.origin, m.path.direction, swerves)
            m.reach = self._clear_until(m, limit)
            # blocked while stepping out (into a gap too narrow): stay straight and stop before the obstacle
            stepping = [k for k, w in enumerate(swerves) if w.start <= m.reach + _STEP and m.reach < w.reach]
            if not stepping:
                break
            swerves = swerves[: stepping[0]]
        m.profile.add(Wall(m.reach), m.band)

    def _limit(self, m: Mover) -> float:
        """How far the street lets ``m``'s centre go: its end, and the rules of the street."""
        p, u = m.path.origin, m.path.direction
        ends = [_exit_distance(p, u, *self.bounds) - m.half_along - m.margin]
        if m.actor < 0:
            ends.append(ends[0] - self.config.ego_end_margin)
        if self.layout is not None:
            ends += self._street_rules(m, self.layout)
        return max(min(ends), 0.0)

    def _street_rules(self, m: Mover, lay: StreetLayout) -> list[float]:
        p, u = m.path.origin, m.path.direction
        x, y = float(p[0]), float(p[1])
        across = abs(float(u[1]))
        toward_road = float(u[1]) * y < 0.0 and across > 0.3
        out = []
        if m.walker and across > 0.7 and abs(y) < lay.half_road:  # crossing: stop mid-way on the far sidewalk
            side = 1 if u[1] > 0 else -1
            walk = lay.sidewalk[0 if side < 0 else 1]
            out.append((side * (lay.half_road + walk / 2) - y) / float(u[1]))
        elif m.walker and toward_road and abs(y) >= lay.half_road:  # on the sidewalk or in a yard: not onto the road
            out.append((abs(y) - lay.half_road - m.margin) / across - m.half_along)
        near_cross = lay.cross_x is not None and abs(x - lay.cross_x) < lay.cross_half_width
        stop_line = lay.half_road + max(lay.sidewalk) + m.margin
        if not m.walker and near_cross and toward_road and abs(y) - m.half_along > stop_line:
            out.append((abs(y) - stop_line) / across - m.half_along)  # side street: wait before the main road
        return out

    def _near(self, m: Mover, limit: float) -> np.ndarray:
        """Indices of obstacles near the stretch of path ``m`` may use."""
        p, u = m.path.origin, m.path.direction
        reach = m.half_along + m.half_across + m.max_swerve + m.margin + 1.0
        a, b = p, p + u * limit
        lo, hi = np.minimum(a, b) - reach, np.maximum(a, b) + reach
        return np.flatnonzero(np.all((self.hi >= lo) & (self.lo <= hi), axis=1))

    def _swerves(self, m: Mover, limit: float) -> list[Swerve]:
        """A sideways step around each obstacle in the straight corridor that a small enough step clears."""
        near = self._near(m, limit)
        if len(near) == 0 or m.max_swerve <= 0:
            return []
        p, u, n = m.path.origin, m.path.direction, m.path.normal
        lo, hi = self.lo[near], self.hi[near]
        corners = np.stack([lo, np.stack([hi[:, 0], lo[:, 1]], 1), hi, np.stack([lo[:, 0], hi[:, 1]], 1)], 1) - p
        a, b = corners @ u, corners @ n  # (K, 4) along and across
        a_lo, a_hi, b_lo, b_hi = a.min(1), a.max(1), b.min(1), b.max(1)
        side = m.half_across + self.config.side_clearance
        ahead = (a_lo > m.half_along) & (a_lo < limit + m.half_along) & (b_lo < side) & (b_hi > -side)
        speed = m.profile.cruise.speed
        ramp = max(self.config.swerve_time * speed, 1.0 if m.walker else 4.0)
        shortest = 0.5 if m.walker else 3.0
        out = []
        for k in np.flatnonzero(ahead):
            left, right = b_hi[k] + side, b_lo[k] - side
            offset = left if (not m.walker or abs(left) <= abs(right)) else right
            if abs(offset) > m.max_swerve:
                continue
            reach = a_lo[k] - m.half_along - 0.5 * m.margin
            leave = a_hi[k] + m.half_along + 0.5 * m.margin
            start = max(reach - ramp, 0.0)
            if reach - start < shortest:
                continue
            out.append(Swerve(start, reach, leave, leave + ramp, float(offset)))
        return out

    def _clear_until(self, m: Mover, limit: float) -> float:
        """How far ``m`` gets along its path (up to ``limit``) before its footprint meets an obstacle."""
        near = self._near(m, limit)
        if len(near) == 0 or limit <= 0:
            return limit
        s = _samples(limit)
        centre, u, n = _poses(m.path, s)
        ha, hc = m.half_along + m.margin, m.half_across + self.config.side_clearance
        box_c, box_h = (self.lo[near] + self.hi[near]) / 2, (self.hi[near] - self.lo[near]) / 2
        d = box_c[None, :, :] - centre[:, None, :]  # (S, K, 2)
        hit = np.ones(d.shape[:2], dtype=bool)
        for axis in range(2):  # the world axes (the obstacle's)
            r = box_h[None, :, axis] + ha * np.abs(u[:, None, axis]) + hc * np.abs(n[:, None, axis])
            hit &= np.abs(d[..., axis]) < r
        for ax, half in ((u, ha), (n, hc)):  # the mover's axes
            r = half + box_h[None, :, 0] * np.abs(ax[:, None, 0]) + box_h[None, :, 1] * np.abs(ax[:, None, 1])
            hit &= np.abs(np.einsum("skd,sd->sk", d, ax)) < r
        hit &= ~hit[:1]  # what the mover already touches at its start is not in its way
        blocked = np.flatnonzero(hit.any(axis=1))
        return limit if len(blocked) == 0 else float(s[max(blocked[0] - 1, 0)])

    # -- who waits for whom ------------------------------------------------------------------------

    def _same_lane(self, m: Mover, o: Mover) -> bool:
        """``o`` goes ``m``'s way in ``m``'s lane (footprints overlap sideways at t = 0)."""
        if float(o.path.direction @ m.path.direction) < 0.9:
            return False
        d = o.path.origin - m.path.origin
        return abs(float(d @ m.path.normal)) < m.half_across + o.half_across + 0.2

    def _leader(self, i: int) -> int | None:
        """The nearest mover ahead of mover ``i`` in its lane."""
        m = self.movers[i]
        best, best_along = None, np.inf
        for j, o in enumerate(self.movers):
            along = float((o.path.origin - m.path.origin) @ m.path.direction)
            if j != i and self._same_lane(m, o) and 0.0 < along < best_along:
                best, best_along = j, along
        return best

    def _schedule(self, conflicts: dict[tuple[int, int], tuple[float, float, float, float]]) -> None:
        """Add follow and yield limits, each mover after those it depends on."""
        movers = self.movers
        planned: set[int] = set()
        while len(planned) < len(movers):
            ready = [i for i in range(len(movers)) if i not in planned and set(movers[i].deps) <= planned]
            if not ready:  # a cycle (a leader that must wait for its follower's priority): drop the waits
                first = min(set(range(len(movers))) - planned, key=lambda i: movers[i].key)
                movers[first].deps = [d for d in movers[first].deps if d in planned]
                continue
            for i in ready:
                m = movers[i]
                for j in m.deps:
                    if (i, j) in conflicts:
                        self._yield(m, movers[j], conflicts[i, j])
                    else:
                        self._follow(m, movers[j])
                planned.add(i)

    def _follow(self, m: Mover, o: Mover) -> None:
        along = float((o.path.origin - m.path.origin) @ m.path.direction)
        room = along - m.half_along - o.half_along
        if room >= 0.0:
            offset = room - min(m.gap, room)
            m.profile.add(Follow(o.profile, offset, float(o.path.direction @ m.path.direction)), m.band)

    def _yield(self, m: Mover, o: Mover, region: tuple[float, float, float, float]) -> None:
        """Make ``m`` wait before the stretch ``region`` shares with ``o`` while ``o`` is in it."""
        m_lo, m_hi, o_lo, o_hi = region
        if m_lo <= 0.0:
            return  # m stands in o's way already: only passing first can help, and it is not told to wait
        grid = np.arange(0.0, self.config.horizon + _GRID, _GRID)
        s_o = o.profile.at(grid)[0]
        entered = np.flatnonzero(s_o >= o_lo)
        if len(entered) == 0:
            return  # o never gets there
        t_in = float(grid[entered[0]])
        left = np.flatnonzero(s_o > o_hi)
        t_out = float(grid[left[0]]) + _GRID if len(left) else np.inf
        if float(m.profile.at(t_in)[0]) > m_hi:
            return  # m is through before o arrives
        m.profile.add(Yield(m_lo - _STEP, t_out, m.profile.cruise.speed), m.band)


def _samples(limit: float) -> np.ndarray:
    return np.append(np.arange(0.0, limit, _STEP), limit)


def _poses(path: Path, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (S, 2), and unit direction and left normal of the footprint, at samples ``s``."""
    angle = np.arctan2(path.direction[1], path.direction[0]) + path.heading(s)
    u = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return path.point(s), u, np.stack([-u[:, 1], u[:, 0]], axis=1)


def _conflict(m: Mover, o: Mover, clearance: float) -> tuple[float, float, float, float] | None:
    """(m_lo, m_hi, o_lo, o_hi): the stretches of both paths on which the two footprints can meet, or None."""
    sm, so = _samples(m.reach), _samples(o.reach)
    cm, um, nm = _poses(m.path, sm)
    co, uo, no = _poses(o.path, so)
    reach = m.half_along + m.half_across + o.half_along + o.half_across + clearance
    if np.any(cm.min(0) - reach > co.max(0)) or np.any(co.min(0) - reach > cm.max(0)):
        return None
    d = co[None, :, :] - cm[:, None, :]  # (Sm, So, 2)
    ham, hcm = m.half_along + clearance, m.half_across + clearance
    hao, hco = o.half_along, o.half_across
    meet = np.ones(d.shape[:2], dtype=bool)
    for ax, half, other in ((um, ham, (uo, no)), (nm, hcm, (uo, no))):
        r = half + hao * np.abs(ax @ other[0].T) + hco * np.abs(ax @ other[1].T)
        meet &= np.abs(np.einsum("ijd,id->ij", d, ax)) < r
    for ax, half, other in ((uo, hao, (um, nm)), (no, hco, (um, nm))):
        r = half + ham * np.abs(other[0] @ ax.T) + hcm * np.abs(other[1] @ ax.T)
        meet &= np.abs(np.einsum("ijd,jd->ij", d, ax)) < r
    rows, cols = np.nonzero(meet)
    if len(rows) == 0:
        return None
    return float(sm[rows.min()]), float(sm[rows.max()]), float(so[cols.min()]), float(so[cols.max()])


def _half_extents(length: float, width: float, angle: float) -> tuple[float, float]:
    """Half extents of a length x width footprint turned by ``angle``, along and across a path."""
    c, s = abs(np.cos(angle)), abs(np.sin(angle))
    return float(length / 2 * c + width / 2 * s), float(length / 2 * s + width / 2 * c)


def _exit_distance(p: np.ndarray, u: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Distance from ``p`` along ``u`` to the edge of the box [lo, hi] (p inside)."""
    with np.errstate(divide="ignore"):
        to_edge = np.where(u > 0, (hi - p) / u, np.where(u < 0, (lo - p) / u, np.inf))
    return float(np.min(to_edge))
