"""`perception adapt` (perception_ws.adapt.run, report, cli/adapt) end to end on real unlabelled scans, at
--small scale: the files it writes, the weights in the node's pipeline, resuming after a stop, a rerun that
does nothing, refused reruns with other settings, bad input, and the LIR stage on a target with intensities.

One VLP-32C scan (no intensity: no LIR) is the main target; two KITTI odometry scans (0..1 intensity) run
the LIR stage. Training is cut to 2 steps (1 for LIR): what is tested is the plumbing, not the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from perception_ws.adapt.layout import LIR_DIR, LIR_FILE, TRAIN_DIR
from perception_ws.adapt.run import AdaptSettings, RunOptions, adapt
from perception_ws.cli import main
from perception_ws.config import load_config
from perception_ws.io import load
from perception_ws.models import load_weights
from perception_ws.models.network_segmenter import NetworkSegmenter
from perception_ws.models.weights import read_manifest
from perception_ws.pipeline import Pipeline
from perception_ws.training.checkpoint import CHECKPOINT, load_checkpoint

pytestmark = pytest.mark.real_data
VLP32_SCAN = "vlp32/1713492677464078412.pcd"


class Outcome(NamedTuple):
    status: int
    err: str


def _adapt_cli(target: Path, out: Path, *extra: str) -> Outcome:
    """`perception adapt --small` on CPU (2 training steps), in this process; its exit status and stderr."""
    argv = ["adapt", "--target", str(target), "--out", str(out), "--sensor", "vlp32c", "--small", "--steps", "2"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([*argv, "--workers", "0", "--device", "cpu", *extra])
    return Outcome(status, err.getvalue())


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


class Vlp32Run(NamedTuple):
    target: Path
    out: Path
    stopped: Outcome  # the first run, stopped by --max-minutes after its first training step
    checkpoint_step_when_stopped: int
    weights_when_stopped: bool
    resumed: Outcome  # the same command again, without the time limit: to the end


@pytest.fixture(scope="module")
def vlp32_run(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Vlp32Run:
    target, out = real_data / VLP32_SCAN, tmp_path_factory.mktemp("adapt") / "vlp32"
    # --out relative to where the command runs, as a user types it; the tests after rerun it by full path
    with contextlib.chdir(out.parent):
        # a time limit checked after each step stops the run after its first: a kill between steps, resumable
        stopped = _adapt_cli(target, Path(out.name), "--max-minutes", "1e-6")
        step = int(load_checkpoint(out / TRAIN_DIR / CHECKPOINT)["step"])
        weights_when_stopped = (out / "weights.pt").exists()
        resumed = _adapt_cli(target, Path(out.name))
    return Vlp32Run(target, out, stopped, step, weights_when_stopped, resumed)


def test_a_stopped_run_resumes_to_the_end(vlp32_run: Vlp32Run) -> None:
    assert vlp32_run.stopped.status == 0
    assert "run the same command again to continue" in vlp32_run.stopped.err
    assert vlp32_run.checkpoint_step_when_stopped == 1
    assert not vlp32_run.weights_when_stopped
    assert vlp32_run.resumed.status == 0
    assert "adapt 1/5" not in vlp32_run.resumed.err  # the profile was kept
    for stage in ("adapt 3/5", "adapt 4/5", "adapt 5/5"):
        assert stage in vlp32_run.resumed.err
    assert int(load_checkpoint(vlp32_run.out / TRAIN_DIR / CHECKPOINT)["step"]) == 2


def test_the_run_writes_every_stage_and_a_manifest_recording_the_adaptation(vlp32_run: Vlp32Run) -> None:
    out = vlp32_run.out
    for name in ("adapt.json", "profile/sensor.yaml", "profile/dropout.npz", "profile/profile.json"):
        assert (out / name).is_file(), name
    for name in ("train/checkpoint.pt", "weights.pt", "weights.json"):
        assert (out / name).is_file(), name
    for name in ("report.md", "report.json", "before_after.png"):
        assert (out / "report" / name).stat().st_size > 0, name
    assert not (out / LIR_DIR).exists()  # the VLP-32C scan has no intensity field
    adaptation = read_manifest(out / "weights.pt")["training"]["adaptation"]
    assert adaptation["target"] == str(vlp32_run.target)
    assert adaptation["sensor_profile"] == str(out / "profile")
    assert adaptation["lir"] == "off"
    assert adaptation["pdc"]["layers"] == 42  # every batch-norm layer of SqueezeSegV2
    assert adaptation["pdc"]["target_frames"] == 1
    report = json.loads((out / "report" / "report.json").read_text())
    # full paths although --out was relative: the node reads them from wherever it starts
    assert report["node_parameters"] == {
        "segmenter.weights": str(out / "weights.pt"),
        "sensor.model": str(out / "profile" / "sensor.yaml"),
        # the scan holds the front half-turn only: the node's view needs no more (0.2 deg a column)
        "sensor.fov_deg": 190.0,
        "sensor.width": 950,
    }
    assert set(report["per_frame"]) == {"before", "after"}
    assert "| car |" in (out / "report" / "report.md").read_text()


def test_the_weights_run_in_the_nodes_pipeline_with_the_profiled_sensor(vlp32_run: Vlp32Run, tmp_path: Path) -> None:
    out = vlp32_run.out
    params = tmp_path / "params.yaml"  # what a user gives the perception node: its params file
    parameters = {
        "segmenter": {"weights": str(out / "weights.pt")},
        "sensor": {"model": str(out / "profile" / "sensor.yaml")},
    }
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    pipeline = Pipeline(load_config(params).pipeline_config())
    assert pipeline.sensor.height == 32
    assert isinstance(pipeline.segmenter, NetworkSegmenter)
    assert load_weights(out / "weights.pt").in_channels == pipeline.segmenter.in_channels
    scan = load(vlp32_run.target)
    result = pipeline.process(scan.points, 0.0, track=False)
    assert result.labels.shape == (len(scan.points),)
    # the node's way gives the report's "after" counts (its one frame), which differ from the "before" ones
    names = pipeline.class_set.names
    points = {name: float((result.labels == i).sum()) for i, name in enumerate(names) if i > 0}
    report = json.loads((out / "report" / "report.json").read_text())["per_frame"]
    assert points == {name: counts["points"] for name, counts in report["after"].items()}
    assert points != {name: counts["points"] for name, counts in report["before"].items()}


def test_a_rerun_of_a_finished_run_does_nothing(vlp32_run: Vlp32Run) -> None:
    before = _checksums(vlp32_run.out)
    again = _adapt_cli(vlp32_run.target, vlp32_run.out)
    assert again.status == 0
    assert again.err == ""
    assert _checksums(vlp32_run.out) == before


def test_deleted_weights_are_rebuilt_byte_for_byte(vlp32_run: Vlp32Run) -> None:
    # PDC is deterministic given the trained network and the same target crops
    weights, report = vlp32_run.out / "weights.pt", vlp32_run.out / "report" / "report.json"
    first = weights.read_bytes()
    weights.unlink()
    rebuilt = _adapt_cli(vlp32_run.target, vlp32_run.out)
    assert rebuilt.status == 0
    assert "adapt 4/5" in rebuilt.err
    assert "adapt 5/5" in rebuilt.err  # the report of the new weights is written again
    assert weights.read_bytes() == first
    assert report.is_file()


def test_a_rerun_with_other_settings_is_refused_in_one_line(vlp32_run: Vlp32Run) -> None:
    before = _checksums(vlp32_run.out)
    refused = _adapt_cli(vlp32_run.target, vlp32_run.out, "--gca-weight", "5")
    assert refused.status == 2
    assert len(refused.err.strip().splitlines()) == 1
    assert "holds a run with other settings (gca_weight)" in refused.err
    assert _checksums(vlp32_run.out) == before


def test_fine_tuning_defaults_to_the_smaller_learning_rate(vlp32_run: Vlp32Run) -> None:
    # the finished run trained from scratch at 2e-3; asking to fine-tune changes the learning rate with it
    weights = Path(__file__).resolve().parents[1] / "perception_ws" / "models" / "weights" / "default.pt"
    refused = _adapt_cli(vlp32_run.target, vlp32_run.out, "--init", str(weights))
    assert refused.status == 2
    assert "holds a run with other settings (init, lr)" in refused.err
    assert json.loads((vlp32_run.out / "adapt.json").read_text())["lr"] == 2e-3


def test_a_missing_target_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    outcome = _adapt_cli(tmp_path / "nothing", tmp_path / "out")
    assert outcome.status == 2
    assert outcome.err.strip().splitlines() == [
        f"perception adapt: error: adapt --target {tmp_path / 'nothing'}: no such file or folder"
    ]
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_one_line_and_exit_status_2(real_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "a_file"
    out.write_text("keep me")
    outcome = _adapt_cli(real_data / VLP32_SCAN, out)
    assert outcome.status == 2
    assert outcome.err.strip().splitlines() == [
        f"perception adapt: error: adapt --out {out}: exists and is not a folder"
    ]
    assert out.read_text() == "keep me"


@pytest.mark.parametrize(("stored", "expected"), [("{not json", "is not JSON"), ("[1, 2]", "holds no settings")])
def test_an_out_with_a_broken_settings_file_is_one_line_and_exit_status_2(
    stored: str, expected: str, real_data: Path, tmp_path: Path
) -> None:
    (tmp_path / "adapt.json").write_text(stored)
    outcome = _adapt_cli(real_data / VLP32_SCAN, tmp_path)
    assert outcome.status == 2
    (line,) = outcome.err.strip().splitlines()
    assert line.startswith(f"perception adapt: error: adapt --out {tmp_path}: adapt.json ")
    assert expected in line
    assert not (tmp_path / "profile").exists()


def test_a_target_with_intensities_gets_an_lir_stage_that_training_renders_with(
    real_data: Path, tmp_path: Path
) -> None:
    target = tmp_path / "two_scans"  # 2 of the 4 KITTI odometry scans (HDL-64E, 0..1 remission) are enough
    target.mkdir()
    for name in ("000094.bin", "000095.bin"):
        (target / name).symlink_to(real_data / "kitti_odometry_00" / name)
    settings = AdaptSettings(target=str(target), sensor="hdl64e", steps=2, lir_steps=1, scale="small")
    out = tmp_path / "out"
    # stopped after its first training step (the rest of the run is the VLP-32C tests' business)
    assert adapt(settings, out, RunOptions(device="cpu", workers=0, max_minutes=1e-6, progress=False)) == {}
    lir = out / LIR_DIR / LIR_FILE
    assert lir.is_file()
    assert lir.with_suffix(".json").is_file()
    config = load_checkpoint(out / TRAIN_DIR / CHECKPOINT)["config"]
    assert config["intensity"] == f"lir:{lir.resolve()}"
    assert config["intensity_input"] == "keep"
    assert not (out / "weights.pt").exists()
