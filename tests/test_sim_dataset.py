"""Generated simulator datasets: deterministic, parallel, atomic, resumable, readable, with clear errors.

Small settings keep it fast: 80 m streets, 256 columns per turn, a handful of frames.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from perception_ws.errors import DatasetError, PerceptionError
from perception_ws.io import load, open_dataset
from perception_ws.io.simdata import read_arrays
from perception_ws.sim.dataset import (
    GENERATOR_VERSION,
    GenerateConfig,
    SimulatedScans,
    frame_seed,
    generate_dataset,
    scene_seed,
)
from perception_ws.sim.world.generator import SceneConfig

SMALL_SCENE = SceneConfig(half_length=40.0, y_extent=30.0)
CONFIG = GenerateConfig(scenes=3, frames=2, columns=256, seed=5, scene=SMALL_SCENE)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative name, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset of CONFIG rendered in one uninterrupted run with one worker."""
    out = tmp_path_factory.mktemp("reference") / "data"
    generate_dataset(out, CONFIG, workers=1, progress=False)
    return out


def test_same_seed_gives_the_same_bytes_with_one_or_two_workers(reference: Path, tmp_path: Path) -> None:
    generate_dataset(tmp_path / "two", CONFIG, workers=2, progress=False)
    one, two = _files(reference), _files(tmp_path / "two")
    assert sorted(one) == [f"frames/s{i:05d}_f{j:03d}.npz" for i in range(3) for j in range(2)] + ["manifest.json"]
    assert one == two
    other = dataclasses.replace(CONFIG, seed=6, scenes=1, frames=1)
    generate_dataset(tmp_path / "other", other, progress=False)
    assert _files(tmp_path / "other")["frames/s00000_f000.npz"] != one["frames/s00000_f000.npz"]


