"""The simulated LiDAR: one ray per beam and azimuth step, first hits turned into a labelled :class:`Scan`.

The ray pattern comes from a sensor's beam table (:mod:`perception_ws.calib.sensors`): beam
elevations in row order (row 0 = top beam) and each beam's origin height; columns sweep a full turn
starting behind the sensor on the left (+180 deg) and running clockwise seen from above, the column
layout of :mod:`perception_ws.projection`, so pixel (row, col) of a simulated sweep is the same
pixel in a projected range image. The sensor is mounted ``height`` above the ground at the ego pose,
pitched and rolled as configured (REP-103: positive pitch about +y lowers the front).

A sweep: cast every ray; let glass pass beams on (re-cast from just behind the pane, a few times at
most); look up class, instance, material and normal of the triangles hit; let the dropout models
remove returns; add range noise; render intensity; express points and boxes in the sensor frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.calib.sensors import SensorModel, get_sensor
from perception_ws.errors import PerceptionError
from perception_ws.scan import Scan
from perception_ws.sim.sensor.intensity import ReflectanceModel
from perception_ws.sim.sensor.noise import Dropout, KeepPlan, PhysicalDropout, RangeNoise, keep_plan
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.sensor.raycaster import Raycaster
from perception_ws.sim.sensor.returns import Returns
from perception_ws.sim.sensor.sweep_kernels import glass_hits, rays_beyond, turn_rays
from perception_ws.sim.sensor.sweep_points import IntensityModel, SweepHits, SweepPoints, points_fast
from perception_ws.sim.world.mesh import rotation_x, rotation_y, rotation_z
from perception_ws.sim.world.scene import EgoPose, Scene, TriangleSoup
from perception_ws.sweep_layout import RayPattern

_GLASS_PASSES = 3  # panes a beam may pass before it is given up (a car: windscreen, rear window …)
_BEHIND_PANE = 1e-3  # re-cast from this far behind a pane, so the pane itself is not hit again


@dataclass(frozen=True)
class Mount:
    """Where the sensor sits: the origin of its frame above the ground, and its tilt."""

    height: float = 1.73  # KITTI: the Velodyne's frame origin 1.73 m above the road
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    def rotation(self) -> np.ndarray:
        """Sensor frame -> vehicle frame (x forward, z up) rotation."""
        return np.asarray(rotation_y(np.radians(self.pitch_deg)) @ rotation_x(np.radians(self.roll_deg)))

    def matrix(self) -> np.ndarray:
        """4x4 pose of the sensor frame in the vehicle frame: ``height`` up, tilted by :meth:`rotation`."""
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = self.rotation(), (0.0, 0.0, self.height)
        return pose


@dataclass
class Lidar:
    """A spinning LiDAR in a simulated scene; :meth:`scan` returns one labelled sweep."""

    sensor: SensorModel | str = "hdl64e"
    #: columns per turn; None: the sensor's own azimuth resolution. docs/algorithms.md §1: a full scan is 64 x 2048.
    columns: int | None = 2048
    mount: Mount = field(default_factory=Mount)
    noise: RangeNoise = field(default_factory=RangeNoise)
    #: None: no intensity (all zeros), as in GTA-style simulation; an ImageIntensity (LIR) renders the sweep's image.
    intensity: IntensityModel | None = field(default_factory=ReflectanceModel)
    dropout: Sequence[Dropout] = field(default_factory=lambda: (PhysicalDropout(),))
    max_range: float | None = None  # None: the sensor's
    #: the dropout models and their kernel plan, made on the first sweep
    _plan: tuple[tuple[Dropout, ...], KeepPlan] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.sensor, str):
            self.sensor = get_sensor(self.sensor)
        self.pattern = RayPattern(self.sensor, self.columns or self.sensor.columns_per_turn)
        if self.max_range is None:
            self.max_range = self.sensor.max_range_m
        if not self.max_range > 0:
            raise PerceptionError(f"lidar: max_range must be > 0 metres; got {self.max_range}")

    @property
    def model(self) -> SensorModel:
        assert isinstance(self.sensor, SensorModel)
        return self.sensor

    def pose_in_world(self, pose: EgoPose) -> tuple[np.ndarray, np.ndarray]:
        """(R, t): sensor frame -> world frame."""
        rot = rotation_z(pose.yaw) @ self.mount.rotation()
        return rot, np.array([pose.x, pose.y, pose.ground_z + self.mount.height])

    def scan(
        self,
        scene: Scene,
        raycaster: Raycaster | None = None,
        pose: EgoPose | None = None,
        seed: int = 0,
        name: str = "",
    ) -> Scan:
        """One sweep of ``scene`` from ``pose`` (default: the scene's first ego pose).

        ``seed`` drives the noise and dropout draws; the same scene, pose and seed give the same scan.
        Build ``raycaster`` once per scene (:func:`make_raycaster`) when taking several sweeps.
        """
        rng = np.random.default_rng(seed)
        rot, trans = self.pose_in_world(pose or scene.ego_poses[0])
        out = self.points(self.cast(scene.soup, raycaster or make_raycaster(scene.soup), rot, trans, rng), rng)
        return Scan(
            points=out.points,
            name=name or f"sim-{scene.seed}",
            sensor=self.model.name,
            labels=out.labels,
            semantic=out.semantic,
            instances=out.instances,
            boxes=self._boxes_in_sensor_frame(scene, rot, trans, out.instances),
            pixels=out.pixels,
        )

    def cast(
        self, soup: TriangleSoup, caster: Raycaster, rot: np.ndarray, trans: np.ndarray, rng: np.random.Generator
    ) -> SweepHits:
        """Every ray of a sweep from the sensor pose (``rot``, ``trans``: sensor -> world) and what it met;
        beams the dropout models let through glass travel on from just behind the pane.
        """
        p = self.pattern
        # beam origins sit on the sensor's z axis: move the H of them; the kernel repeats them per column
        row_origins = (p.origins.astype(np.float64) @ rot.T + trans).astype(np.float32)
        rays = turn_rays(p.directions.reshape(-1, 3), row_origins, np.ascontiguousarray(rot), p.columns)
        max_range = float(self.max_range or 0.0)
        first = caster.cast(rays[:, :3], rays[:, 3:], max_range)  # halves of one array: Open3D takes it uncopied
        hits = SweepHits(p, soup, rays, first.t.astype(np.float32), first.triangle, max_range)
        self._pass_glass(hits, caster, rng)
        return hits

    def points(self, hits: SweepHits, rng: np.random.Generator) -> SweepPoints:
        """The sweep's points after dropout, range noise and intensity, in the sensor frame."""
        return points_fast(hits, self.dropout_plan(), self.noise, self.intensity, rng)

    def dropout_plan(self) -> KeepPlan:
        """The dropout models arranged for the sweep kernels (:func:`keep_plan`), made once and kept."""
        models = tuple(self.dropout)
        cached = self._plan
        if cached is None or cached[0] != models:  # equal models (pixel models: the same ones) plan alike
            cached = self._plan = (models, keep_plan(models, self.pattern.rows, self.pattern.columns))
        return cached[1]

    def _pass_glass(self, hits: SweepHits, caster: Raycaster, rng: np.random.Generator) -> None:
        """Re-cast, in place, the beams the dropout models let through the glass they hit (a few panes at most)."""
        soup, t, tri, behind = hits.soup, hits.t, hits.triangle, np.float32(_BEHIND_PANE)
        on_glass = glass_hits(tri, soup.glass)
        for glass_pass in range(_GLASS_PASSES + 1):
            through = on_glass[self._transmits(hits.returns(on_glass), rng)]
            if len(through) == 0:
                break
            if glass_pass == _GLASS_PASSES:  # still behind glass after the last pass: no return
                tri[through] = -1
                break
            again = rays_beyond(hits.rays, through, t, _BEHIND_PANE)
            more = caster.cast(again[:, :3], again[:, 3:], hits.max_range)
            t[through] = np.where(more.triangle >= 0, t[through] + behind + more.t, np.float32(np.inf))
            tri[through] = more.triangle
            on_glass = through[(more.triangle >= 0) & soup.glass[more.triangle]]

    def _transmits(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        through = np.zeros(len(returns), dtype=bool)
        for model in self.dropout:
            through |= model.transmits(returns, rng)
        return through

    def _boxes_in_sensor_frame(
        self, scene: Scene, rot: np.ndarray, trans: np.ndarray, instances: np.ndarray
    ) -> list[Box3D]:
        """Every actor's box in the sensor frame, with the number of points it got.

        Boxes keep only a yaw: with a pitched or rolled mount they are the world boxes' nearest
        yaw-only equivalent (their centres are exact).
        """
        actors = scene.actors
        if not actors:
            return []
        counts = np.bincount(instances, minlength=max(a.instance for a in actors) + 1)
        # rot.T @ (c - trans) for every centre at once; velocities turn alike
        centres = (np.array([a.box.center for a in actors]) - trans) @ rot
        velocities = np.array([a.box.velocity for a in actors]) @ rot
        sensor_yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))  # world yaw of the sensor's x axis
        yaws = np.angle(np.exp(1j * (np.array([a.box.yaw for a in actors]) - sensor_yaw)))  # wrapped to (-pi, pi]
        return [
            Box3D(
                center=centres[k],
                size=a.box.size.copy(),
                yaw=float(yaws[k]),
                label=a.box.label,
                name=a.box.name,
                num_points=int(counts[a.instance]),
                track_id=a.instance,
                velocity=velocities[k],
            )
            for k, a in enumerate(actors)
        ]
