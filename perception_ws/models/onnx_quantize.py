"""int8 post-training quantisation of an exported segmenter file, calibrated on unlabelled range images (no torch).

onnxruntime's static quantiser in QDQ form: weights int8 per output channel (symmetric), activations uint8 per
tensor with ranges from the calibration images (percentile :data:`PERCENTILE` of each activation's values, not the
extreme: a few outliers would otherwise stretch the range and leave the common values only a few steps). Only
convolutions are quantised (Conv, ConvTranspose), and of those not the ones kept fp32: the fixed list
:data:`FP32_LAYERS` or a list chosen per export (:mod:`perception_ws.models.int8_sensitivity`); the CRF (its
kernels, softmax and K x K matrix products) stays fp32. x86 CPUs with VNNI or AMX run the int8 convolutions on
their int8 dot-product units; both runtimes (onnxruntime, OpenVINO) read the QDQ file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception_ws.errors import ExportError
from perception_ws.models.onnx_format import INPUT_NAME, model_input

#: the activation range kept per tensor: percentile of its calibration values (measured: 99.999 and min/max lost
#: 1-10 car IoU points on kitti_squeezeseg, 99.99 none; docs/models.md).
PERCENTILE = 99.99
#: convolutions kept fp32 by ``--fp32-layers fixed``, by weight name: the first layers (they see the raw geometry,
#: whose range is wide), the context aggregation modules (a sigmoid gate: small errors multiply every feature) and
#: the logits layer.
FP32_LAYERS = ("net.conv1.", "net.conv1_skip.", "net.cam", "net.conv14.")
QUANTISED_OPS = ("Conv", "ConvTranspose")
RECIPE = {
    "method": "onnxruntime.quantization.quantize_static, QDQ",
    "weights": "int8, per output channel, symmetric",
    "activations": f"uint8 per tensor, calibrated range: percentile {PERCENTILE}",
}


@dataclass(frozen=True)
class Convolution:
    """One quantisable convolution of an export: its graph node, its layer (the weight's name without
    ``.weight``, the network's module path) and its multiply-accumulates per image.
    """

    node: str
    layer: str
    macs: int


def convolutions(fp32_file: Path) -> list[Convolution]:
    """The export's convolutions in graph order, with their MACs from the inferred tensor shapes."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(fp32_file)))
    graph = model.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*graph.value_info, *graph.output]}
    weights = {tensor.name: list(tensor.dims) for tensor in graph.initializer}
    found = []
    for node in graph.node:
        if node.op_type not in QUANTISED_OPS:
            continue
        weight = node.input[1]
        # every weight meets every pixel of the side without stride: the output for Conv, the input for ConvTranspose
        pixels = shapes[node.output[0] if node.op_type == "Conv" else node.input[0]][2:]
        macs = math.prod(weights[weight]) * math.prod(pixels)
        found.append(Convolution(node.name, weight.removesuffix(".weight"), macs))
    return found


def fixed_fp32_layers(fp32_file: Path, layers: Sequence[Convolution]) -> list[str]:
    """The layers :data:`FP32_LAYERS` names, in graph order."""
    kept = [conv.layer for conv in layers if f"{conv.layer}.".startswith(FP32_LAYERS)]
    if not kept:  # the names come from the exporter; a graph without them is not one of ours
        raise ExportError(f"{fp32_file}: no convolution weights named {FP32_LAYERS}; re-export with perception export")
    return kept


class Int8Quantiser:
    """Quantises one fp32 export with any set of its convolutions kept fp32. The first call calibrates; the ranges
    are cached in ``folder`` so later calls (the sensitivity measure tries dozens of sets) only rewrite the graph.
    """

    def __init__(self, fp32_file: Path, calibration: Sequence[np.ndarray], in_channels: int, folder: Path) -> None:
        if not calibration:
            raise ExportError("no calibration scans: int8 quantisation needs unlabelled real scans of the sensor")
        self.fp32_file = fp32_file
        self.layers = convolutions(fp32_file)
        self.calibration = calibration
        self.in_channels = in_channels
        self._folder = folder
        self._ranges = folder / "calibration_ranges.json"

    def quantise(self, fp32_layers: Collection[str]) -> bytes:
        """The QDQ model with the convolutions of ``fp32_layers`` (layer names) left fp32."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        out = self._folder / "int8.onnx"
        # the calibrator prints its progress (histogram sizes, percentiles) on stdout and every call logs a warning
        # suggesting graph pre-processing (quant_pre_process, not part of this recipe): kept off the command's output
        with contextlib.redirect_stdout(io.StringIO()), _logging_off():
            quantize_static(
                str(self.fp32_file),
                str(out),
                _CalibrationImages(self.calibration, self.in_channels),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(QUANTISED_OPS),
                nodes_to_exclude=[conv.node for conv in self.layers if conv.layer in fp32_layers],
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": PERCENTILE, "CalibMovingAverage": False},
                calibration_cache_path=str(self._ranges),
            )
        return out.read_bytes()

    def recipe(self, fp32_layers: Sequence[str]) -> dict[str, Any]:
        """What was done, for the manifest: the method, the layers int8 and fp32 (in the order given), the share of
        MACs in int8.
        """
        total = sum(conv.macs for conv in self.layers)
        int8 = [conv for conv in self.layers if conv.layer not in fp32_layers]
        return {
            **RECIPE,
            "quantised_layers": len(int8),
            "fp32_layers": [*fp32_layers, "the CRF"],
            "int8_mac_share": round(sum(conv.macs for conv in int8) / total, 4),
        }


@contextlib.contextmanager
def _logging_off() -> Iterator[None]:
    """No log records below ERROR while in the block (the quantiser logs through the root logger)."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


class _CalibrationImages:
    """The calibration images one by one, as onnxruntime's CalibrationDataReader asks for them."""

    def __init__(self, images: Sequence[np.ndarray], in_channels: int) -> None:
        self._images = iter(images)
        self._in_channels = in_channels

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        if image is None:
            return None
        return {INPUT_NAME: model_input(image, self._in_channels)}
