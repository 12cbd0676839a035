"""Progressive domain calibration (perception_ws.adapt.pdc) on real unlabelled scans: each batch-norm layer ends
with the statistics of its input measured with every earlier layer calibrated (against a sequential reference
that uses BatchNorm's own estimate), later layers wait for their turn, predictions change, weights round-trip."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from perception_ws.adapt.pdc import LayerCalibration, batch_norm_layers, calibrate, main
from perception_ws.adapt.target import TargetScans
from perception_ws.errors import PerceptionError
from perception_ws.models import load_weights
from perception_ws.models.registry import build_model
from perception_ws.models.segmenter import RangeSegmenter

pytestmark = pytest.mark.real_data
BATCHES, BATCH_SIZE = 2, 1  # two batches: the statistics must pool across them


@pytest.fixture(scope="module")
def target(real_data: Path) -> TargetScans:
    return TargetScans(real_data / "kitti_sequence_pcd", crop_width=32, max_frames=2)


@pytest.fixture(scope="module")
def images(target: TargetScans) -> torch.Tensor:
    """All the crops calibrate() sees, in one batch."""
    return torch.from_numpy(target.batch(range(BATCHES * BATCH_SIZE)))


def _stats(layer: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    return layer.running_mean.clone(), layer.running_var.clone()  # type: ignore[union-attr]


class _LayerDoneError(Exception):
    """Ends a reference pass once the layer in turn has run: nothing after it changes its statistics."""


def _stop(module: torch.nn.Module, inputs: object, output: object) -> None:
    raise _LayerDoneError


@torch.no_grad()
def _sequential_reference(model: torch.nn.Module, images: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Layer by layer: only that layer in training mode with a cumulative average (momentum None) over one
    batch of all the crops, i.e. BatchNorm's own estimate of its input's statistics; the rest in eval mode.
    Each pass ends after the layer in turn has updated itself (a hook after its forward, unlike calibrate()'s
    hook before it: the estimate here is BatchNorm's own)."""
    reference = copy.deepcopy(model).eval()
    for _, layer in batch_norm_layers(reference, images):
        assert isinstance(layer, torch.nn.BatchNorm2d)
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
        hook = layer.register_forward_hook(_stop)
        with contextlib.suppress(_LayerDoneError):
            reference(images)
        hook.remove()
        layer.eval()
    return {name: _stats(layer) for name, layer in batch_norm_layers(reference, images)}


class Calibrated(NamedTuple):
    original: RangeSegmenter
    model: RangeSegmenter
    report: list[LayerCalibration]
    waiting: list[bool]


@pytest.fixture(scope="module")
def calibrated(target: TargetScans, images: torch.Tensor) -> Calibrated:
    original = load_weights(None)
    original.crf = None  # batch norm lies before the CRF: leaving it out only saves time
    model = copy.deepcopy(original)
    order = [name for name, _ in batch_norm_layers(model, images[:1])]
    waiting: list[bool] = []  # per step: were all later layers still untouched?

    def check_later_layers(done: int, total: int, name: str) -> None:
        now, before = dict(model.named_modules()), dict(original.named_modules())
        waiting.append(all(torch.equal(_stats(now[n])[0], _stats(before[n])[0]) for n in order[done:]))

    report = calibrate(model, target, BATCHES, BATCH_SIZE, "cpu", check_later_layers)
    return Calibrated(original, model, report, waiting)


def test_every_layer_holds_its_input_statistics_with_the_earlier_layers_calibrated(
    calibrated: Calibrated, images: torch.Tensor
) -> None:
    original, model = calibrated.original, calibrated.model
    expected = _sequential_reference(original, images)
    layers = batch_norm_layers(model, images[:1])
    assert len(layers) == len(expected) == 42  # SqueezeSegV2: after every conv but conv14
    for name, layer in layers:
        mean, var = _stats(layer)
        assert torch.allclose(mean, expected[name][0], rtol=1e-4, atol=1e-5), name
        assert torch.allclose(var, expected[name][1], rtol=1e-4, atol=1e-5), name


def test_the_layers_go_first_to_last_and_later_ones_wait_their_turn(calibrated: Calibrated) -> None:
    report = calibrated.report
    assert report[0].name == "net.conv1.1"  # the input's first convolution, then its skip branch
    assert report[1].name == "net.conv1_skip.1"
    assert report[-1].name == "net.fire13.expand.expand3x3.1"
    assert calibrated.waiting == [True] * len(report)
    assert all(layer.mean_shift >= 0 and layer.var_shift >= 0 for layer in report)
    assert max(layer.mean_shift for layer in report) > 1e-3  # real scans moved the statistics


@torch.no_grad()
def test_the_predictions_on_target_frames_change(calibrated: Calibrated, images: torch.Tensor) -> None:
    original, model = calibrated.original, calibrated.model
    before, after = original(images[:1]).argmax(dim=1), model(images[:1]).argmax(dim=1)
    assert (before != after).float().mean() > 1e-3


def test_a_model_without_batch_norm_is_refused(target: TargetScans) -> None:
    with pytest.raises(PerceptionError, match="has no batch-norm layer to calibrate"):
        calibrate(build_model("squeezeseg", 4, in_channels=6), target, 1, 1)


def test_the_command_saves_calibrated_weights_that_load_with_their_record(real_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "calibrated.pt"
    args = ["--target", str(real_data / "kitti_sequence_pcd"), "--out", str(out), "--frames", "2"]
    assert main([*args, "--crop-width", "32", "--batches", "1", "--batch-size", "1"]) == 0
    model, shipped = load_weights(out), load_weights(None)
    name = "net.conv1.1.running_mean"
    assert not torch.equal(model.state_dict()[name], shipped.state_dict()[name])
    assert torch.equal(model.state_dict()["net.conv1.0.weight"], shipped.state_dict()["net.conv1.0.weight"])
    record = json.loads(out.with_suffix(".json").read_text())["training"]["pdc"]
    assert record["target"].endswith("kitti_sequence_pcd")
    assert record["frames"] == 2
    assert len(record["layers"]) == 42


def test_a_bad_target_is_one_line_and_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--target", str(tmp_path / "missing"), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pdc: error:")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()
