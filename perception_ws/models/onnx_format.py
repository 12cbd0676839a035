"""What an exported segmenter file looks like (``perception export --format onnx``, ``perception quantize``),
without torch.

Shared by the exporter (:mod:`perception_ws.models.onnx_export`, which needs torch), the int8 quantiser and the
segmenter that runs the file (:mod:`perception_ws.models.onnx_segmenter`, which must not): the manifest's format
tag, the graph's input and output names, where the manifest lies and how the pair is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perception_ws.errors import ExportError
from perception_ws.io.atomic import atomic_file

FORMAT = "perception-onnx/1"
INPUT_NAME = "range_image"
OUTPUT_NAME = "logits"
#: the arithmetic of an exported file (the manifest's ``precision``; a manifest without one is fp32).
Precision = Literal["fp32", "int8"]


def model_input(image: np.ndarray, in_channels: int) -> np.ndarray:
    """An (H, W, C) range image as an export's (1, in_channels, H, W) float32 input."""
    return np.ascontiguousarray(image[..., :in_channels].transpose(2, 0, 1)[None], dtype=np.float32)


def manifest_path(onnx_file: str | Path) -> Path:
    """The manifest beside an ONNX file (``model.onnx`` -> ``model.onnx.json``)."""
    path = Path(onnx_file)
    return path.with_name(path.name + ".json")


def manifest_precision(manifest: dict[str, Any]) -> Precision:
    """``fp32`` or ``int8``: the manifest's precision (exports written before int8 existed carry none: fp32)."""
    return "int8" if manifest.get("precision") == "int8" else "fp32"


def check_onnx_target(target: Path) -> None:
    """One ExportError unless ``target`` ends in .onnx and its folder exists (checked before any slow work)."""
    if target.suffix != ".onnx":
        raise ExportError(f"{target}: the output must end in .onnx (its manifest goes beside it as .onnx.json)")
    if not target.parent.is_dir():
        raise ExportError(f"{target}: folder {target.parent} does not exist")


def write_onnx(target: Path, data: bytes, manifest: dict[str, Any]) -> None:
    """Write ``target`` and its manifest atomically, the manifest last: a manifest means the .onnx is complete."""
    with atomic_file(target) as handle:
        handle.write(data)
    with atomic_file(manifest_path(target)) as handle:
        handle.write((json.dumps(manifest, indent=2) + "\n").encode())
