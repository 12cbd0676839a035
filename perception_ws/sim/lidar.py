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
from functools import cached_property

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.calib.sensors import SensorModel, get_sensor
from perception_ws.errors import PerceptionError
from perception_ws.scan import Scan
from perception_ws.sim.blas import one_blas_thread
from perception_ws.sim.intensity import ReflectanceModel
from perception_ws.sim.mesh import rotation_x, rotation_y, rotation_z
from perception_ws.sim.noise import Dropout, PhysicalDropout, RangeNoise
from perception_ws.sim.raycast import Raycaster, make_raycaster
from perception_ws.sim.returns import Returns
from perception_ws.sim.scene import EgoPose, Scene, TriangleSoup

#: the fields of a simulated point (x, y, z in the sensor frame)
POINT_DTYPE = np.dtype(
    [
        ("x", np.float32),
        ("y", np.float32),
        ("z", np.float32),
        ("intensity", np.float32),
        ("ring", np.uint16),
        ("label", np.uint8),
        ("semantic", np.uint8),
        ("instance", np.uint32),
    ]
)
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
        return rotation_y(np.radians(self.pitch_deg)) @ rotation_x(np.radians(self.roll_deg))


@dataclass(frozen=True, eq=False)
class RayPattern:
    """Per pixel (row, col) of one sweep: the ray's origin and unit direction in the sensor frame."""

    sensor: SensorModel
    columns: int

    def __post_init__(self) -> None:
        if self.columns < 1:
            raise PerceptionError(f"ray pattern: columns must be >= 1; got {self.columns}")

    @property
    def rows(self) -> int:
        return self.sensor.height

    @cached_property
    def azimuths(self) -> np.ndarray:
        """(W,) radians of the column centres: +pi at the left edge, decreasing (clockwise)."""
        return np.pi - (np.arange(self.columns) + 0.5) * (2 * np.pi / self.columns)

    @cached_property
    def directions(self) -> np.ndarray:
        """(H, W, 3) float32 unit directions."""
        el = np.radians(self.sensor.elevations_deg)[:, None]
        az = self.azimuths[None, :]
        d = np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), axis=-1)
        return d.astype(np.float32)

    @cached_property
    def origins(self) -> np.ndarray:
        """(H, 3) float32 beam origins (on the z axis, at each beam's height)."""
        out = np.zeros((self.rows, 3), dtype=np.float32)
        out[:, 2] = self.sensor.beam_heights_m
        return out

    @cached_property
    def pixel_origins(self) -> np.ndarray:
        """(H * W, 3) float32 origin of every pixel's ray, row-major."""
        return np.repeat(self.origins, self.columns, axis=0)

    @cached_property
    def direction_columns(self) -> np.ndarray:
        """(3, H * W) float32: the x, y and z of every pixel's direction, each contiguous (fast gathers)."""
        return np.ascontiguousarray(self.directions.reshape(-1, 3).T)

    @cached_property
    def pixel_origins_z(self) -> np.ndarray:
        """(H * W,) float32 height of every pixel's beam origin (its x and y are 0)."""
        return np.ascontiguousarray(self.pixel_origins[:, 2])

    @cached_property
    def ring_of_row(self) -> np.ndarray:
        """(H,) uint16 ring value of each row under the sensor's ring numbering (what a driver would write)."""
        ring = np.empty(self.rows, dtype=np.uint16)
        ring[np.asarray(self.sensor.ring_to_row)] = np.arange(self.rows, dtype=np.uint16)
        return ring


