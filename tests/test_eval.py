"""Evaluation on the real frames: an untrained model saved with save_weights runs on every real source
(no training needed: the numbers are arbitrary, the structure is not), and perfect predictions score 100 %."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from perception_ws.cli import main
from perception_ws.evaluation import EvalFrame, evaluate, prepare_frame
from perception_ws.instances import cluster_by_class
from perception_ws.io import load, open_dataset
from perception_ws.labels import KITTI3
from perception_ws.models import build_model, load_weights, save_weights
from perception_ws.models import weights as weights_module
from perception_ws.models.crf import KITTI3_CRF_SIGMAS
from perception_ws.projection import project

OBJECTS = ("car", "pedestrian", "cyclist")


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A never-trained SqueezeSegV2 (steps: 0) saved like a training run would save it."""
    torch.manual_seed(0)
    model = build_model("squeezesegv2", 4)
    folder = tmp_path_factory.mktemp("weights")
    return save_weights(model, folder / "untrained.pt", training={"data": [], "steps": 0}, scores={})


def _check_shape(report: dict[str, Any], frames: int, labelled: bool) -> None:
    assert report["frames"] == frames
    for level in ("class", "instance"):
        if not labelled:
            assert report[level] is None
            continue
        assert set(report[level]) == set(OBJECTS)
        for scores in report[level].values():
            assert set(scores) == {"precision", "recall", "iou"}
            assert all(v is None or 0.0 <= v <= 100.0 for v in scores.values())
    assert report["runtime_ms"]["mean"] > 0
    assert report["runtime_ms"]["std"] >= 0
    assert report["runtime_frame_ms"]["mean"] >= report["runtime_ms"]["mean"]


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("source", "frames", "view"),
    [
        ("kitti_squeezeseg", 2, "the stored 64 x 512 range image"),  # 2 of its 4 frames, to stay fast
        ("kitti_object", 3, "hdl64e 64 x 512, 90 deg"),
        ("semantickitti", 1, "hdl64e 64 x 2048, 360 deg"),
    ],
)
def test_an_untrained_model_is_scored_on_every_labelled_real_source(
    untrained: Path, real_data: Path, source: str, frames: int, view: str
) -> None:
    result = evaluate(load_weights(untrained), real_data / source, max_frames=2 if frames == 2 else None, warmup=False)
    report = result.to_json()
    _check_shape(report, frames, labelled=True)
    assert result.labelled_frames == frames
    assert report["view"].startswith(view)
    assert len(result.network_ms) == frames
    assert len(result.frame_ms) == frames
    derived = [n for n in result.notes if "DBSCAN clusters of the ground-truth labels" in n]
    assert bool(derived) == (source == "kitti_squeezeseg")  # only the .npy frames lack instance ids
    table = result.table()
    assert "class-level" in table
    assert "instance-level" in table
    assert "network:" in table


@pytest.mark.real_data
def test_an_unlabelled_source_says_runtime_only(untrained: Path, real_data: Path) -> None:
    result = evaluate(load_weights(untrained), real_data / "kitti_odometry_00", max_frames=1, warmup=False)
    _check_shape(result.to_json(), 1, labelled=False)
    assert "no labels to score" in result.table()
    assert result.labelled_frames == 0


def test_a_simulated_dataset_is_scored_on_its_stored_sweep(untrained: Path, tmp_path: Path) -> None:
    from perception_ws.sim.dataset import GenerateConfig, generate_dataset

    config = GenerateConfig(scenes=1, frames=1, columns=512, dropout="none", intensity="off")
    generate_dataset(tmp_path / "sim", config, progress=False)
    result = evaluate(load_weights(untrained), tmp_path / "sim", warmup=False)
    _check_shape(result.to_json(), 1, labelled=True)
    assert result.reader == "sim"
    assert result.view == "the stored 64 x 512 range image"
    assert not any("DBSCAN" in n for n in result.notes)  # the simulator's own instance ids are used


