"""Simulated datasets: written to disk at scale (``perception sim generate``), or generated on the fly.

:func:`generate_dataset` renders ``scenes x frames`` sweeps into ``DIR/frames/sNNNNN_fMMM.npz`` (the
format of :mod:`perception_ws.io.simdata`) and keeps ``DIR/manifest.json`` up to date:

* deterministic: scene ``i`` has the seed :func:`scene_seed` ``(seed, i)`` and its frame ``j`` (the
  scene's ``j``-th ego pose) the noise/dropout seed :func:`frame_seed` ``(seed, i, j)``, so the files
  are the same, byte for byte, whatever the number of workers and the order they finish in;
* parallel: ``workers`` processes (``spawn``), each rendering whole scenes with its own ray caster;
* atomic: frames and manifest are written to a temporary name and renamed, so no partial file ever
  carries a final name;
* resumable: run the same command again after a kill; leftover temporary files are removed, frames
  the manifest lists are checked against their checksum, frames written after the last manifest
  update are validated and adopted, and only what is missing is rendered;
* shardable: ``shard=Shard(K, N)`` renders only the scenes ``i`` with ``i % N == K - 1`` and lists them in
  its own ``manifest-shard-K-of-N.json`` (:mod:`perception_ws.io.sim_manifest`); the seeds do not depend
  on the shard, so N shards copied into one folder are the unsharded dataset, frame file for frame file.

:class:`SimulatedScans` yields the same sweeps without touching the disk, for training: scans, or
(range image, labels) pairs; inside a torch ``DataLoader`` (see :func:`torch_dataset`) each worker
takes every n-th scene. Nothing here imports torch at module level.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perception_ws import __version__
from perception_ws.errors import DatasetError, PerceptionError
from perception_ws.io.manifest import PeriodicSave, file_sha256, write_frames_manifest
from perception_ws.io.sim_manifest import MANIFEST, MANIFEST_FORMAT, manifest_name, read_manifest_file, shard_manifests
from perception_ws.io.simdata import FORMAT, FRAMES, encode_frame, range_unit_m, read_arrays, write_frame
from perception_ws.parent_death import init_worker
from perception_ws.projection import range_image
from perception_ws.scan import Scan
from perception_ws.shard import WHOLE, Shard
from perception_ws.sim.sensor.camera import SimCamera
from perception_ws.sim.sensor.intensity import check_intensity_mode, make_intensity
from perception_ws.sim.sensor.lidar import Lidar, Mount
from perception_ws.sim.sensor.noise import Dropout, NoDropout, PhysicalDropout
from perception_ws.sim.sensor.raycast import available_backends, make_raycaster
from perception_ws.sim.simulated_sensor import simulated_sensor
from perception_ws.sim.world.generator import SceneConfig, generate_scene

#: bump when the same configuration would render different frames (scene generator or sensor changes).
GENERATOR_VERSION = 2
DropoutMode = Literal["none", "measured", "physical"]
DROPOUT_MODES: tuple[str, ...] = ("none", "measured", "physical")
SOURCES: tuple[str, ...] = ("builtin", "carla", "dataset")
#: GenerateConfig fields of the recorded sources, left out of a builtin dataset's manifest (as it always was).
_SOURCE_FIELDS = ("source", "carla_host", "carla_port", "carla_town", "carla_traffic", "dataset_path")
_MANIFEST_EVERY_S = 2.0  # rewrite the manifest at most this often while frames finish (and at the end)


# -- configuration and seeds -------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that decides the content of a generated dataset (the worker count does not)."""

    scenes: int
    frames: int = 5
    sensor: str = "hdl64e"
    columns: int = 2048
    seed: int = 0
    dropout: str = "physical"
    intensity: str = "model"
    camera: bool = False
    #: ray-casting backend; "auto" is resolved when generation starts (the backends agree to 1 cm, not bit for bit).
    backend: str = "auto"
    scene: SceneConfig = field(default_factory=SceneConfig)
    #: where the sweeps come from: "builtin" (rendered here), "carla" (a server; a scene is one session seeded
    #: by its scene seed) or "dataset" (a recording cut into scenes); see perception_ws/sim/recorded_scenes.py.
    source: str = "builtin"
    carla_host: str = "localhost"
    carla_port: int = 2000
    carla_town: str = ""
    carla_traffic: int = 0
    dataset_path: str = ""

    def __post_init__(self) -> None:
        for name in ("scenes", "frames", "columns"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise PerceptionError(f"sim generate: {name} must be a whole number >= 1; got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise PerceptionError(f"sim generate: seed must be a whole number >= 0; got {self.seed!r}")
        if self.source not in SOURCES:
            raise PerceptionError(f"sim generate: backend {self.source!r}; expected one of {', '.join(SOURCES)}")
        if self.source == "dataset" and not self.dataset_path:
            raise PerceptionError(
                "sim generate: backend dataset needs --dataset PATH (the recording to cut into scenes)"
            )
        if self.dropout not in DROPOUT_MODES:
            raise PerceptionError(f"sim generate: dropout {self.dropout!r}; expected one of {', '.join(DROPOUT_MODES)}")
        try:
            check_intensity_mode(self.intensity)  # a lir:PATH file is checked here, before any worker starts
        except PerceptionError as exc:
            raise type(exc)(f"sim generate: {exc}") from None
        simulated_sensor(self.sensor)  # an unknown name or a bad profile fails here, in one line
        if self.scene.ego_poses < self.frames:  # frame j is the scene's j-th ego pose
            object.__setattr__(self, "scene", dataclasses.replace(self.scene, ego_poses=self.frames))

    def resolved(self) -> GenerateConfig:
        """This config with the backend named (``auto`` -> the one :func:`make_raycaster` would take)."""
        if self.backend != "auto":
            return self
        have = available_backends()
        return dataclasses.replace(self, backend="open3d" if "open3d" in have else "torch")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists
        if self.source == "builtin":
            for key in _SOURCE_FIELDS:
                data.pop(key)
        return data


def scene_seed(seed: int, scene: int) -> int:
    """The seed of scene ``scene`` of a dataset seeded ``seed`` (independent streams per scene)."""
    return int(np.random.SeedSequence([seed, 0, scene]).generate_state(1, np.uint32)[0])


def frame_seed(seed: int, scene: int, frame: int) -> int:
    """The noise/dropout seed of frame ``frame`` of scene ``scene``."""
    return int(np.random.SeedSequence([seed, 1, scene, frame]).generate_state(1, np.uint32)[0])


def frame_name(scene: int, frame: int) -> str:
    """File stem of frame ``frame`` of scene ``scene``, e.g. ``s00003_f012``."""
    return f"s{scene:05d}_f{frame:03d}"


def make_lidar(sensor: str, columns: int, dropout: str, intensity: str) -> Lidar:
    """The simulated sensor of a dataset's settings."""
    from perception_ws.sim.realism.dropout_map import DropoutMap

    models: tuple[Dropout, ...]
    played = simulated_sensor(sensor)
    model = played.model
    measured = played.dropout_map or DropoutMap.load()  # a profile's own map, else the shipped HDL-64E one
    if dropout == "none":
        models = (NoDropout(),)
    elif dropout == "measured":
        if measured.sensor != model.name or measured.rows != model.height:
            raise PerceptionError(
                f"dropout 'measured': the map was measured on {measured.sensor} ({measured.rows} beams); "
                f"{sensor} has {model.height}; use --dropout physical or none, or a sensor profile folder"
            )
        models = (measured.measured_dropout(model.elevations_deg),)
    else:
        models = (PhysicalDropout(),)
        if measured.sensor == model.name and measured.rows == model.height:
            # where it was measured (KITTI's HDL-64E, or the profile's sensor): the recording car's shadow
            # and the few per cent of returns every row loses, which the physical model does not explain
            models = (PhysicalDropout(), measured.ego_occlusion(model.elevations_deg), measured.background())
    mount = Mount(height=played.mount_height_m)
    return Lidar(model, columns=columns, mount=mount, intensity=make_intensity(intensity), dropout=models)


# -- rendering (runs in the workers) -----------------------------------------------------------


@dataclass(frozen=True)
class SceneTask:
    """One worker's job: the listed frames of one scene of a dataset, written into ``out``."""

    config: GenerateConfig
    out: str
    scene: int
    frames: tuple[int, ...]


def render_scene(task: SceneTask) -> list[dict[str, Any]]:
    """Render the listed frames of one scene into their files; their manifest records."""
    c = task.config
    seed = scene_seed(c.seed, task.scene)
    scene = generate_scene(seed, c.scene)
    caster = make_raycaster(scene.soup, c.backend)
    lidar = make_lidar(c.sensor, c.columns, c.dropout, c.intensity)
    # the camera (KITTI's left colour camera beside the LiDAR) has no noise: it adds no random draws
    camera = SimCamera(lidar=lidar) if c.camera else None
    records = []
    for j in task.frames:
        name = frame_name(task.scene, j)
        fseed = frame_seed(c.seed, task.scene, j)
        pose = scene.ego_poses[j]
        scan = lidar.scan(scene, caster, pose, seed=fseed, name=name)
        meta = {
            "scene": task.scene,
            "frame": j,
            "scene_seed": seed,
            "frame_seed": fseed,
            "pose": dataclasses.asdict(pose),
            "mount": dataclasses.asdict(lidar.mount),
        }
        picture = camera.render(scene, caster, pose, name=name) if camera is not None else None
        data = encode_frame(scan, lidar.model, c.columns, meta, camera=picture)
        relative = f"{FRAMES}/{name}.npz"
        write_frame(Path(task.out) / relative, data)
        records.append(frame_record(relative, task.scene, j, fseed, data, len(scan)))
    return records


def frame_record(relative: str, scene: int, frame: int, seed: int, data: bytes, points: int) -> dict[str, Any]:
    """The manifest record of one frame file."""
    sha = hashlib.sha256(data).hexdigest()
    return {
        "file": relative,
        "scene": scene,
        "frame": frame,
        "seed": seed,
        "sha256": sha,
        "bytes": len(data),
        "points": points,
    }


# -- the manifest and resuming -----------------------------------------------------------------


def new_manifest(config: GenerateConfig, shard: Shard = WHOLE) -> dict[str, Any]:
    """The manifest of a dataset (or of its ``shard``) about to be generated: format, generator, settings,
    sensor and seeds (of the whole dataset); no frames yet.
    """
    sensor = simulated_sensor(config.sensor).model
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": 1,
        "generator": {"package": "perception_ws", "version": __version__, "generator_version": GENERATOR_VERSION},
        "frame_format": FORMAT,
        "config": config.to_json(),
        "sensor": {
            "name": sensor.name,
            "rows": sensor.height,
            "columns": config.columns,
            "elevations_deg": [float(e) for e in sensor.elevations_deg],
            "beam_heights_m": [float(h) for h in sensor.beam_heights_m],
            "max_range_m": sensor.max_range_m,
            "range_unit_m": range_unit_m(sensor.max_range_m),
        },
        "seeds": {"seed": config.seed, "scenes": [scene_seed(config.seed, i) for i in range(config.scenes)]},
        "planned_frames": len(shard.indices(config.scenes)) * config.frames,
        "frames": [],
        "complete": False,
    }
    if not shard.whole:  # the only field that names the shard; an unsharded manifest is as it always was
        manifest["shard"] = {"index": shard.index, "count": shard.count}
    return manifest


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` atomically (frames sorted, ``complete`` set): an interrupted run leaves a readable one."""
    write_frames_manifest(path, manifest, order=lambda r: (r["scene"], r["frame"]))


def remove_temporary_files(out: Path, names: set[str] | None = None) -> list[Path]:
    """Delete what an interrupted run left half-written (``.NAME.XXXX.tmp`` beside frames and manifest);
    with ``names``, only the leftovers of those file names (other shards may be writing into the same folder).
    """
    stale = [
        p
        for folder in (out, out / FRAMES)
        if folder.is_dir()
        for p in folder.glob(".*.tmp")
        if p.is_file() and (names is None or p.name[1:].rsplit(".", 2)[0] in names)
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _shard_files(config: GenerateConfig, shard: Shard) -> set[str]:
    """The names of the files ``shard`` writes: its frames and its manifest."""
    frames = {f"{frame_name(i, j)}.npz" for i in shard.indices(config.scenes) for j in range(config.frames)}
    return frames | {manifest_name(shard)}


def _check_layout(folder: Path, shard: Shard) -> None:
    """Refuse to mix an unsharded run and shards (or shards of another N) in one folder."""
    present = [p.name for p in shard_manifests(folder)] + ([MANIFEST] if (folder / MANIFEST).is_file() else [])
    same_n = f"-of-{shard.count}.json"
    clash = [n for n in present if n != manifest_name(shard) and (shard.whole or not n.endswith(same_n))]
    if clash:
        raise DatasetError(
            f"{folder}: holds {clash[0]}, which is not of --shard {shard}'s layout; choose a new --out "
            "(shards of one dataset share N; an unsharded run and shards do not share a folder)"
        )


def _done_frames(
    out: Path, manifest: dict[str, Any], config: GenerateConfig, scenes: list[int]
) -> dict[tuple[int, int], dict[str, Any]]:
    """Frames of ``scenes`` already on disk and intact, by (scene, frame): listed ones checked, unlisted ones
    adopted.
    """
    done: dict[tuple[int, int], dict[str, Any]] = {}
    for record in manifest["frames"]:
        path = out / record["file"]
        if path.is_file() and file_sha256(path) == record["sha256"]:
            done[(record["scene"], record["frame"])] = record
        else:
            path.unlink(missing_ok=True)  # damaged or altered: render it again
    for scene in scenes:
        for frame in range(config.frames):
            relative = f"{FRAMES}/{frame_name(scene, frame)}.npz"
            path = out / relative
            if (scene, frame) in done or not path.is_file():
                continue
            try:  # written after the last manifest update: adopt it if it reads back whole
                arrays = read_arrays(path)
                points = int(np.count_nonzero(arrays["range"]))
                seed = int(json.loads(str(arrays["meta"]))["frame_seed"])
            except (DatasetError, KeyError, ValueError):
                path.unlink(missing_ok=True)
                continue
            data = path.read_bytes()
            done[(scene, frame)] = frame_record(relative, scene, frame, seed, data, points)
    return done


def _same_config(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))


def generate_dataset(
    out: str | Path,
    config: GenerateConfig,
    workers: int = 1,
    progress: bool = True,
    shard: Shard = WHOLE,
    render: Callable[[SceneTask], list[dict[str, Any]]] = render_scene,
) -> dict[str, Any]:
    """Render (or finish rendering) the dataset of ``config`` (or its ``shard``) into ``out``; returns the
    manifest written (the shard's own with a shard). ``render`` writes one scene's frames (the recorded
    sources pass theirs: :func:`perception_ws.sim.recorded_scenes.record_scene`).
    """
    if not isinstance(workers, int) or workers < 1:
        raise PerceptionError(f"sim generate: workers must be a whole number >= 1; got {workers!r}")
    config = config.resolved()
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"{folder}: exists and is not a folder")
    (folder / FRAMES).mkdir(parents=True, exist_ok=True)
    _check_layout(folder, shard)
    remove_temporary_files(folder, None if shard.whole else _shard_files(config, shard))
    manifest_path = folder / manifest_name(shard)
    manifest = new_manifest(config, shard)
    scenes = shard.indices(config.scenes)
    if manifest_path.is_file():
        stored = read_manifest_file(manifest_path)
        differ = _same_config(stored.get("config", {}), manifest["config"])
        if differ or stored.get("generator", {}).get("generator_version") != GENERATOR_VERSION:
            raise DatasetError(
                f"{folder}: holds a dataset generated with other settings "
                f"({', '.join(differ) or 'generator version'}); "
                "resume with the same settings, or choose a new --out"
            )
        manifest["frames"] = stored.get("frames", [])
    done = _done_frames(folder, manifest, config, scenes)
    manifest["frames"] = list(done.values())
    write_manifest(manifest_path, manifest)
    tasks = [
        SceneTask(config, str(folder), i, missing)
        for i in scenes
        if (missing := tuple(j for j in range(config.frames) if (i, j) not in done))
    ]
    bar = _progress(manifest["planned_frames"], len(done), progress)
    with PeriodicSave(partial(write_manifest, manifest_path, manifest), _MANIFEST_EVERY_S) as saving:
        try:
            for records in _run(tasks, workers, render):
                manifest["frames"].extend(records)
                bar.update(len(records))
                saving.tick()
        finally:
            bar.close()
    return manifest


def _run(
    tasks: Sequence[SceneTask], workers: int, render: Callable[[SceneTask], list[dict[str, Any]]]
) -> Iterator[list[dict[str, Any]]]:
    if workers == 1 or len(tasks) <= 1:
        yield from map(render, tasks)
        return
    # spawn: no copy of the parent's threads (Open3D, torch) in the children; each builds its own caster
    # each worker ends when this process dies, even by SIGKILL (no orphans left writing frames)
    pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)), init_worker, (os.getpid(),))
    with pool:
        yield from pool.imap_unordered(render, tasks, chunksize=1)


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="frame", desc="sim generate", disable=not enabled, file=sys.stderr)


# -- on the fly --------------------------------------------------------------------------------


@dataclass
class SimulatedScans:
    """An iterable of simulated sweeps, rendered as they are asked for (nothing is written).

    Scene ``i`` and frame ``j`` use the seeds of :func:`generate_dataset` with the same settings, so
    ``SimulatedScans(seed=S, ...)`` yields the sweeps ``perception sim generate --seed S`` writes
    (before its storage rounding). ``scenes=None`` iterates without end. ``output="scan"`` yields
    :class:`Scan` objects; ``"range_image"`` yields ``(image, labels)``: the (H, W, 6) float32 image of
    :mod:`perception_ws.projection` and the (H, W) int64 label of each pixel (KITTI-3 ids, or
    SemanticKITTI learning ids with ``labels="semantic"``; 0 where empty).
    """

    seed: int = 0
    sensor: str = "hdl64e"
    columns: int = 2048
    dropout: str = "physical"
    intensity: str = "model"
    frames_per_scene: int = 5
    scenes: int | None = None
    scene_config: SceneConfig = field(default_factory=SceneConfig)
    backend: str = "auto"
    output: Literal["scan", "range_image"] = "scan"
    labels: Literal["kitti3", "semantic"] = "kitti3"

    def __post_init__(self) -> None:
        if self.output not in ("scan", "range_image") or self.labels not in ("kitti3", "semantic"):
            raise PerceptionError(
                f"simulated scans: output {self.output!r} / labels {self.labels!r}; expected output 'scan' or "
                "'range_image' and labels 'kitti3' or 'semantic'"
            )
        # the same validation and scene settings as a generated dataset
        self._config = GenerateConfig(
            scenes=self.scenes or 1,
            frames=self.frames_per_scene,
            sensor=self.sensor,
            columns=self.columns,
            seed=self.seed,
            dropout=self.dropout,
            intensity=self.intensity,
            backend=self.backend,
            scene=self.scene_config,
        )

    def __iter__(self) -> Iterator[Scan | tuple[np.ndarray, np.ndarray]]:
        c = self._config
        lidar = make_lidar(c.sensor, c.columns, c.dropout, c.intensity)
        worker, workers = _torch_worker()
        scene = worker
        while self.scenes is None or scene < self.scenes:
            world = generate_scene(scene_seed(c.seed, scene), c.scene)
            caster = make_raycaster(world.soup, c.backend)
            for j in range(c.frames):
                scan = lidar.scan(world, caster, world.ego_poses[j], frame_seed(c.seed, scene, j), frame_name(scene, j))
                yield scan if self.output == "scan" else self._pair(scan)
            scene += workers

    def _pair(self, scan: Scan) -> tuple[np.ndarray, np.ndarray]:
        assert scan.pixels is not None
        height = simulated_sensor(self.sensor).model.height
        image = range_image(scan.points, scan.pixels, height, self.columns)
        labels = np.zeros((height, self.columns), dtype=np.int64)
        values = scan.labels if self.labels == "kitti3" else scan.semantic
        labels[scan.pixels[:, 0], scan.pixels[:, 1]] = np.asarray(values)
        return image, labels


def _torch_worker() -> tuple[int, int]:
    """(this worker, number of workers) inside a torch DataLoader; (0, 1) elsewhere (torch never imported here)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0, 1
    info = torch.utils.data.get_worker_info()
    return (int(info.id), int(info.num_workers)) if info is not None else (0, 1)


def torch_dataset(scans: SimulatedScans) -> Any:
    """``scans`` as a ``torch.utils.data.IterableDataset`` (what a ``DataLoader`` needs); imports torch."""
    return _torch_class()(scans)


def _torch_class() -> type:
    global _TorchSimulatedScans
    if _TorchSimulatedScans is None:
        from torch.utils.data import IterableDataset

        def iterate(self: Any) -> Iterator[Any]:
            return iter(self.scans)

        def init(self: Any, scans: SimulatedScans) -> None:
            self.scans = scans

        _TorchSimulatedScans = type(
            "TorchSimulatedScans",
            (IterableDataset,),
            {"__init__": init, "__iter__": iterate, "__module__": __name__},
        )
    return _TorchSimulatedScans


_TorchSimulatedScans: type | None = None


def __getattr__(name: str) -> Any:
    # lets pickle find the lazily built class in a spawned DataLoader worker
    if name == "TorchSimulatedScans":
        return _torch_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
