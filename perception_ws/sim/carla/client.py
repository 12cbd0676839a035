"""A session on a running CARLA server: connect, synchronous mode, ego vehicle and sensors, frames.

    from perception_ws.sim.carla import CarlaConfig, CarlaSession

    with CarlaSession(CarlaConfig(host="localhost", town="Town10HD_Opt")) as session:
        for frame in session.frames(100):   # CarlaFrame: frame.scan is a labelled Scan
            ...

The ``carla`` package is imported only here and only when a session opens, so the rest of the
project (and the conversions in convert.py / frame.py) work without it. The session puts the world
into synchronous mode with a fixed step (one LiDAR turn per tick by default) and gives back the
world's previous settings, the traffic manager's mode and every actor it spawned when it closes,
whatever happened in between.
"""

from __future__ import annotations

import queue
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from perception_ws.camera_frame import kitti_calib
from perception_ws.errors import SimulatorError
from perception_ws.sim.carla.config import CarlaConfig
from perception_ws.sim.carla.convert import (
    FLIP_Y,
    bgra_to_rgb,
    carla_pose_from_ros,
    lidar_to_camera,
    ros_pose_from_carla,
    tags_from_segmentation,
)
from perception_ws.sim.carla.frame import ActorState, CarlaFrame, plain_scan, semantic_scan
from perception_ws.sim.carla.tags import actor_base_type, check_tag_numbering, semantic_from_tags

_INSTALL_HINT = "pip install carla (the client's version should match the server's, e.g. pip install carla==0.9.16)"
_SERVER_HINT = "start one (CarlaUE4.sh / CarlaUnreal.sh, port 2000 by default) or pass its host and port"


def import_carla() -> ModuleType:
    """The ``carla`` client module, or one SimulatorError saying how to install it."""
    try:
        import carla  # optional dependency: imported only when a session opens
    except ImportError as exc:
        raise SimulatorError(
            f"the CARLA backend needs CARLA's Python client, which is not installed: {_INSTALL_HINT}"
        ) from exc
    return carla


def connect(host: str = "localhost", port: int = 2000, timeout_s: float = 5.0) -> Any:
    """A ``carla.Client`` that has reached a server with the 0.9.14+ tag numbering.

    A server that does not answer within ``timeout_s`` gives one SimulatorError naming host:port.
    """
    carla = import_carla()
    client = carla.Client(host, int(port))
    client.set_timeout(float(timeout_s))
    try:
        server_version = client.get_server_version()
    except RuntimeError as exc:  # the client raises RuntimeError for time-outs and unknown hosts alike
        raise SimulatorError(
            f"no CARLA server answered at {host}:{port} within {timeout_s:g} s: {_SERVER_HINT} ({exc})"
        ) from exc
    check_tag_numbering(server_version)
    client_version = client.get_client_version()
    if server_version != client_version:
        warnings.warn(
            f"CARLA client {client_version} talks to server {server_version}; if sensors misbehave, "
            f"pip install carla=={server_version}",
            stacklevel=2,
        )
    return client


def synchronous_settings(settings: Any, delta_s: float) -> Any:
    """``settings`` (a ``carla.WorldSettings``) switched to synchronous mode with a fixed step."""
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = float(delta_s)
    return settings


def carla_transform(carla: ModuleType, pose: np.ndarray) -> Any:
    """A ``carla.Transform`` for a 4x4 ROS-axes pose."""
    (x, y, z), (pitch, yaw, roll) = carla_pose_from_ros(pose)
    return carla.Transform(carla.Location(x=x, y=y, z=z), carla.Rotation(pitch=pitch, yaw=yaw, roll=roll))


def ros_pose_of(transform: Any) -> np.ndarray:
    """4x4 ROS-axes pose of a ``carla.Transform``."""
    loc, rot = transform.location, transform.rotation
    return ros_pose_from_carla((loc.x, loc.y, loc.z), (rot.pitch, rot.yaw, rot.roll))


