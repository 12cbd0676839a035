"""The segmenter (normaliser, network and CRF) as an ONNX file, checked against torch on real scans.

The graph is :class:`~perception_ws.models.segmenter.RangeSegmenter` itself, exported with torch's dynamo
exporter (``torch.export`` then ONNX, opset >= 17): its input is the raw (1, C, H, W) range image that
``model(x)`` takes (channels x, y, z, intensity, range, mask; empty pixels zero), its output the (1, K, H, W)
logits after the CRF. The zeroed channels, the input statistics and the CRF's kernels are all inside the graph.

A fixed-size export may have any width (the right-padding to the encoder's factor of 16 is baked in). A
``dynamic`` export has a symbolic width that must be a multiple of 16: the padding step is a branch on the width,
which ``torch.export`` cannot keep symbolic, so the graph is traced for padding-free widths only.

Before anything is written, onnxruntime (CPU) and torch run the same real range images and the share of pixels
with the same argmax label must reach :data:`MIN_AGREEMENT`; the ONNX file and its manifest
(``FILE.json``: source weights, model config, opset, input/output, versions, the agreement) are then written
atomically, the manifest last.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception_ws.errors import ExportError
from perception_ws.models.onnx_format import (
    FORMAT,
    INPUT_NAME,
    OUTPUT_NAME,
    check_onnx_target,
    model_input,
    write_onnx,
)
from perception_ws.models.scan_images import real_images
from perception_ws.models.segmenter import RangeSegmenter
from perception_ws.models.squeezeseg import WIDTH_FACTOR
from perception_ws.models.weights import load_weights, read_manifest, resolve_weights

MIN_OPSET = 17
DEFAULT_OPSET = 18
#: share of pixels whose argmax label must be the same in onnxruntime and torch (the issue's bar).
MIN_AGREEMENT = 0.999
#: the packages an export needs beyond torch (the `onnx` extra of pyproject.toml).
PACKAGES = ("onnx", "onnxscript", "onnxruntime")
#: the largest dynamic width the graph is declared for (a full turn at 0.05 degrees is 7200 columns).
MAX_DYNAMIC_WIDTH = 8192


@dataclass(frozen=True)
class ExportShape:
    """The input size: ``height`` x ``width`` pixels; ``dynamic``: the width is symbolic (a multiple of 16)."""

    height: int
    width: int
    dynamic: bool = False

    def check(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ExportError(f"export size must be positive, got {self.height} x {self.width}")
        if self.dynamic and self.width % WIDTH_FACTOR:
            raise ExportError(
                f"a dynamic-width export traces widths that are multiples of {WIDTH_FACTOR}; got --width {self.width}"
            )
        if self.dynamic and 2 * self.width > MAX_DYNAMIC_WIDTH:
            raise ExportError(
                f"--width {self.width}: a dynamic export is also checked at twice the width, which must stay within "
                f"the graph's maximum {MAX_DYNAMIC_WIDTH}"
            )


@dataclass(frozen=True)
class Agreement:
    """onnxruntime against torch on ``frames`` real images of ``width`` columns."""

    width: int
    frames: int
    labels_same: float  # share of pixels with the same argmax label
    max_abs_logit_diff: float


def require_onnx_packages() -> None:
    """One ExportError naming the missing packages (and how to get them) if onnx, onnxscript or onnxruntime lack."""
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"ONNX export needs {', '.join(missing)}: pip install 'perception_ws[onnx]' "
            f"(or: pip install {' '.join(missing)})"
        )


def export_graph(model: RangeSegmenter, shape: ExportShape, opset: int = DEFAULT_OPSET) -> bytes:
    """The serialized ONNX model of ``model`` for a (1, C, H, W) input of ``shape`` (see the module doc)."""
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is below {MIN_OPSET}, the lowest this export supports")
    shape.check()
    require_onnx_packages()
    example = torch.zeros(1, model.in_channels, shape.height, shape.width)
    dynamic_shapes = None
    if shape.dynamic:
        # width = 16 * blocks: the padding branch of RangeSegmenter.forward is then statically "no padding"
        blocks = torch.export.Dim("blocks", min=1, max=MAX_DYNAMIC_WIDTH // WIDTH_FACTOR)
        dynamic_shapes = {"x": {3: WIDTH_FACTOR * blocks}}
    program = torch.onnx.export(
        model.eval(),
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=dynamic_shapes,
        verbose=False,
    )
    if program is None:  # only the legacy exporter without a file returns None
        raise ExportError("torch.onnx.export returned no program")
    data: bytes = program.model_proto.SerializeToString()
    return data


def measure_agreement(onnx_model: bytes, model: RangeSegmenter, images: Sequence[np.ndarray]) -> Agreement:
    """Run onnxruntime (CPU) and torch on (H, W, C) range images of one size; same-label share, max logit gap."""
    import onnxruntime

    if not images:
        raise ExportError("no range images to check the export on")
    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    same = total = 0
    worst = 0.0
    for image in images:
        x = model_input(image, model.in_channels)
        ours = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        with torch.no_grad():
            reference = model(torch.from_numpy(x)).numpy()
        same += int((ours.argmax(1) == reference.argmax(1)).sum())
        total += reference.shape[2] * reference.shape[3]
        worst = max(worst, float(np.abs(ours - reference).max()))
    return Agreement(int(images[0].shape[1]), len(images), same / total, worst)


def export_onnx(
    weights: str | Path | None,
    out: str | Path,
    shape: ExportShape,
    check_data: str | Path,
    *,
    fov_deg: float = 90.0,
    frames: int = 2,
    opset: int = DEFAULT_OPSET,
) -> dict[str, Any]:
    """Export ``weights`` (None: the shipped default) to ``out`` (.onnx) and ``out``.json; returns the manifest.

    The agreement is measured on ``frames`` scans of ``check_data`` at ``shape`` (a dynamic export also at twice
    the width); below :data:`MIN_AGREEMENT` an ExportError is raised and nothing is written.
    """
    target = Path(out)
    check_onnx_target(target)
    shape.check()
    require_onnx_packages()
    source = resolve_weights(weights)
    # the check images first: a bad --check-data fails in a second, not after the export
    widths = [shape.width, 2 * shape.width] if shape.dynamic else [shape.width]
    # a dynamic export is also checked at twice the columns over the same field of view
    images = {width: real_images(check_data, shape.height, width, fov_deg, frames) for width in widths}
    model = load_weights(source)
    data = export_graph(model, shape, opset)
    checks = [measure_agreement(data, model, batch) for batch in images.values()]
    for check in checks:
        if check.labels_same < MIN_AGREEMENT:
            raise ExportError(
                f"onnxruntime agrees with torch on {check.labels_same:.4%} of labels at width {check.width} "
                f"(needs {MIN_AGREEMENT:.1%}); nothing written"
            )
    manifest = _manifest(target, data, source, model, shape, opset, check_data, checks)
    write_onnx(target, data, manifest)
    return manifest


def _manifest(
    target: Path,
    data: bytes,
    source: Path,
    model: RangeSegmenter,
    shape: ExportShape,
    opset: int,
    check_data: str | Path,
    checks: Sequence[Agreement],
) -> dict[str, Any]:
    width: int | str = "16*blocks" if shape.dynamic else shape.width
    return {
        "format": FORMAT,
        "file": target.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "weights": {"file": str(source), "sha256": read_manifest(source)["sha256"]},
        "model": model.config,
        "precision": "fp32",
        "opset": opset,
        "exporter": "torch.onnx.export(dynamo=True)",
        "input": {"name": INPUT_NAME, "shape": [1, model.in_channels, shape.height, width]},
        "output": {"name": OUTPUT_NAME, "shape": [1, model.num_classes, shape.height, width]},
        "width_multiple": WIDTH_FACTOR if shape.dynamic else None,
        "agreement": {
            "data": str(check_data),
            "min_labels_same": MIN_AGREEMENT,
            "checks": [asdict(check) for check in checks],
        },
        "versions": {name: importlib.metadata.version(name) for name in ("torch", *PACKAGES)},
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
