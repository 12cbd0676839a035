"""`perception quantize --fp32-layers auto | fixed`: the fp32 layers chosen from unlabelled scans (a sensitivity per
convolution on the calibration scans, label agreement with fp32 on held-back scans) and recorded in the manifest;
``fixed`` is the fixed list, quantised exactly as before.

One small export (64 x 256, 45 degrees) and one quantisation per mode serve the module (real scans; one calibration
and one held-back scan).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perception_ws.cli import quantize as quantize_cli
from perception_ws.errors import ExportError
from perception_ws.models.int8_sensitivity import MAX_FP32_MAC_SHARE, label_agreement, sqnr_db
from perception_ws.models.onnx_format import INPUT_NAME, model_input
from perception_ws.models.onnx_quantize import FP32_LAYERS, Int8Quantiser, convolutions
from perception_ws.models.scan_images import real_images
from perception_ws.quantization import FP32_LAYER_CHOICES, HELD_BACK_SCANS, quantize_export

CALIBRATION = "kitti_sequence_pcd"  # unlabelled
CHECK = "kitti_squeezeseg"  # labelled
WIDTH, FOV_DEG = 256, 45.0  # the trained column pitch (512 per 90 degrees)
CHANNELS = 6  # the export's input: x, y, z, intensity, range, mask


@pytest.fixture(scope="module")
def small_onnx(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from perception_ws.models.onnx_export import ExportShape, export_onnx

    out = tmp_path_factory.mktemp("onnx") / "small.onnx"
    export_onnx(None, out, ExportShape(64, WIDTH), real_data / CHECK, fov_deg=FOV_DEG, frames=1)
    return out


def _quantise(onnx: Path, real_data: Path, folder: Path, mode: str) -> tuple[Path, dict[str, Any]]:
    out = folder / f"{mode}.onnx"
    calibrate, checks = real_data / CALIBRATION, [real_data / CHECK]
    manifest = quantize_export(  # onnxruntime on one thread beside the other xdist worker (see test_int8.py)
        onnx, out, calibrate, checks, calibration_frames=1, held_back=1, fp32_layers=mode, threads=1
    )
    return out, manifest


@pytest.fixture(scope="module")
def auto(small_onnx: Path, real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _quantise(small_onnx, real_data, tmp_path_factory.mktemp("auto"), "auto")


def _float_convolutions(int8_file: Path) -> set[str]:
    """Layers of the file whose convolution reads its float weight directly (no DequantizeLinear before it)."""
    import onnx

    graph = onnx.load(str(int8_file)).graph
    floats = {tensor.name for tensor in graph.initializer if tensor.data_type == onnx.TensorProto.FLOAT}
    convs = [node for node in graph.node if node.op_type in ("Conv", "ConvTranspose")]
    return {node.input[1].removesuffix(".weight") for node in convs if node.input[1] in floats}


@pytest.mark.real_data
def test_auto_keeps_fp32_the_most_sensitive_layers_and_records_why(
    small_onnx: Path, auto: tuple[Path, dict[str, Any]]
) -> None:
    out, manifest = auto
    recipe = manifest["quantization"]
    choice = recipe["fp32_choice"]
    layers = [conv.layer for conv in convolutions(small_onnx)]
    sensitivity = choice["sensitivity_sqnr_db"]
    assert list(sensitivity) == layers  # one per convolution, graph order
    assert all(math.isfinite(value) for value in sensitivity.values())
    assert len(set(sensitivity.values())) > len(layers) // 2  # measured per layer, not one value for all
    kept = recipe["fp32_layers"][:-1]
    assert recipe["fp32_layers"][-1] == "the CRF"
    # a prefix of the layers ordered most sensitive (lowest SQNR) first, and the file keeps exactly those float
    assert kept == sorted(sensitivity, key=sensitivity.__getitem__)[: len(kept)]
    assert _float_convolutions(out) == set(kept)
    assert recipe["quantised_layers"] == len(layers) - len(kept)
    assert recipe["int8_mac_share"] >= 1.0 - MAX_FP32_MAC_SHARE
    # scan 1 of the source calibrates, scan 2 chooses
    assert recipe["calibration"]["frames"] == 1
    assert choice["held_back_scans"] == 1
    tried = {step["fp32_layers"]: step["held_back_agreement"] for step in choice["tried"]}
    assert list(tried) == list(range(len(tried)))
    assert choice["held_back_agreement"] == tried[len(kept)]
    assert choice["target_reached"] == (choice["held_back_agreement"] >= choice["agreement_target"])
    if not choice["target_reached"]:  # then the best prefix within the MAC cap is taken
        assert choice["held_back_agreement"] == max(tried.values())
    assert 0.9 < choice["held_back_agreement"] <= 1.0
    # the labelled check still runs as the final guard
    assert recipe["checks"][0]["source"].endswith(CHECK)
    assert recipe["checks"][0]["iou_fp32"]["car"] - recipe["checks"][0]["iou_int8"]["car"] <= 1.0


@pytest.mark.real_data
def test_fixed_is_the_fixed_list_quantised_as_before(small_onnx: Path, real_data: Path, tmp_path: Path) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    out, manifest = _quantise(small_onnx, real_data, tmp_path, "fixed")
    recipe = manifest["quantization"]
    expected = [conv.layer for conv in convolutions(small_onnx) if f"{conv.layer}.".startswith(FP32_LAYERS)]
    assert len(expected) == 9  # conv1, conv1_skip, the three CAM modules' two convolutions, conv14
    assert recipe["fp32_layers"] == [*expected, "the CRF"]
    assert _float_convolutions(out) == set(expected)
    assert recipe["fp32_choice"] == {"mode": "fixed"}
    assert recipe["calibration"]["frames"] == 1  # nothing held back
    # the same bytes as the one quantize_static call (no cached ranges) this command made before auto existed
    images = real_images(real_data / CALIBRATION, 64, WIDTH, FOV_DEG, 1)
    names = [conv.node for conv in convolutions(small_onnx) if conv.layer in expected]
    before = tmp_path / "before.onnx"
    quantize_static(
        str(small_onnx),
        str(before),
        _Images(images),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv", "ConvTranspose"],
        nodes_to_exclude=names,
        calibrate_method=CalibrationMethod.Percentile,
        extra_options={"CalibPercentile": 99.99, "CalibMovingAverage": False},
    )
    assert manifest["sha256"] == hashlib.sha256(before.read_bytes()).hexdigest()


class _Images:
    def __init__(self, images: list[np.ndarray]) -> None:
        self._images = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        return None if image is None else {INPUT_NAME: model_input(image, CHANNELS)}


@pytest.mark.real_data
def test_the_quantiser_calibrates_once_and_reuses_the_ranges(small_onnx: Path, real_data: Path) -> None:
    images = real_images(real_data / CALIBRATION, 64, WIDTH, FOV_DEG, 1)
    with tempfile.TemporaryDirectory() as folder:
        quantiser = Int8Quantiser(small_onnx, images, CHANNELS, Path(folder))
        first = quantiser.quantise([])
        ranges = (Path(folder) / "calibration_ranges.json").read_bytes()
        quantiser.calibration = []  # a second calibration would now fail: the cached ranges must serve
        assert quantiser.quantise([]) == first
        assert (Path(folder) / "calibration_ranges.json").read_bytes() == ranges


def test_sqnr_and_label_agreement_on_known_values() -> None:
    reference = [np.ones((2, 5), np.float32), np.ones((2, 5), np.float32)]
    assert sqnr_db(reference, [r * 1.1 for r in reference]) == pytest.approx(20.0)  # noise power 1 % of signal
    assert sqnr_db(reference, reference) > 200  # an exact copy: the noise floor keeps it finite
    labels = [np.array([0, 1, 1, 2]), np.array([3, 3])]
    others = [np.array([0, 1, 2, 0]), np.array([3, 0])]
    masks = [np.array([True, True, True, False]), np.array([True, True])]
    assert label_agreement(labels, others, masks) == pytest.approx(3 / 5)


@pytest.mark.real_data
def test_auto_without_scans_to_hold_back_is_one_clear_error(small_onnx: Path, real_data: Path, tmp_path: Path) -> None:
    one_scan = sorted((real_data / CALIBRATION).iterdir())[0]
    with pytest.raises(ExportError, match=r"auto needs scans held back from calibrating: at least 2 scans"):
        quantize_export(small_onnx, tmp_path / "x.onnx", one_scan, [real_data / CHECK], fp32_layers="auto")
    assert list(tmp_path.iterdir()) == []


def test_the_command_offers_the_modes_and_defaults_of_the_library() -> None:
    parser = argparse.ArgumentParser()
    quantize_cli.add_parser(parser.add_subparsers())
    plain = ["quantize", "f.onnx", "--out", "i.onnx", "--calibrate", "c", "--check", "d"]
    args = parser.parse_args(plain)
    defaults = inspect.signature(quantize_export).parameters
    assert args.fp32_layers == defaults["fp32_layers"].default == "auto"
    assert args.held_back == defaults["held_back"].default == HELD_BACK_SCANS
    for mode in FP32_LAYER_CHOICES:
        assert parser.parse_args([*plain, "--fp32-layers", mode]).fp32_layers == mode
    with pytest.raises(SystemExit):
        parser.parse_args([*plain, "--fp32-layers", "none"])