def test_the_manifest_lists_every_frame_with_its_checksum_seeds_and_settings(reference: Path) -> None:
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["planned_frames"] == 6
    assert manifest["generator"]["generator_version"] == GENERATOR_VERSION
    assert manifest["config"]["seed"] == 5
    assert manifest["config"]["columns"] == 256
    assert manifest["config"]["backend"] in ("open3d", "torch")  # "auto" is resolved before rendering
    assert manifest["sensor"]["name"] == "hdl64e"
    assert manifest["sensor"]["rows"] == 64
    assert manifest["seeds"]["scenes"] == [scene_seed(5, i) for i in range(3)]
    assert [(r["scene"], r["frame"]) for r in manifest["frames"]] == [(i, j) for i in range(3) for j in range(2)]
    import hashlib

    for record in manifest["frames"]:
        data = (reference / record["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
        assert len(data) == record["bytes"]
        assert record["seed"] == frame_seed(5, record["scene"], record["frame"])
        assert record["points"] > 5000  # a 64 x 256 sweep of a street


def test_frames_read_back_through_the_io_registry_with_labels_boxes_and_pixels(reference: Path) -> None:
    dataset = open_dataset(reference)
    assert len(dataset) == 6
    assert not dataset.notes
    direct = SimulatedScans(seed=5, columns=256, frames_per_scene=2, scenes=1, scene_config=SMALL_SCENE)
    for j, fresh in enumerate(direct):
        stored = load(reference / "frames" / f"s00000_f{j:03d}.npz")
        assert stored.sensor == "hdl64e"
        assert stored.pixels is not None
        assert fresh.pixels is not None
        order = np.lexsort((fresh.pixels[:, 1], fresh.pixels[:, 0]))  # stored frames come in row-major order
        np.testing.assert_array_equal(stored.pixels, fresh.pixels[order])
        for name in ("label", "semantic", "instance", "ring"):
            np.testing.assert_array_equal(stored.points[name], fresh.points[name][order], err_msg=name)
        np.testing.assert_allclose(stored.xyz, fresh.xyz[order], atol=2e-3)  # 2 mm range quantum
        np.testing.assert_allclose(stored.points["intensity"], fresh.points["intensity"][order], atol=1 / 500)
        assert [b.track_id for b in stored.boxes] == [b.track_id for b in fresh.boxes]
        for a, b in zip(stored.boxes, fresh.boxes, strict=True):
            assert (a.label, a.name, a.num_points) == (b.label, b.name, b.num_points)
            np.testing.assert_allclose(a.center, b.center, atol=1e-5)
        assert stored.range_image is not None
        assert stored.range_image.shape == (64, 256, 6)
        assert int(stored.range_image[:, :, 5].sum()) == len(stored)
        assert {1, 2} <= set(np.unique(stored.labels).tolist())  # cars and pedestrians in every small street


def _kill_mid_run(out: Path) -> None:
    """Start a real generating process on CONFIG (more scenes), SIGKILL it once some frames are on disk."""
    code = (
        "import sys, dataclasses\n"
        "from perception_ws.sim.dataset import generate_dataset, GenerateConfig\n"
        "from perception_ws.sim.world.generator import SceneConfig\n"
        "scene = SceneConfig(half_length=40.0, y_extent=30.0)\n"
        "c = GenerateConfig(scenes=8, frames=2, columns=256, seed=5, scene=scene)\n"
        "generate_dataset(sys.argv[1], c, workers=1, progress=False)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(out)])
    try:
        deadline = time.monotonic() + 120
        while not list((out / "frames").glob("s00001_*.npz")):
            assert child.poll() is None, "the generating process ended before it could be interrupted"
            assert time.monotonic() < deadline, "no frame appeared within two minutes"
            time.sleep(0.005)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_a_killed_run_resumes_to_the_same_files_and_never_leaves_a_partial_final_file(
    reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    _kill_mid_run(out)
    finals = sorted((out / "frames").glob("*.npz"))
    assert 0 < len(finals) < 16  # interrupted mid-run
    for path in finals:  # whatever carries a final name reads back whole
        read_arrays(path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert {Path(r["file"]).name for r in manifest["frames"]} <= {p.name for p in finals}
    # resuming: the same command finishes the job; its first scenes equal an uninterrupted run's
    big = dataclasses.replace(CONFIG, scenes=8)
    generate_dataset(out, big, progress=False)
    files = _files(out)
    assert not [name for name in files if name.endswith(".tmp")]
    assert len([n for n in files if n.startswith("frames/")]) == 16
    for name, data in _files(reference).items():
        if name.startswith("frames/"):
            assert files[name] == data, name
    uninterrupted = tmp_path / "uninterrupted"
    generate_dataset(uninterrupted, big, progress=False)
    assert _files(uninterrupted) == files


def test_a_corrupt_frame_is_reported_on_read_and_rendered_again_on_resume(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    generate_dataset(out, dataclasses.replace(CONFIG, scenes=1), progress=False)
    victim = out / "frames" / "s00000_f001.npz"
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match=r"s00000_f001\.npz"):
        load(victim)
    with pytest.raises(DatasetError, match=r"s00000_f001\.npz"):
        open_dataset(out)[1]
    generate_dataset(out, dataclasses.replace(CONFIG, scenes=1), progress=False)
    assert victim.read_bytes() == good == (reference / "frames" / "s00000_f001.npz").read_bytes()


def test_resuming_a_folder_generated_with_other_settings_is_refused(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    generate_dataset(out, dataclasses.replace(CONFIG, scenes=1, frames=1), progress=False)
    with pytest.raises(DatasetError, match=r"other settings \(seed\)"):
        generate_dataset(out, dataclasses.replace(CONFIG, scenes=1, frames=1, seed=6), progress=False)
    with pytest.raises(DatasetError, match="columns"):
        generate_dataset(out, dataclasses.replace(CONFIG, scenes=1, frames=1, columns=512), progress=False)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"scenes": 0}, "scenes must be a whole number >= 1"),
        ({"columns": -4}, "columns must be a whole number >= 1"),
        ({"seed": -1}, "seed must be a whole number >= 0"),
        ({"dropout": "sometimes"}, "dropout 'sometimes'; expected one of none, measured, physical"),
        ({"intensity": "learned"}, "intensity 'learned'; expected one of off, model"),
        ({"sensor": "hdl65"}, "hdl65"),
    ],
)
def test_bad_settings_are_refused_with_a_message_naming_them(settings: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"scenes": 1}
    with pytest.raises(PerceptionError, match=message):
        GenerateConfig(**{**base, **settings})  # type: ignore[arg-type]


def test_bad_worker_count_and_a_file_in_place_of_the_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PerceptionError, match="workers must be a whole number >= 1"):
        generate_dataset(tmp_path / "x", CONFIG, workers=0, progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match="exists and is not a folder"):
        generate_dataset(blocker, CONFIG, progress=False)


def test_range_image_pairs_for_training() -> None:
    scans = SimulatedScans(seed=5, columns=256, frames_per_scene=1, scenes=1, output="range_image")
    scans = dataclasses.replace(scans, scene_config=SMALL_SCENE)
    [(image, labels)] = list(scans)
    assert image.shape == (64, 256, 6)
    assert image.dtype == np.float32
    assert labels.shape == (64, 256)
    assert labels.dtype == np.int64
    valid = image[:, :, 5] > 0
    assert not labels[~valid].any()
    assert set(np.unique(labels[valid]).tolist()) <= {0, 1, 2, 3}
    np.testing.assert_allclose(image[valid, 4], np.linalg.norm(image[valid, :3], axis=1), rtol=1e-5)
