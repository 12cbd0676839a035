"""`perception sim generate --backend dataset|carla`: a recording (GTA-LiDAR-layout frames made from the real
SqueezeSeg frames) cut into scenes and written in the generator's format, resumable and shardable; CARLA scenes
recorded from a stand-in session (buffers in CARLA's layouts), resumable and shardable; a CARLA backend without a
server fails in one line naming host and port, after --carla-timeout."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from perception_ws.cli import main
from perception_ws.errors import PerceptionError
from perception_ws.io import open_dataset
from perception_ws.io.simdata import read_arrays, read_frame_meta
from perception_ws.labels import KITTI3
from perception_ws.scan import Scan
from perception_ws.shard import WHOLE, Shard
from perception_ws.sim.dataset import GenerateConfig, scene_seed
from perception_ws.sim.frame_placement import frame_placement
from perception_ws.sim.recorded_scenes import as_sweep, generate_recorded
from tests.helpers.carla import CAR_ACTOR, CAR_POINTS, FIRST_FRAME, StandInSession, sweep_buffer


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def gta_folder(real_data: Path, tmp_path: Path) -> Path:
    """Four GTA-LiDAR-layout frames (x, y, z, range, label) made from the real SqueezeSeg frames."""
    root = tmp_path / "GTAV" / "1"
    root.mkdir(parents=True)
    for path in sorted((real_data / "kitti_squeezeseg").glob("*.npy")):
        np.save(root / path.name, np.delete(np.load(path), 3, axis=2))
    return tmp_path / "GTAV"


def _xyz_mm(scan: Scan) -> np.ndarray:
    return np.rint(scan.xyz.astype(np.float64) * 1000).astype(np.int64)


@pytest.mark.real_data
def test_a_recording_becomes_a_sim_dataset_resumable_and_sharded(
    gta_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = tmp_path / "whole"
    args = ["sim", "generate", "--backend", "dataset", "--dataset", str(gta_folder), "--frames", "2", "--quiet"]
    assert main([*args, "--out", str(whole)]) == 0
    assert "4 of 4 frames (2 scenes x 2)" in capsys.readouterr().out
    recorded, written = list(open_dataset(gta_folder)), list(open_dataset(whole))
    assert [s.name for s in written] == ["s00000_f000", "s00000_f001", "s00001_f000", "s00001_f001"]
    for source, frame in zip(recorded, written, strict=True):
        # every point keeps its position (to the millimetre) and its label; pixels shared by two points keep one
        assert 0.97 * len(source) <= len(frame) <= len(source)
        position = {tuple(p): i for i, p in enumerate(_xyz_mm(source))}
        index = np.array([position[tuple(p)] for p in _xyz_mm(frame)])
        assert source.labels is not None
        np.testing.assert_array_equal(frame.points["label"], source.labels[index])
        np.testing.assert_array_equal(frame.points["ring"], source.points["ring"][index])
        assert (frame.points["label"] == 1).sum() > 500
    meta = str(read_arrays(whole / "frames" / "s00001_f000.npz")["meta"])
    assert f'"source_frame": "{recorded[2].name}"' in meta  # scene 1 frame 0 is the recording's third frame
    # resuming is a no-op: every frame is there and intact
    before = {p.name: p.stat().st_mtime_ns for p in (whole / "frames").iterdir()}
    assert main([*args, "--out", str(whole)]) == 0
    assert before == {p.name: p.stat().st_mtime_ns for p in (whole / "frames").iterdir()}
    # shards copied into one folder are the whole dataset, frame file for frame file
    merged = tmp_path / "merged"
    for k in (1, 2):
        assert main([*args, "--out", str(merged), "--shard", f"{k}/2"]) == 0
    for path in (whole / "frames").iterdir():
        assert (merged / "frames" / path.name).read_bytes() == path.read_bytes()
    assert len(list((merged / "frames").iterdir())) == 4


def test_sweep_pixels_keep_the_nearest_point_of_a_shared_pixel() -> None:
    points = np.zeros(3, dtype=[("x", np.float32), ("y", np.float32), ("z", np.float32), ("ring", np.uint16)])
    points["x"], points["ring"] = [20.0, 10.0, 5.0], [1, 1, 0]  # the first two share ring 1 straight ahead
    sweep = as_sweep(Scan(points=points, labels=np.array([1, 2, 3])), rows=2, columns=8)
    assert sweep.points["x"].tolist() == [10.0, 5.0]
    assert sweep.labels is not None
    assert sweep.labels.tolist() == [2, 3]
    assert sweep.pixels is not None
    assert sweep.pixels.tolist() == [[1, 4], [0, 4]]  # straight ahead: the column right of the sweep's centre


def test_dataset_backend_without_a_recording_or_scenes_says_what_is_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["sim", "generate", "--out", str(tmp_path / "o"), "--backend", "dataset"]) == 2
    assert "--backend dataset needs --dataset PATH" in _error_line(capsys)
    assert main(["sim", "generate", "--out", str(tmp_path / "o"), "--backend", "carla"]) == 2
    assert "--backend carla needs --scenes N" in _error_line(capsys)


def test_carla_backend_without_a_server_names_host_and_port(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["sim", "generate", "--out", str(tmp_path / "c"), "--backend", "carla", "--scenes", "1", "--quiet"]
    started = time.monotonic()
    assert main([*args, "--carla-host", "127.0.0.1", "--carla-port", str(port), "--carla-timeout", "0.5"]) == 2
    assert f"no CARLA server answered at 127.0.0.1:{port} within 0.5 s" in _error_line(capsys)
    assert time.monotonic() - started < 20  # the short time-out, not the 5 s default per try
    with pytest.raises(SystemExit):  # argparse: usage and one error line
        main([*args, "--carla-timeout", "0"])
    assert "argument --carla-timeout: invalid number > 0 value: '0'" in capsys.readouterr().err


CARLA = GenerateConfig(scenes=2, frames=2, source="carla", carla_host="gpu-box", carla_port=2100)


def _carla_positions() -> dict[tuple[int, int, int], int]:
    """The stand-in's points in ROS axes (CARLA's y flipped), to the millimetre -> index in its buffer."""
    buffer, _ = sweep_buffer()
    records = np.frombuffer(buffer, dtype=np.dtype([("xyz", "<f4", 3), ("cos", "<f4"), ("idx", "<u4"), ("tag", "<u4")]))
    xyz = records["xyz"].astype(np.float64) * [1.0, -1.0, 1.0]
    return {tuple(p): i for i, p in enumerate(np.rint(xyz * 1000).astype(np.int64).tolist())}


def _record(out: Path, shard: Shard = WHOLE) -> dict[str, object]:
    return generate_recorded(
        out, CARLA, progress=False, shard=shard, carla_session=StandInSession, connect_timeout_s=2.5
    )


def test_carla_scenes_are_recorded_from_sessions_resumably_and_sharded(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    opened, configs = StandInSession.opened, len(StandInSession.configs)
    manifest = _record(whole)
    assert manifest["complete"]
    # one session per scene, seeded by the scene, at the host, port and time-out asked for; each closed
    sessions = StandInSession.configs[configs:]
    assert [c.seed for c in sessions] == [scene_seed(0, 0), scene_seed(0, 1)]
    assert {(c.host, c.port, c.connect_timeout_s) for c in sessions} == {("gpu-box", 2100, 2.5)}
    assert StandInSession.opened - opened == 2
    assert StandInSession.closed == StandInSession.opened
    positions, car = _carla_positions(), KITTI3.id_of("car")
    written = list(open_dataset(whole))
    assert [s.name for s in written] == ["s00000_f000", "s00000_f001", "s00001_f000", "s00001_f001"]
    for scan in written:
        # every point of the buffer fed in, at its position (mm), with its channel, class and actor
        index = np.array([positions[tuple(p)] for p in _xyz_mm(scan).tolist()])
        assert sorted(index.tolist()) == list(range(len(positions)))
        is_car = index < CAR_POINTS
        np.testing.assert_array_equal(scan.points["ring"], np.where(is_car, 0, 1))
        np.testing.assert_array_equal(scan.points["label"], np.where(is_car, car, 0))
        np.testing.assert_array_equal(scan.points["instance"], np.where(is_car, CAR_ACTOR, 0))
        (box,) = scan.boxes
        assert (box.label, box.track_id, box.num_points) == (car, CAR_ACTOR, CAR_POINTS)
        assert box.center.tolist() == pytest.approx([10.25, 0.0, -1.73])
        # frame j is the session's tick j, and stores where the ego was (1 m further each tick) and the mounting
        path = whole / "frames" / f"{scan.name}.npz"
        meta, tick = read_frame_meta(path), int(scan.name[-3:])
        assert meta["carla_frame"] == FIRST_FRAME + tick
        placement = frame_placement(meta, str(path))
        assert placement is not None
        assert placement.vehicle[:3, 3].tolist() == pytest.approx([tick, 0.0, 0.0])
        assert placement.lidar_in_vehicle[:3, 3].tolist() == pytest.approx([0.0, 0.0, 1.73])
    # resuming a complete dataset opens no session and rewrites nothing
    before = {p.name: p.read_bytes() for p in (whole / "frames").iterdir()}
    stamps = {p.name: p.stat().st_mtime_ns for p in (whole / "frames").iterdir()}
    opened = StandInSession.opened
    _record(whole)
    assert StandInSession.opened == opened
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (whole / "frames").iterdir()}
    # a scene left unfinished is recorded again from a new session (its frame comes back the same)
    (whole / "frames" / "s00001_f001.npz").unlink()
    _record(whole)
    assert StandInSession.opened == opened + 1
    assert StandInSession.configs[-1].seed == scene_seed(0, 1)
    assert (whole / "frames" / "s00001_f001.npz").read_bytes() == before["s00001_f001.npz"]
    # shards copied into one folder are the whole dataset, frame file for frame file
    merged = tmp_path / "merged"
    for k in (1, 2):
        _record(merged, Shard(k, 2))
    assert {p.name: p.read_bytes() for p in (merged / "frames").iterdir()} == before


def test_carla_scenes_record_with_one_worker() -> None:
    with pytest.raises(PerceptionError, match="--backend carla records with one worker"):
        generate_recorded("unused", CARLA, workers=2, carla_session=StandInSession)