def actor_state(actor: Any) -> ActorState:
    """What a frame needs of a live vehicle or walker."""
    bb, v = actor.bounding_box, actor.get_velocity()
    return ActorState(
        id=int(actor.id),
        base_type=actor_base_type(actor.type_id, actor.attributes.get("base_type", ""), list(actor.semantic_tags)),
        pose=ros_pose_of(actor.get_transform()),
        box_pose=ros_pose_from_carla(
            (bb.location.x, bb.location.y, bb.location.z), (bb.rotation.pitch, bb.rotation.yaw, bb.rotation.roll)
        ),
        extent=np.array([bb.extent.x, bb.extent.y, bb.extent.z]),
        velocity=FLIP_Y @ np.array([v.x, v.y, v.z]),
        blueprint=actor.type_id,
    )


class CarlaSession:
    """Ego vehicle with a semantic LiDAR (optionally a plain one) and cameras, ticked synchronously."""

    def __init__(self, config: CarlaConfig | None = None) -> None:
        self.config = config or CarlaConfig()
        self.client: Any = None
        self.world: Any = None
        self.ego: Any = None
        self._carla: ModuleType | None = None
        self._previous_settings: Any = None
        self._traffic_manager: Any = None
        self._sensors: dict[str, tuple[Any, queue.Queue[Any]]] = {}
        self._npcs: list[int] = []
        self._camera_in_lidar = self.config.camera.pose.matrix() if self.config.camera else None

    def __enter__(self) -> CarlaSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, switch to synchronous mode and spawn everything; on any failure undo what was done."""
        cfg = self.config
        try:
            self._carla = import_carla()
            self.client = connect(cfg.host, cfg.port, cfg.connect_timeout_s)
            self.client.set_timeout(cfg.timeout_s)
            self.world = self.client.get_world()
            if cfg.town and not self.world.get_map().name.endswith(cfg.town):
                self.world = self.client.load_world(cfg.town)
            self._previous_settings = self.world.get_settings()
            self.world.apply_settings(synchronous_settings(self.world.get_settings(), cfg.tick_s))
            self._traffic_manager = self.client.get_trafficmanager(cfg.traffic_manager_port)
            self._traffic_manager.set_synchronous_mode(True)
            self._traffic_manager.set_random_device_seed(cfg.seed)
            self._spawn_ego()
            self._spawn_sensors()
            self._spawn_npcs()
            for _ in range(cfg.warmup_ticks):
                self._tick()
        except RuntimeError as exc:  # what the carla client raises for server-side failures
            self.close()
            raise SimulatorError(f"CARLA server at {cfg.host}:{cfg.port}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _blueprint(self, pattern: str) -> Any:
        found = sorted(self.world.get_blueprint_library().filter(pattern), key=lambda bp: bp.id)
        if not found:
            raise SimulatorError(f"CARLA has no blueprint matching {pattern!r}")
        return found[0]

    def _spawn_ego(self) -> None:
        cfg = self.config
        blueprint = self._blueprint(cfg.vehicle)
        if blueprint.has_attribute("role_name"):
            blueprint.set_attribute("role_name", "hero")
        points = self.world.get_map().get_spawn_points()
        if not points:
            raise SimulatorError("the CARLA map has no spawn points")
        if cfg.spawn_point is not None and not 0 <= cfg.spawn_point < len(points):
            raise SimulatorError(f"spawn_point {cfg.spawn_point} is out of range; the map has {len(points)}")
        first = (
            cfg.spawn_point
            if cfg.spawn_point is not None
            else int(np.random.default_rng(cfg.seed).integers(len(points)))
        )
        for k in range(len(points)):  # the chosen point may be taken: try the next ones
            self.ego = self.world.try_spawn_actor(blueprint, points[(first + k) % len(points)])
            if self.ego is not None:
                break
        if self.ego is None:
            raise SimulatorError("could not spawn the ego vehicle: every spawn point of the map is occupied")
        if cfg.autopilot:
            self.ego.set_autopilot(True, cfg.traffic_manager_port)

    def _attach(self, key: str, blueprint_id: str, attributes: dict[str, str], pose_in_vehicle: np.ndarray) -> None:
        assert self._carla is not None
        blueprint = self.world.get_blueprint_library().find(blueprint_id)
        for name, value in attributes.items():
            blueprint.set_attribute(name, value)
        blueprint.set_attribute("sensor_tick", "0.0")  # data on every tick
        sensor = self.world.spawn_actor(blueprint, carla_transform(self._carla, pose_in_vehicle), attach_to=self.ego)
        data: queue.Queue[Any] = queue.Queue()
        self._sensors[key] = (sensor, data)
        sensor.listen(data.put)

    def _spawn_sensors(self) -> None:
        cfg = self.config
        lidar_in_vehicle = cfg.lidar_pose.matrix()
        self._attach("semantic_lidar", "sensor.lidar.ray_cast_semantic", cfg.lidar.attributes(), lidar_in_vehicle)
        if cfg.plain_lidar:
            self._attach("lidar", "sensor.lidar.ray_cast", cfg.plain_lidar_attributes(), lidar_in_vehicle)
        if cfg.camera is not None and self._camera_in_lidar is not None:
            camera_in_vehicle = lidar_in_vehicle @ self._camera_in_lidar
            self._attach("rgb", "sensor.camera.rgb", cfg.camera.attributes(), camera_in_vehicle)
            if cfg.camera.semantic:
                self._attach(
                    "segmentation", "sensor.camera.semantic_segmentation", cfg.camera.attributes(), camera_in_vehicle
                )

    def _spawn_npcs(self) -> None:
        cfg = self.config
        if cfg.npc_vehicles == 0:
            return
        carla = self._carla
        assert carla is not None
        rng = np.random.default_rng(cfg.seed + 1)
        blueprints = sorted(self.world.get_blueprint_library().filter("vehicle.*"), key=lambda bp: bp.id)
        points = self.world.get_map().get_spawn_points()
        chosen = rng.permutation(len(points))[: cfg.npc_vehicles]
        batch = []
        for i in chosen:
            blueprint = blueprints[int(rng.integers(len(blueprints)))]
            batch.append(
                carla.command.SpawnActor(blueprint, points[int(i)]).then(
                    carla.command.SetAutopilot(carla.command.FutureActor, True, cfg.traffic_manager_port)
                )
            )
        # spawn points next to the ego may be taken: those commands fail and are simply skipped
        self._npcs = [r.actor_id for r in self.client.apply_batch_sync(batch, True) if not r.has_error()]

    # -- ticking ---------------------------------------------------------------------------------

    def _tick(self) -> int:
        try:
            return int(self.world.tick(self.config.timeout_s))
        except RuntimeError as exc:
            raise SimulatorError(
                f"CARLA server at {self.config.host}:{self.config.port} stopped ticking: {exc}"
            ) from exc

    def _measurement(self, key: str, frame: int) -> Any:
        """The sensor's data of ``frame`` (older items in its queue are skipped)."""
        data = self._sensors[key][1]
        timeout = self.config.sensor_timeout_s
        while True:
            try:
                item = data.get(timeout=timeout)
            except queue.Empty:
                raise SimulatorError(
                    f"CARLA sensor {key!r} sent no data for frame {frame} within {timeout:g} s"
                ) from None
            if item.frame >= frame:
                return item

    def frames(self, count: int | None = None) -> Iterator[CarlaFrame]:
        """Tick the world and yield one :class:`CarlaFrame` per tick (``count`` of them, or forever)."""
        if self.world is None or self.ego is None:
            raise SimulatorError("the CARLA session is not open: use `with CarlaSession(config) as session:`")
        produced = 0
        while count is None or produced < count:
            yield self._frame(self._tick())
            produced += 1

    def _frame(self, frame: int) -> CarlaFrame:
        cfg = self.config
        lidar = self._measurement("semantic_lidar", frame)
        stamp_ns = round(lidar.timestamp * 1e9)
        name = f"carla_{frame:08d}"
        lidar_pose = ros_pose_of(lidar.transform)
        actors = [actor_state(a) for a in self._others()]
        raw, counts = lidar.raw_data, [lidar.get_point_count(c) for c in range(lidar.channels)]
        scan = semantic_scan(
            raw,
            counts,
            actors,
            lidar_pose,
            ego_id=self.ego.id if cfg.drop_ego_points else None,
            name=name,
            stamp_ns=stamp_ns,
            sensor=cfg.lidar.name,
            max_box_range=cfg.lidar.range_m,
        )
        out = CarlaFrame(frame=frame, timestamp=float(lidar.timestamp), scan=scan, lidar_pose=lidar_pose)
        if "lidar" in self._sensors:
            plain = self._measurement("lidar", frame)
            plain_counts = [plain.get_point_count(c) for c in range(plain.channels)]
            out.plain = plain_scan(plain.raw_data, plain_counts, name=name, stamp_ns=stamp_ns)
        if "rgb" in self._sensors and cfg.camera is not None and self._camera_in_lidar is not None:
            image = self._measurement("rgb", frame)
            out.image = bgra_to_rgb(image.raw_data, image.width, image.height)
            out.camera = cfg.camera.pinhole()
            out.extrinsic = lidar_to_camera(self._camera_in_lidar)
            scan.image, scan.calib = out.image, kitti_calib(out.camera, out.extrinsic, source="CARLA camera")
        if "segmentation" in self._sensors:
            seg = self._measurement("segmentation", frame)
            out.tag_image = tags_from_segmentation(seg.raw_data, seg.width, seg.height)
            out.semantic_image = semantic_from_tags(out.tag_image).astype(np.uint8)
        return out

    def _others(self) -> list[Any]:
        """Every vehicle and walker but the ego."""
        actors = self.world.get_actors()
        found = list(actors.filter("vehicle.*")) + list(actors.filter("walker.pedestrian.*"))
        return [a for a in found if a.id != self.ego.id]

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the sensors, give back the world's settings and destroy every spawned actor.

        Each step runs even if an earlier one failed (a lost server); failures become warnings so
        that they never hide the error that ended the session.
        """
        steps: list[tuple[str, Callable[[], object]]] = [(f"stop {k}", s.stop) for k, (s, _) in self._sensors.items()]
        if self._traffic_manager is not None:
            tm = self._traffic_manager
            steps.append(("traffic manager back to asynchronous", lambda: tm.set_synchronous_mode(False)))
        if self._previous_settings is not None and self.world is not None:
            world, previous = self.world, self._previous_settings
            steps.append(("restore world settings", lambda: world.apply_settings(previous)))
        ids = [s.id for s, _ in self._sensors.values()] + ([self.ego.id] if self.ego is not None else []) + self._npcs
        if ids and self.client is not None and self._carla is not None:
            client, destroy = self.client, self._carla.command.DestroyActor
            steps.append(("destroy actors", lambda: client.apply_batch_sync([destroy(i) for i in ids], False)))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # keep cleaning up; report below
                warnings.warn(f"CARLA clean-up: could not {what}: {exc}", stacklevel=2)
        self._sensors, self._npcs, self.ego = {}, [], None
        self._traffic_manager = self._previous_settings = None


class Session(Protocol):
    """What the project's callers need of a session: :class:`CarlaSession`, or a stand-in without a server."""

    def open(self) -> None: ...

    def frames(self, count: int | None = None) -> Iterator[CarlaFrame]: ...

    def close(self) -> None: ...


#: how a caller opens a session on a config: :class:`CarlaSession` itself, or a stand-in's class (the tests').
SessionFactory = Callable[[CarlaConfig], Session]


def carla_frames(
    config: CarlaConfig | None = None, count: int | None = None, open_session: SessionFactory = CarlaSession
) -> Iterator[CarlaFrame]:
    """Frames from a fresh session (made by ``open_session``) that is closed when the generator ends or is closed."""
    session = open_session(config or CarlaConfig())
    session.open()
    try:
        yield from session.frames(count)
    finally:
        session.close()