@pytest.mark.real_data
def test_perfect_predictions_score_100_percent_on_real_frames(real_data: Path) -> None:
    def perfect(frame: EvalFrame) -> np.ndarray:
        assert frame.labels is not None
        return frame.labels

    # SqueezeSeg frames: classes are perfect. Their ground-truth instances are the same DBSCAN of the same
    # labels, so every predicted instance matches itself; only points DBSCAN leaves unclustered (noise) count
    # in |P| and |G| without a match (docs/algorithms.md §8), so instance P = R = IoU = the class's clustered fraction.
    report = evaluate(perfect, real_data / "kitti_squeezeseg", warmup=False).to_json()
    for name in ("car", "cyclist"):  # both occur in these frames
        assert report["class"][name] == {"precision": 100.0, "recall": 100.0, "iou": 100.0}, name
    assert report["class"]["pedestrian"]["recall"] is None  # no pedestrian here: undefined, not 0
    assert report["runtime_ms"]["mean"] is None  # no network ran
    clustered = total = 0
    for scan in open_dataset(real_data / "kitti_squeezeseg"):
        assert scan.labels is not None
        cars = scan.labels == 1
        clustered += int((cluster_by_class(scan.xyz, scan.labels, KITTI3)[cars] > 0).sum())
        total += int(cars.sum())
    expected = 100.0 * clustered / total
    assert 50.0 < expected < 100.0
    assert report["instance"]["car"] == pytest.approx({"precision": expected, "recall": expected, "iou": expected})

    # KITTI object frames (projected, box-derived labels carried through the view): classes perfect too
    report = evaluate(perfect, real_data / "kitti_object", warmup=False).to_json()
    for name in ("car", "pedestrian"):
        assert report["class"][name] == {"precision": 100.0, "recall": 100.0, "iou": 100.0}, name


@pytest.mark.real_data
def test_the_view_scores_only_points_the_network_sees(real_data: Path) -> None:
    scan = load(real_data / "kitti_object" / "velodyne" / "000002.bin")
    frame = prepare_frame(scan)
    in_view = project(scan, "hdl64e", 90.0, 512).in_view
    assert frame.image.shape == (64, 512, 6)
    assert len(frame.xyz) == int(in_view.sum()) < len(scan)
    # pixel classes flow back to exactly the scored points: a constant image gives that class everywhere
    assert np.all(frame.to_points(np.full((64, 512), 2, dtype=np.int64)) == 2)
    semantic = open_dataset(real_data / "semantickitti")[0]
    assert semantic.semantic is not None
    frame = prepare_frame(semantic)
    assert len(frame.xyz) == int((semantic.semantic != 0).sum())  # unlabelled points carry no truth


@pytest.mark.real_data
def test_a_model_with_a_crf_is_evaluated_through_it(real_data: Path, tmp_path: Path) -> None:
    model = build_model("squeezesegv2", 4, crf=True, crf_params=dict(KITTI3_CRF_SIGMAS))
    path = save_weights(model, tmp_path / "crf.pt", training={"data": [], "steps": 0}, scores={})
    result = evaluate(load_weights(path), real_data / "kitti_squeezeseg", max_frames=1, warmup=False)
    _check_shape(result.to_json(), 1, labelled=True)


@pytest.mark.real_data
def test_cli_eval_prints_one_json_object_without_any_training(
    untrained: Path, real_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = real_data / "kitti_squeezeseg" / "2011_09_26_0001_0000000010.npy"
    argv = ["eval", "--weights", str(untrained), "--data", str(data), "--json", "--quiet", "--no-instances"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 1
    assert report["instance"] is None
    assert set(report["class"]) == set(OBJECTS)
    assert report["runtime_ms"]["mean"] > 0


@pytest.mark.real_data
def test_cli_eval_without_weights_is_one_clear_line(
    real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(weights_module, "DEFAULT_WEIGHTS", tmp_path / "default.pt")
    assert main(["eval", "--data", str(real_data / "kitti_squeezeseg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("perception eval: error:")
    assert "no shipped default weights" in err[0]
