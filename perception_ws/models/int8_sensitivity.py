"""Which convolutions of an int8 export stay fp32 (``perception quantize --fp32-layers auto``), chosen from
UNLABELLED scans only (no torch).

1. **Sensitivity** of each convolution: the model with only that layer int8 (every other one fp32) runs the first
   :data:`SENSITIVITY_SCANS` calibration scans; the SQNR (dB) of its output logits against fp32's. Low means
   sensitive. One layer at a time measures each layer's own quantisation error as the rest of the network (a
   sigmoid gate, the CRF) carries it to the output, which a per-tensor error inside the layer would not show.
2. **Choice**: most sensitive first, the shortest prefix of that order kept fp32 whose int8 model labels the
   held-back scans (of the calibration source, not used to calibrate) as fp32 does on at least
   :data:`AGREEMENT_TARGET` of their occupied pixels; the layers kept may hold at most :data:`MAX_FP32_MAC_SHARE`
   of the convolutions' MACs, so most of the arithmetic stays int8. Where no allowed prefix reaches the target,
   the one with the best agreement is taken and the manifest says the target was missed.

No labels are read, so the choice cannot fit the labelled frames ``--check`` scores; that check stays the guard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception_ws.models.onnx_format import model_input
from perception_ws.models.onnx_quantize import Int8Quantiser
from perception_ws.models.onnx_runtimes import open_runtime
from perception_ws.projection import CHANNELS

#: share of the held-back scans' occupied pixels whose label must equal fp32's (the front 64 x 512 int8 file that
#: passes the car IoU rule labels 99.6-99.8 % of the check frames' points as fp32 does; docs/models.md).
AGREEMENT_TARGET = 0.997
#: the most of the convolutions' MACs the fp32 layers may hold: the rest (most of the network) stays int8.
MAX_FP32_MAC_SHARE = 0.25
#: calibration scans the per-layer sensitivity is measured on (one model per convolution runs each of them).
SENSITIVITY_SCANS = 2
RANGE = CHANNELS.index("range")


@dataclass(frozen=True)
class Fp32Choice:
    """The layers kept fp32 (most sensitive first), the int8 model made so, and how it was chosen."""

    layers: list[str]
    data: bytes
    agreement: float
    reached: bool
    sensitivity_db: dict[str, float]
    tried: list[tuple[int, float]]  # (layers kept fp32, held-back agreement) of every prefix tried


def layer_sensitivities(
    quantiser: Int8Quantiser, images: Sequence[np.ndarray], folder: Path, threads: int = 0
) -> dict[str, float]:
    """Per convolution (graph order): SQNR in dB of the logits with only that layer int8, against fp32's
    (onnxruntime on ``threads`` CPU threads; 0: one per core).
    """
    reference = _logits(quantiser.fp32_file, images, quantiser.in_channels, threads)
    every = [conv.layer for conv in quantiser.layers]
    result = {}
    for layer in every:
        candidate = folder / "one_layer_int8.onnx"
        candidate.write_bytes(quantiser.quantise([other for other in every if other != layer]))
        result[layer] = sqnr_db(reference, _logits(candidate, images, quantiser.in_channels, threads))
    return result


def choose_fp32_layers(
    quantiser: Int8Quantiser,
    held_back: Sequence[np.ndarray],
    folder: Path,
    *,
    target: float = AGREEMENT_TARGET,
    max_fp32_mac_share: float = MAX_FP32_MAC_SHARE,
    threads: int = 0,
) -> Fp32Choice:
    """The fewest most-sensitive layers kept fp32 for ``target`` agreement on ``held_back`` (see the module doc);
    the models run on onnxruntime with ``threads`` CPU threads (0: one per core).
    """
    sensitivity = layer_sensitivities(quantiser, quantiser.calibration[:SENSITIVITY_SCANS], folder, threads)
    order = sorted(sensitivity, key=sensitivity.__getitem__)
    macs = {conv.layer: conv.macs for conv in quantiser.layers}
    budget = max_fp32_mac_share * sum(macs.values())
    reference = [logits.argmax(0) for logits in _logits(quantiser.fp32_file, held_back, quantiser.in_channels, threads)]
    occupied = [image[..., RANGE] > 0 for image in held_back]
    best: tuple[float, int, bytes] | None = None
    tried = []
    for count in range(len(order) + 1):
        if sum(macs[layer] for layer in order[:count]) > budget:
            break
        data = quantiser.quantise(order[:count])
        candidate = folder / "candidate.onnx"
        candidate.write_bytes(data)
        labels = [logits.argmax(0) for logits in _logits(candidate, held_back, quantiser.in_channels, threads)]
        agreement = label_agreement(reference, labels, occupied)
        tried.append((count, agreement))
        if best is None or agreement > best[0]:
            best = (agreement, count, data)
        if agreement >= target:
            break
    assert best is not None  # the empty prefix is always within the budget
    agreement, count, data = best
    return Fp32Choice(order[:count], data, agreement, agreement >= target, sensitivity, tried)


def sqnr_db(reference: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> float:
    """Signal-to-quantisation-noise ratio of ``test`` against ``reference`` over all arrays, in dB."""
    signal = sum(float(np.sum(np.square(r, dtype=np.float64))) for r in reference)
    noise = sum(float(np.sum(np.square(r.astype(np.float64) - t))) for r, t in zip(reference, test, strict=True))
    return 10.0 * math.log10(signal / max(noise, 1e-30))  # a floor on the noise keeps an exact copy finite


def label_agreement(
    reference: Sequence[np.ndarray], labels: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> float:
    """The share of masked pixels whose label equals the reference's, over all images."""
    same = sum(int(np.sum((r == lab)[m])) for r, lab, m in zip(reference, labels, masks, strict=True))
    total = sum(int(np.sum(m)) for m in masks)
    return same / max(total, 1)


def _logits(onnx_file: Path, images: Sequence[np.ndarray], in_channels: int, threads: int) -> list[np.ndarray]:
    """(K, H, W) logits of every image, onnxruntime on the CPU with ``threads`` threads (0: one per core)."""
    infer, _ = open_runtime("onnxruntime", onnx_file, threads)
    return [infer(model_input(image, in_channels))[0] for image in images]
