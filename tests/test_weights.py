"""Weights files: save/load round trip with a manifest, and one clear WeightsError per kind of damage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.config import PipelineConfig
from perception_ws.errors import WeightsError
from perception_ws.io import load
from perception_ws.models import build_model, load_weights, read_manifest, save_weights
from perception_ws.models import weights as weights_module
from perception_ws.models.crf import KITTI3_CRF_SIGMAS
from perception_ws.models.network_segmenter import load_network
from perception_ws.pipeline import Pipeline

TRAINING = {"data": ["sim/run1"], "steps": 0, "note": "untrained, for tests"}


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("squeezesegv2", 4, crf=True, crf_params=dict(KITTI3_CRF_SIGMAS), input_mean=[1, 2, 3, 4, 5, 0])
    model.eval()
    return save_weights(model, tmp_path / "v2.pt", training=TRAINING, scores={"kitti": {"car": float("nan")}})


def test_round_trip_gives_the_same_model_in_eval_mode(saved: Path) -> None:
    model = load_weights(saved)
    again = load_weights(str(saved.with_suffix(".json")))  # the manifest path works too
    assert model.name == "squeezesegv2"
    assert not model.training
    assert model.crf is not None
    assert model.config["input_mean"] == [1, 2, 3, 4, 5, 0]
    state, other = model.state_dict(), again.state_dict()
    assert state.keys() == other.keys()
    assert all(torch.equal(state[k], other[k]) for k in state)
    x = torch.rand(1, 6, 16, 48)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    # the state dict alone, loadable without pickled code
    raw = torch.load(saved, weights_only=True)
    assert set(raw) == set(state)


def test_manifest_records_checksum_config_training_and_scores(saved: Path) -> None:
    manifest = json.loads(saved.with_suffix(".json").read_text())
    data = saved.read_bytes()
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["bytes"] == len(data)
    assert manifest["file"] == "v2.pt"
    assert manifest["model"]["name"] == "squeezesegv2"
    assert manifest["model"]["crf"] is True
    assert manifest["model"]["num_classes"] == 4
    assert manifest["training"] == TRAINING
    assert manifest["scores"] == {"kitti": {"car": None}}  # NaN -> null: strict JSON
    assert read_manifest(saved) == manifest


def test_a_truncated_file_is_named(saved: Path) -> None:
    saved.write_bytes(saved.read_bytes()[:-100])
    with pytest.raises(WeightsError, match=r"v2\.pt: truncated: \d+ bytes, the manifest says \d+"):
        load_weights(saved)


def test_a_corrupt_file_fails_its_checksum(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"v2\.pt: checksum mismatch .* corrupt or was replaced"):
        load_weights(saved)


def test_a_file_that_is_no_state_dict_is_named(saved: Path) -> None:
    garbage = b"not a torch file at all" * 10
    saved.write_bytes(garbage)
    manifest = read_manifest(saved)
    manifest.update(bytes=len(garbage), sha256=hashlib.sha256(garbage).hexdigest())
    saved.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match=r"v2\.pt: not a readable torch state dict"):
        load_weights(saved)


def test_a_config_that_does_not_match_the_state_dict_is_named(saved: Path) -> None:
    manifest = read_manifest(saved)
    manifest["model"].update(crf=False, crf_params=None)  # the file holds CRF weights the config lacks
    saved.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match=r"does not match the model config in v2\.json: \d+ unexpected: crf\."):
        load_weights(saved)
    manifest["model"]["num_classes"] = 20
    saved.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match=r"shape \(file vs config\): .*\(4, .*\(20, ") as info:
        load_weights(saved)
    assert "net." in str(info.value)  # the mis-shaped classifier is named
    manifest["model"]["name"] = "pointnet"
    saved.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match=r"v2\.json: the model config cannot be built .*unknown model 'pointnet'"):
        load_weights(saved)


@pytest.mark.parametrize(("key", "value"), [("num_classes", 10**9), ("in_channels", 10**9), ("num_classes", 1)])
def test_a_manifest_claiming_an_absurd_size_is_refused_before_anything_is_built(
    saved: Path, key: str, value: int
) -> None:
    # 10^9 classes would ask for terabytes at the classifier before the state dict check could say no
    manifest = read_manifest(saved)
    manifest["model"][key] = value
    saved.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(
        WeightsError, match=rf"v2\.json: the model config cannot be built .*{key} must be in .*got {value}"
    ):
        load_weights(saved)


def test_missing_files_and_manifests(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "absent.pt")
    saved.with_suffix(".json").unlink()
    with pytest.raises(WeightsError, match=r"no manifest v2\.json beside it"):
        load_weights(saved)


def test_no_shipped_default_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(weights_module, "DEFAULT_WEIGHTS", tmp_path / "default.pt")
    with pytest.raises(WeightsError, match="no shipped default weights yet"):
        load_weights(None)
    # the pipeline keeps saying what to do instead
    with pytest.raises(WeightsError, match=r"needs trained weights .*segmenter\.kind to 'labels'"):
        Pipeline(PipelineConfig())


def test_the_shipped_default_is_loaded_when_present(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    save_weights(build_model("squeezeseg", 4), tmp_path / "default.pt", training=TRAINING, scores={})
    monkeypatch.setattr(weights_module, "DEFAULT_WEIGHTS", tmp_path / "default.pt")
    assert load_weights(None).name == "squeezeseg"


def test_bad_saves_and_devices_are_refused(saved: Path, tmp_path: Path) -> None:
    model = build_model("squeezeseg", 4)
    with pytest.raises(WeightsError, match=r"lacks \['steps'\]"):
        save_weights(model, tmp_path / "a.pt", training={"data": "x"}, scores={})
    with pytest.raises(WeightsError, match=r"must end in \.pt"):
        save_weights(model, tmp_path / "a.pth", training=TRAINING, scores={})
    with pytest.raises(WeightsError, match="not JSON-safe"):
        save_weights(model, tmp_path / "a.pt", training={**TRAINING, "when": object()}, scores={})
    assert not list(tmp_path.glob("a.*"))  # nothing half-written
    with pytest.raises(WeightsError, match="cannot move the model to device 'tpu9'"):
        load_weights(saved, device="tpu9")


@pytest.mark.real_data
def test_the_pipeline_runs_saved_weights_on_a_real_frame(saved: Path, real_data: Path) -> None:
    config = PipelineConfig().replace(**{"segmenter.weights": str(saved), "sensor.fov_deg": 90.0, "sensor.width": 512})
    assert load_network(config).name == "squeezesegv2"
    scan = load(real_data / "kitti_object" / "velodyne" / "000001.bin")
    result = Pipeline(config).process(scan.points, 0.0)
    assert result.labels.shape == (len(scan),)
    assert int(result.labels.max()) < 4
    assert np.isfinite(result.timings_ms["segmentation"])
    with pytest.raises(WeightsError, match=r"hold a 'squeezesegv2' network, but segmenter\.model is 'squeezeseg'"):
        load_network(config.replace(**{"segmenter.model": "squeezeseg"}))
