"""`perception quantize`: an int8 copy of an exported segmenter, checked against the fp32 file on labelled real
frames, refused when it costs car IoU.

1. the fp32 file (``perception export --format onnx``, fixed size) is checked against its manifest;
2. it is quantised (:mod:`perception_ws.models.onnx_quantize`) with activation ranges from UNLABELLED real scans
   (``calibrate``), projected at the export's size. The convolutions kept fp32 are, with ``fp32_layers="auto"``,
   chosen from unlabelled scans only (:mod:`perception_ws.models.int8_sensitivity`: per-layer sensitivity on the
   calibration scans, label agreement with fp32 on ``held_back`` further scans of ``calibrate`` not used to
   calibrate), or with ``"fixed"`` the list :data:`~perception_ws.models.onnx_quantize.FP32_LAYERS`;
3. fp32 and int8 (both on onnxruntime) label every frame of each ``check`` source, in the same view as the export
   (512 columns per 90 degrees, centred on +x; the evaluation's scored points, :func:`~perception_ws.evaluation.
   prepare_frame`): the share of points with the same label, and per-class IoU of both against the ground truth;
4. if the car IoU of any source drops by more than ``max_car_iou_drop`` points, nothing is written (one
   ExportError); else the .onnx and its manifest (the fp32 one with ``precision: int8``, the recipe and the checks).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import math
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perception_ws.errors import ExportError
from perception_ws.evaluation import KITTI_FOV_DEG, KITTI_WIDTH, prepare_frame
from perception_ws.io import open_dataset
from perception_ws.labels import KITTI3
from perception_ws.metrics import ClassMetrics
from perception_ws.models.int8_sensitivity import (
    AGREEMENT_TARGET,
    MAX_FP32_MAC_SHARE,
    SENSITIVITY_SCANS,
    Fp32Choice,
    choose_fp32_layers,
)
from perception_ws.models.onnx_format import check_onnx_target, manifest_precision, write_onnx
from perception_ws.models.onnx_quantize import Int8Quantiser, fixed_fp32_layers
from perception_ws.models.onnx_segmenter import OnnxSegmenter, read_onnx_manifest
from perception_ws.models.scan_images import real_images

#: the issue's bar: an int8 model may lose at most this many points of car IoU on any check source.
MAX_CAR_IOU_DROP = 1.0
CAR = "car"
#: scans of the calibration source held back from calibrating to choose the fp32 layers on (``auto``)
HELD_BACK_SCANS = 4
Fp32Layers = Literal["auto", "fixed"]
FP32_LAYER_CHOICES: tuple[Fp32Layers, ...] = ("auto", "fixed")


@dataclass(frozen=True)
class Int8Check:
    """int8 against fp32 on one labelled source: same-label share of the scored points, IoU (percent) per class."""

    source: str
    frames: int
    points: int
    labels_same: float
    iou_fp32: dict[str, float]
    iou_int8: dict[str, float]

    @property
    def car_iou_drop(self) -> float:
        """fp32 minus int8 car IoU in points (NaN where the source has no car and predicts none)."""
        return self.iou_fp32[CAR] - self.iou_int8[CAR]


def compare_on_source(
    source: str | Path, fp32: OnnxSegmenter, int8: OnnxSegmenter, fov_deg: float, sensor: str
) -> Int8Check:
    """Run both segmenters on every frame of ``source`` (labelled) in the export's view; see the module doc."""
    dataset = open_dataset(source)
    metrics = {"fp32": ClassMetrics(KITTI3), "int8": ClassMetrics(KITTI3)}
    same = points = 0
    for index in range(len(dataset)):
        frame = prepare_frame(dataset[index], fov_deg, sensor)
        if frame.labels is None:
            raise ExportError(f"{source}: frame {frame.name} has no labels; --check needs labelled real frames")
        predicted = {
            name: frame.to_points(net.segment_image(frame.image)[0]) for name, net in (("fp32", fp32), ("int8", int8))
        }
        for name, labels in predicted.items():
            metrics[name].update(frame.labels, labels)
        same += int(np.sum(predicted["fp32"] == predicted["int8"]))
        points += len(frame.labels)
    if points == 0:
        raise ExportError(f"{source}: no labelled points in the export's view to check the int8 model on")
    iou = {name: {c: 100.0 * s.iou for c, s in m.scores().items()} for name, m in metrics.items()}
    return Int8Check(str(source), len(dataset), points, same / points, iou["fp32"], iou["int8"])


