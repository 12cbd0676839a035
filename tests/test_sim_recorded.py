"""`perception sim generate --backend dataset|carla`: a recording (GTA-LiDAR-layout frames made from the real
SqueezeSeg frames) cut into scenes and written in the generator's format, resumable and shardable; a CARLA backend
without a server fails in one line naming host and port."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from perception_ws.cli import main
from perception_ws.io import open_dataset
from perception_ws.io.simdata import read_arrays
from perception_ws.scan import Scan
from perception_ws.sim.recorded_scenes import as_sweep


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
    assert main([*args, "--carla-host", "127.0.0.1", "--carla-port", str(port)]) == 2
    assert f"no CARLA server answered at 127.0.0.1:{port}" in _error_line(capsys)