@dataclass
class Lidar:
    """A spinning LiDAR in a simulated scene; :meth:`scan` returns one labelled sweep."""

    sensor: SensorModel | str = "hdl64e"
    #: columns per turn; None: the sensor's own azimuth resolution. SPEC: a full scan is 64 x 2048.
    columns: int | None = 2048
    mount: Mount = field(default_factory=Mount)
    noise: RangeNoise = field(default_factory=RangeNoise)
    #: None: no intensity (all zeros), as in GTA-style simulation.
    intensity: ReflectanceModel | None = field(default_factory=ReflectanceModel)
    dropout: Sequence[Dropout] = field(default_factory=lambda: (PhysicalDropout(),))
    max_range: float | None = None  # None: the sensor's

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
        pose = pose or scene.ego_poses[0]
        caster = raycaster or make_raycaster(scene.soup)
        soup = scene.soup
        rot, trans = self.pose_in_world(pose)
        p = self.pattern
        dirs_s = p.directions.reshape(-1, 3)
        with one_blas_thread():
            dirs_w = dirs_s @ rot.T.astype(np.float32)
        # beam origins sit on the sensor's z axis: move the H of them, then repeat per column
        orig_w = np.repeat((p.origins.astype(np.float64) @ rot.T + trans).astype(np.float32), p.columns, axis=0)
        max_range = float(self.max_range or 0.0)
        hits = caster.cast(orig_w, dirs_w, max_range)
        t, tri = hits.t.astype(np.float64), hits.triangle
        # glass: beams the dropout models let through travel on from just behind the pane
        on_glass = np.flatnonzero((tri >= 0) & soup.glass[tri])
        for glass_pass in range(_GLASS_PASSES + 1):
            through = on_glass[self._transmits(self._returns(soup, on_glass, t, tri, dirs_w), rng)]
            if len(through) == 0:
                break
            if glass_pass == _GLASS_PASSES:  # still behind glass after the last pass: no return
                tri[through] = -1
                break
            start = orig_w[through] + dirs_w[through] * (t[through, None] + _BEHIND_PANE).astype(np.float32)
            more = caster.cast(start, dirs_w[through], max_range)
            t[through] = np.where(more.triangle >= 0, t[through] + _BEHIND_PANE + more.t, np.inf)
            tri[through] = more.triangle
            on_glass = through[(more.triangle >= 0) & soup.glass[more.triangle]]
        tri[t > max_range] = -1
        hit = np.flatnonzero(tri >= 0)
        returns = self._returns(soup, hit, t, tri, dirs_w)
        keep = np.ones(len(hit), dtype=bool)
        for model in self.dropout:
            keep &= model.keeps(returns, rng)
        kept = np.flatnonzero(keep)
        hit, returns = hit[kept], returns.subset(kept)
        ranges = self.noise.apply(returns.range, rng)
        intensity = (
            self.intensity.render(returns, rng) if self.intensity is not None else np.zeros(len(hit), np.float32)
        )
        tris = np.take(tri, hit)
        points = np.empty(len(hit), dtype=POINT_DTYPE)
        # beam origins lie on the z axis (x = y = 0): x and y are the direction times the range alone
        for axis, name in enumerate("xyz"):
            np.multiply(p.direction_columns[axis].take(hit), ranges, out=points[name])
        points["z"] += p.pixel_origins_z.take(hit)
        points["intensity"] = intensity
        points["ring"] = p.ring_of_row[returns.row]
        points["label"] = soup.kitti3[tris]
        points["semantic"] = soup.semantic[tris]
        points["instance"] = soup.instance[tris]
        return Scan(
            points=points,
            name=name or f"sim-{scene.seed}",
            sensor=self.model.name,
            labels=points["label"].copy(),
            semantic=points["semantic"].copy(),
            instances=points["instance"].copy(),
            boxes=self._boxes_in_sensor_frame(scene, rot, trans, points["instance"]),
            pixels=np.stack([returns.row, returns.col], axis=1).astype(np.int32),
        )

    def _returns(
        self, soup: TriangleSoup, hit: np.ndarray, t: np.ndarray, tri: np.ndarray, dirs_w: np.ndarray
    ) -> Returns:
        tris = tri[hit]
        normal, direction = np.take(soup.normals, tris, axis=0), np.take(dirs_w, hit, axis=0)
        cos = np.abs(normal[:, 0] * direction[:, 0] + normal[:, 1] * direction[:, 1] + normal[:, 2] * direction[:, 2])
        row, col = np.divmod(hit, self.pattern.columns)
        return Returns(
            row=row,
            col=col,
            height=self.pattern.rows,
            width=self.pattern.columns,
            range=t[hit].astype(np.float32),
            cos_incidence=cos.astype(np.float32),
            albedo=soup.albedo[tris],
            retro=soup.retro[tris],
            glass=soup.glass[tris],
        )

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
        counts = np.bincount(
            instances.astype(np.int64), minlength=max((a.instance for a in scene.actors), default=0) + 1
        )
        sensor_yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))  # world yaw of the sensor's x axis
        boxes = []
        for actor in scene.actors:
            b = actor.box
            boxes.append(
                Box3D(
                    center=rot.T @ (b.center - trans),
                    size=b.size.copy(),
                    yaw=float(np.angle(np.exp(1j * (b.yaw - sensor_yaw)))),
                    label=b.label,
                    name=b.name,
                    num_points=int(counts[actor.instance]),
                    track_id=actor.instance,
                    velocity=rot.T @ b.velocity,
                )
            )
        return boxes