def quantize_export(
    fp32_onnx: str | Path,
    out: str | Path,
    calibrate: str | Path,
    check: Sequence[str | Path],
    *,
    calibration_frames: int = 12,
    sensor: str = "hdl64e",
    max_car_iou_drop: float = MAX_CAR_IOU_DROP,
    fp32_layers: Fp32Layers = "auto",
    held_back: int = HELD_BACK_SCANS,
    threads: int = 0,
) -> dict[str, Any]:
    """Write ``out`` (.onnx, int8) and its manifest from ``fp32_onnx``; returns the manifest (see the module doc).
    ``threads``: onnxruntime's CPU threads for the choice and the checks (0: one per core).
    """
    source, target = Path(fp32_onnx), Path(out)
    check_onnx_target(target)
    if not check:
        raise ExportError("no --check sources: the int8 model is checked against fp32 on labelled real frames")
    manifest = read_onnx_manifest(source)
    if manifest_precision(manifest) != "fp32" or manifest.get("width_multiple") is not None:
        raise ExportError(f"{source}: quantise a fixed-size fp32 export (perception export without --dynamic)")
    channels, height, width = manifest["input"]["shape"][1:]
    fov_deg = width * KITTI_FOV_DEG / KITTI_WIDTH  # the column pitch the model was trained at
    if fp32_layers not in FP32_LAYER_CHOICES:
        raise ExportError(f"fp32_layers is {fp32_layers!r}; expected one of {', '.join(FP32_LAYER_CHOICES)}")
    extra = held_back if fp32_layers == "auto" else 0
    images = real_images(calibrate, height, width, fov_deg, calibration_frames + extra, sensor)
    # a source holding fewer than frames + held_back scans gives its last ones to the held-back set
    count = max(len(images) - extra, 1)
    calibration, held = images[:count], images[count:]
    if fp32_layers == "auto" and not held:
        raise ExportError(
            f"{calibrate}: --fp32-layers auto needs scans held back from calibrating: at least 2 scans and "
            f"--held-back of 1 or more (got {len(images)} scans, --held-back {held_back})"
        )
    with tempfile.TemporaryDirectory(prefix="perception-int8-") as folder:  # removed whatever the checks say
        quantiser = Int8Quantiser(source, calibration, channels, Path(folder))
        choice = choose_fp32_layers(quantiser, held, Path(folder), threads=threads) if fp32_layers == "auto" else None
        kept = choice.layers if choice else fixed_fp32_layers(source, quantiser.layers)
        data = choice.data if choice else quantiser.quantise(kept)
        recipe = quantiser.recipe(kept)
        int8_file = Path(folder) / target.name
        int8_file.write_bytes(data)
        fp32_net = OnnxSegmenter(source, channels, threads=threads)
        int8_net = OnnxSegmenter(int8_file, channels, threads=threads, precision="int8")
        checks = [compare_on_source(path, fp32_net, int8_net, fov_deg, sensor) for path in check]
    for result in checks:
        if result.car_iou_drop > max_car_iou_drop:  # NaN (no cars) compares False: nothing to judge by
            raise ExportError(
                f"int8 car IoU on {result.source} is {result.iou_int8[CAR]:.1f} against fp32 "
                f"{result.iou_fp32[CAR]:.1f} (a drop of {result.car_iou_drop:.1f} points, more than "
                f"{max_car_iou_drop:g}); nothing written"
            )
    recipe["calibration"] = {"data": str(calibrate), "frames": len(calibration), "sensor": sensor, "fov_deg": fov_deg}
    recipe["fp32_choice"] = _json_choice(choice, len(held))
    recipe["checks"] = [_json_check(result) for result in checks]
    recipe["max_car_iou_drop"] = max_car_iou_drop
    int8_manifest = {
        **{key: value for key, value in manifest.items() if key != "agreement"},
        "file": target.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "precision": "int8",
        "source_onnx": {"file": str(source), "sha256": manifest["sha256"], "agreement": manifest.get("agreement")},
        "quantization": recipe,
        "versions": {**manifest.get("versions", {}), "onnxruntime": importlib.metadata.version("onnxruntime")},
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    write_onnx(target, data, int8_manifest)
    return int8_manifest


def _json_choice(choice: Fp32Choice | None, held_back: int) -> dict[str, Any]:
    """How the fp32 layers were chosen: the fixed list, or the sensitivities and the held-back agreement."""
    if choice is None:
        return {"mode": "fixed"}
    return {
        "mode": "auto",
        "held_back_scans": held_back,
        "agreement_target": AGREEMENT_TARGET,
        "held_back_agreement": round(choice.agreement, 5),
        "target_reached": choice.reached,
        "max_fp32_mac_share": MAX_FP32_MAC_SHARE,
        "sensitivity_scans": SENSITIVITY_SCANS,
        "sensitivity_sqnr_db": {layer: round(value, 2) for layer, value in choice.sensitivity_db.items()},
        "tried": [{"fp32_layers": count, "held_back_agreement": round(share, 5)} for count, share in choice.tried],
    }


def _json_check(result: Int8Check) -> dict[str, Any]:
    """The check with NaN IoUs (a class neither in the truth nor predicted) as null, so the JSON stays standard."""
    plain = asdict(result)
    for key in ("iou_fp32", "iou_int8"):
        plain[key] = {c: None if math.isnan(v) else round(v, 2) for c, v in plain[key].items()}
    return plain
