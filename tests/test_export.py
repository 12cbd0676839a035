"""`perception export --format onnx`: the ONNX file runs in onnxruntime and agrees with torch on real KITTI frames.

One dynamic-width export (about 30 s on 2 loaded cores) serves every test that needs a file; the bad-argument
tests stop before any export.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

from perception_ws.cli import main
from perception_ws.models import load_weights
from perception_ws.models.onnx_export import MIN_AGREEMENT, PACKAGES, measure_agreement, real_images
from perception_ws.models.onnx_format import manifest_path
from perception_ws.models.weights import DEFAULT_WEIGHTS, read_manifest

KITTI = "kitti_squeezeseg"
FRAMES = 2


class Exported(NamedTuple):
    path: Path
    manifest: dict[str, Any]
    stdout: str


@pytest.fixture(scope="module")
def exported(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    for name in PACKAGES:  # the `onnx` extra, which `make venv` installs: missing, the run fails here
        importlib.import_module(name)
    out = tmp_path_factory.mktemp("export") / "segmenter.onnx"
    argv = ["export", "--format", "onnx", "--out", str(out), "--check-data", str(real_data / KITTI), "--dynamic"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main([*argv, "--frames", str(FRAMES)]) == 0
    return Exported(out, json.loads(manifest_path(out).read_text()), stdout.getvalue())


def stored_images(real_data: Path) -> list[np.ndarray]:
    """The first frames of SqueezeSeg's released 64 x 512 images, their label channel replaced by the valid mask
    (the model's sixth input, as the pipeline's projection gives it)."""
    images = []
    for path in sorted((real_data / KITTI).glob("*.npy"))[:FRAMES]:
        image = np.load(path, allow_pickle=False).astype(np.float32)
        image[..., 5] = image[..., 4] > 0
        images.append(image)
    return images


@pytest.mark.real_data
def test_onnxruntime_agrees_with_torch_on_stored_kitti_frames(exported: Exported, real_data: Path) -> None:
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(exported.path), full_check=True)  # a valid model with inferable shapes
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["range_image"]
    assert session.get_inputs()[0].shape[:3] == [1, 6, 64]
    model = load_weights(None)
    agreement = measure_agreement(exported.path.read_bytes(), model, stored_images(real_data))
    assert agreement.frames == FRAMES
    assert agreement.labels_same >= MIN_AGREEMENT
    assert agreement.max_abs_logit_diff < 1e-2
    # and the labels are the network's, not something trivial: more than one class on a street scene
    x = torch.from_numpy(stored_images(real_data)[0].transpose(2, 0, 1).copy())[None]
    ours = session.run(["logits"], {"range_image": x.numpy()})[0]
    assert ours.shape == (1, 4, 64, 512)
    assert len(np.unique(ours.argmax(1))) > 1


@pytest.mark.real_data
def test_dynamic_width_runs_two_widths(exported: Exported, real_data: Path) -> None:
    model = load_weights(None)
    data = exported.path.read_bytes()
    for width in (256, 1024):
        images = real_images(real_data / KITTI, 64, width, 90.0, 1)
        agreement = measure_agreement(data, model, images)
        assert agreement.width == width
        assert agreement.labels_same >= MIN_AGREEMENT


@pytest.mark.real_data
def test_manifest_records_source_shapes_versions_and_agreement(exported: Exported) -> None:
    manifest = exported.manifest
    assert manifest["format"] == "perception-onnx/1"
    assert manifest["file"] == exported.path.name
    assert manifest["bytes"] == exported.path.stat().st_size
    assert manifest["weights"]["sha256"] == read_manifest(DEFAULT_WEIGHTS)["sha256"]
    assert manifest["model"] == read_manifest(DEFAULT_WEIGHTS)["model"]
    assert manifest["opset"] >= 17
    assert manifest["precision"] == "fp32"
    assert manifest["input"] == {"name": "range_image", "shape": [1, 6, 64, "16*blocks"]}
    assert manifest["output"] == {"name": "logits", "shape": [1, 4, 64, "16*blocks"]}
    assert set(manifest["versions"]) == {"torch", "onnx", "onnxscript", "onnxruntime"}
    checks = manifest["agreement"]["checks"]
    assert [c["width"] for c in checks] == [512, 1024]
    assert all(c["frames"] == FRAMES and c["labels_same"] >= MIN_AGREEMENT for c in checks)
    assert "same labels" in exported.stdout


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "model.txt"], "must end in .onnx"),
        (["--dynamic", "--width", "500"], "multiples of 16"),
        (["--weights", "no/such.pt"], "no such weights file"),
        (["--check-data", "no/such/folder"], "no such file or folder"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    extra: list[str], message: str, real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "--out", str(tmp_path / "m.onnx"), "--check-data", str(real_data / KITTI), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_opset_below_17_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--out", "m.onnx", "--check-data", ".", "--opset", "16"])
    assert exit_info.value.code == 2
    assert "opset >= 17" in capsys.readouterr().err
