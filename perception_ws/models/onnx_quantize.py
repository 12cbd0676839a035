"""int8 post-training quantisation of an exported segmenter file, calibrated on unlabelled range images (no torch).

onnxruntime's static quantiser in QDQ form: weights int8 per output channel (symmetric), activations uint8 per
tensor with ranges from the calibration images (percentile :data:`PERCENTILE` of each activation's values, not the
extreme: a few outliers would otherwise stretch the range and leave the common values only a few steps). Only
convolutions are quantised (Conv, ConvTranspose), and of those not the ones in :data:`FP32_LAYERS`; the CRF (its
kernels, softmax and K x K matrix products) stays fp32. x86 CPUs with VNNI or AMX run the int8 convolutions on
their int8 dot-product units; both runtimes (onnxruntime, OpenVINO) read the QDQ file.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perception_ws.errors import ExportError
from perception_ws.models.onnx_format import INPUT_NAME

#: the activation range kept per tensor: percentile of its calibration values (measured: 99.999 and min/max lost
#: 1-10 car IoU points on kitti_squeezeseg, 99.99 none; docs/models.md).
PERCENTILE = 99.99
#: convolutions kept fp32, by weight name: the first layers (they see the raw geometry, whose range is wide), the
#: context aggregation modules (a sigmoid gate: small errors multiply every feature) and the logits layer.
FP32_LAYERS = ("net.conv1.", "net.conv1_skip.", "net.cam", "net.conv14.")
QUANTISED_OPS = ("Conv", "ConvTranspose")


def quantize_int8(fp32_file: Path, calibration: Sequence[np.ndarray], in_channels: int) -> tuple[bytes, dict[str, Any]]:
    """The int8 (QDQ) model of ``fp32_file`` calibrated on (H, W, C) range images of its input size, and what was
    done (method, percentile, the layers quantised and kept fp32) for the manifest.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not calibration:
        raise ExportError("no calibration scans: int8 quantisation needs unlabelled real scans of the sensor")
    graph = onnx.load(str(fp32_file)).graph
    convolutions = [node for node in graph.node if node.op_type in QUANTISED_OPS]
    kept = [node.name for node in convolutions if node.input[1].startswith(FP32_LAYERS)]
    if not kept:  # the names come from the exporter; a graph without them is not one of ours
        raise ExportError(f"{fp32_file}: no convolution weights named {FP32_LAYERS}; re-export with perception export")
    # the calibrator prints its progress (histogram sizes, percentiles) on stdout: kept off the command's output
    with tempfile.TemporaryDirectory(prefix="perception-int8-") as folder, contextlib.redirect_stdout(io.StringIO()):
        out = Path(folder) / "int8.onnx"
        quantize_static(
            str(fp32_file),
            str(out),
            _CalibrationImages(calibration, in_channels),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTISED_OPS),
            nodes_to_exclude=kept,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": PERCENTILE, "CalibMovingAverage": False},
        )
        data = out.read_bytes()
    recipe = {
        "method": "onnxruntime.quantization.quantize_static, QDQ",
        "weights": "int8, per output channel, symmetric",
        "activations": f"uint8 per tensor, calibrated range: percentile {PERCENTILE}",
        "quantised_layers": len(convolutions) - len(kept),
        "fp32_layers": [*FP32_LAYERS, "the CRF"],
    }
    return data, recipe


class _CalibrationImages:
    """The calibration images one by one, as onnxruntime's CalibrationDataReader asks for them."""

    def __init__(self, images: Sequence[np.ndarray], in_channels: int) -> None:
        self._images = iter(images)
        self._in_channels = in_channels

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        if image is None:
            return None
        x = image[..., : self._in_channels].transpose(2, 0, 1)[None]
        return {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)}
