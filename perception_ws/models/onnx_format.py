"""What an exported segmenter file looks like (``perception export --format onnx``), without torch.

Shared by the exporter (:mod:`perception_ws.models.onnx_export`, which needs torch) and the onnxruntime
segmenter (:mod:`perception_ws.models.onnx_segmenter`, which must not): the manifest's format tag, the graph's
input and output names and where the manifest lies.
"""

from __future__ import annotations

from pathlib import Path

FORMAT = "perception-onnx/1"
INPUT_NAME = "range_image"
OUTPUT_NAME = "logits"


def manifest_path(onnx_file: str | Path) -> Path:
    """The manifest beside an ONNX file (``model.onnx`` -> ``model.onnx.json``)."""
    path = Path(onnx_file)
    return path.with_name(path.name + ".json")
