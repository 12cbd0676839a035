"""``perception sim generate --backend carla|dataset``: scenes recorded from a CARLA server or cut from a
recorded dataset, written in the generator's own format (:mod:`perception_ws.io.simdata`) by
:func:`perception_ws.sim.dataset.generate_dataset` (atomic, resumable, shardable, with its progress bar).

* ``carla``: scene ``i`` is one session seeded by :func:`~perception_ws.sim.dataset.scene_seed` (its spawn
  point and traffic) and its frames are consecutive synchronous ticks; a scene left unfinished is recorded
  again whole on resume (a server's traffic does not replay tick for tick), so a scene never mixes sessions.
  Each frame stores the LiDAR's pose in CARLA's world and its mounting on the vehicle
  (:mod:`perception_ws.sim.frame_placement`). ``carla_session`` opens the sessions (a stand-in without a
  server, in the tests); the connect time-out is a run setting, like the worker count, not part of the
  dataset's settings.
* ``dataset``: scene ``i`` is frames ``i * frames .. (i + 1) * frames - 1`` of the recording, in its order
  (``--scenes`` defaults to as many whole scenes as the recording holds).

Each point gets the pixel of its ring (its row, top laser first: CARLA's channel, a range image's row) and
of its azimuth (the column whose centre is nearest, as the built-in sweep lays them out); where two points
share a pixel the nearer one is kept, as a range image keeps it. Points are not on the built-in sensor's
rays (CARLA spaces its channels evenly), so the frame stores their positions (``xyz_mm``). A recording
without semantic classes or instances stores 0 for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from perception_ws.camera_frame import CameraFrame
from perception_ws.errors import DatasetError, PerceptionError
from perception_ws.io.simdata import FRAMES, encode_frame, write_frame
from perception_ws.scan import Scan
from perception_ws.shard import WHOLE, Shard
from perception_ws.sim.carla.client import CarlaSession, SessionFactory
from perception_ws.sim.dataset import (
    GenerateConfig,
    SceneTask,
    frame_name,
    frame_record,
    frame_seed,
    generate_dataset,
    scene_seed,
)
from perception_ws.sim.frame_placement import carla_placement_meta
from perception_ws.sim.simulated_sensor import simulated_sensor

#: seconds a CARLA session waits for the server's first answer (CarlaConfig's default).
DEFAULT_CONNECT_TIMEOUT_S = 5.0


def generate_recorded(
    out: str | Path,
    config: GenerateConfig,
    workers: int = 1,
    progress: bool = True,
    shard: Shard = WHOLE,
    carla_session: SessionFactory = CarlaSession,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> dict[str, Any]:
    """:func:`~perception_ws.sim.dataset.generate_dataset` of a ``carla`` or ``dataset`` ``config`` (what
    ``perception sim generate --backend carla|dataset`` runs); returns the manifest written.
    """
    if config.source == "builtin":
        raise PerceptionError("sim generate: generate_recorded records the carla and dataset backends only")
    if config.source == "carla" and workers > 1:
        raise PerceptionError("sim generate: --backend carla records with one worker (one server, one session)")
    render = partial(record_scene, carla_session=carla_session, connect_timeout_s=connect_timeout_s)
    return generate_dataset(out, config, workers=workers, progress=progress, shard=shard, render=render)


def sweep_pixels(scan: Scan, rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the points kept, their (row, col) pixels): row = ring, col = azimuth bin; the nearest
    point of each pixel is kept.
    """
    ring = scan.field("ring")
    if ring is None:
        raise DatasetError(f"scan {scan.name!r}: has no ring field to give each point its row")
    xyz = scan.xyz.astype(np.float64)
    col = np.floor((np.pi - np.arctan2(xyz[:, 1], xyz[:, 0])) / (2 * np.pi / columns)).astype(np.int64)
    col = np.clip(col, 0, columns - 1)
    row = np.asarray(ring, dtype=np.int64)
    if len(row) and row.max() >= rows:
        raise DatasetError(f"scan {scan.name!r}: ring {int(row.max())} beyond the sensor's {rows} rows")
    distance = np.linalg.norm(xyz, axis=1)
    order = np.lexsort((distance, row * columns + col))  # by pixel, nearest first
    flat = (row * columns + col)[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    keep = np.sort(order[first])
    return keep, np.stack([row[keep], col[keep]], axis=1).astype(np.int32)


def as_sweep(scan: Scan, rows: int, columns: int) -> Scan:
    """``scan`` with one point per pixel and its pixels, labels, semantic classes and instances set."""
    if scan.labels is None:
        raise DatasetError(f"scan {scan.name!r}: has no per-point labels to store")
    keep, pixels = sweep_pixels(scan, rows, columns)
    zeros = np.zeros(len(scan), dtype=np.uint32)
    semantic = scan.semantic if scan.semantic is not None else zeros
    instances = scan.instances if scan.instances is not None else zeros
    return dataclasses.replace(
        scan,
        points=scan.points[keep],
        labels=np.asarray(scan.labels)[keep],
        semantic=np.asarray(semantic)[keep],
        instances=np.asarray(instances)[keep],
        pixels=pixels,
        range_image=None,
    )


def record_scene(
    task: SceneTask,
    carla_session: SessionFactory = CarlaSession,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Write the listed frames of one recorded scene (see the module doc); their manifest records."""
    c = task.config
    model = simulated_sensor(c.sensor).model
    frames = _carla_scene(c, task, carla_session, connect_timeout_s) if c.source == "carla" else _dataset_scene(c, task)
    records = []
    for j, (scan, camera, meta) in frames:
        name = frame_name(task.scene, j)
        sweep = as_sweep(dataclasses.replace(scan, name=name), model.height, c.columns)
        fseed = frame_seed(c.seed, task.scene, j)
        info = {"scene": task.scene, "frame": j, "scene_seed": scene_seed(c.seed, task.scene), "frame_seed": fseed}
        data = encode_frame(sweep, model, c.columns, {**info, **meta}, camera=camera)
        relative = f"{FRAMES}/{name}.npz"
        write_frame(Path(task.out) / relative, data)
        records.append(frame_record(relative, task.scene, j, fseed, data, len(sweep)))
    return records


Recorded = Iterator[tuple[int, tuple[Scan, CameraFrame | None, dict[str, Any]]]]


def _carla_scene(c: GenerateConfig, task: SceneTask, session: SessionFactory, connect_timeout_s: float) -> Recorded:
    from perception_ws.sim.carla import CameraSettings, CarlaConfig, LidarSettings, carla_frames
    from perception_ws.sim.carla_source import carla_camera

    config = CarlaConfig(
        host=c.carla_host,
        port=c.carla_port,
        connect_timeout_s=connect_timeout_s,
        town=c.carla_town or None,
        seed=scene_seed(c.seed, task.scene),
        npc_vehicles=c.carla_traffic,
        lidar=LidarSettings.like(c.sensor, columns=c.columns),
        camera=CameraSettings() if c.camera else None,
    )
    wanted = set(task.frames)
    mount = config.lidar_pose.matrix()
    for j, tick in enumerate(carla_frames(config, max(wanted) + 1, session)):
        if j in wanted:
            meta = {
                "carla_frame": tick.frame,
                "timestamp": tick.timestamp,
                **carla_placement_meta(tick.lidar_pose, mount),
            }
            yield j, (tick.scan, carla_camera(tick), meta)


def _dataset_scene(c: GenerateConfig, task: SceneTask) -> Recorded:
    from perception_ws.io import open_dataset
    from perception_ws.sim.dataset_source import scan_camera

    scans = open_dataset(c.dataset_path)
    for j in task.frames:
        index = task.scene * c.frames + j
        if index >= len(scans):
            raise DatasetError(
                f"{c.dataset_path}: holds {len(scans)} frames; scene {task.scene} needs frame {index} "
                f"(at most {len(scans) // c.frames} scenes of {c.frames})"
            )
        scan = scans[index]
        camera = scan_camera(scan) if c.camera else None
        yield j, (scan, camera, {"source_frame": scan.name, "source": str(c.dataset_path)})
