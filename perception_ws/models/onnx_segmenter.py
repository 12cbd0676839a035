"""The exported segmenter run by onnxruntime or OpenVINO (``segmenter.runtime: onnxruntime | openvino``), no torch.

:func:`load_onnx_segmenter` opens ``segmenter.onnx`` (written by ``perception export --format onnx`` or
``perception quantize``) and checks its manifest against the pipeline's config before the first scan: the class
count against the class set, the input's rows against the sensor's beams and its columns against ``sensor.width``
(a dynamic-width export takes any multiple of its ``width_multiple``). :class:`OnnxSegmenter` then has
NetworkSegmenter's interface. The runtimes are in :mod:`perception_ws.models.onnx_runtimes`; the same checks
serve both.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perception_ws.calib.sensors import load_sensor
from perception_ws.config.perception import PipelineConfig
from perception_ws.errors import WeightsError
from perception_ws.models.onnx_format import FORMAT, Precision, manifest_path, manifest_precision, model_input
from perception_ws.models.onnx_runtimes import ExportRuntime, open_runtime
from perception_ws.schema import ConfigError


class OnnxSegmenter:
    """An exported range-image network with its CRF, run on a CPU runtime (onnxruntime or OpenVINO): class and
    confidence per pixel, as :class:`~perception_ws.models.network_segmenter.NetworkSegmenter` gives them.
    """

    reads: Literal["range_image"] = "range_image"
    #: calls of the segmenter a pipeline warm-up makes (a network replayed as CUDA graphs needs 3)
    warm_up_calls: int = 1

    def __init__(
        self,
        onnx_file: str | Path,
        in_channels: int,
        *,
        runtime: ExportRuntime = "onnxruntime",
        threads: int = 0,
        precision: Precision = "fp32",
    ) -> None:
        self.infer, runtime_name = open_runtime(runtime, onnx_file, threads)
        self.in_channels = in_channels
        self.summary = f"{Path(onnx_file).name} on {runtime_name}, {precision}"

    def segment_image(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) class ids and (H, W) float32 probability of that class, from an (H, W, C) range image."""
        logits = self.infer(model_input(image, self.in_channels))[0]
        # the top class's softmax probability is 1 / sum(exp(logit - top logit))
        top = logits.max(axis=0)
        confidence = 1.0 / np.exp(logits - top).sum(axis=0)
        return logits.argmax(axis=0), confidence.astype(np.float32)

    def segment_images(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, H, W) class ids and probabilities from (B, H, W, C) range images (the export takes batch 1: a loop)."""
        results = [self.segment_image(image) for image in images]
        return np.stack([r[0] for r in results]), np.stack([r[1] for r in results])


def load_onnx_segmenter(config: PipelineConfig) -> OnnxSegmenter:
    """The segmenter of ``segmenter.onnx``, checked against its manifest and the config (see the module doc)."""
    onnx_file = Path(config.segmenter.onnx)
    manifest = read_onnx_manifest(onnx_file)
    channels, rows, columns = manifest["input"]["shape"][1:]
    classes = manifest["output"]["shape"][1]
    if classes != len(config.classes):
        raise ConfigError(
            f"segmenter.onnx {onnx_file} predicts {classes} classes but class_set {config.class_set} has "
            f"{len(config.classes)}; export weights trained for this class set"
        )
    beams = load_sensor(config.sensor.model).height
    width = config.sensor.width
    multiple = manifest.get("width_multiple")
    fits_width = width % multiple == 0 if isinstance(multiple, int) else width == columns
    if rows != beams or not fits_width:
        wanted = f"any width that is a multiple of {multiple}" if isinstance(multiple, int) else f"width {columns}"
        raise ConfigError(
            f"segmenter.onnx {onnx_file} takes {rows} rows and {wanted}, but sensor {config.sensor.model} has "
            f"{beams} beams and sensor.width is {width}; export at --height {beams} --width {width} (or --dynamic)"
        )
    runtime: ExportRuntime = "openvino" if config.segmenter.runtime == "openvino" else "onnxruntime"
    return OnnxSegmenter(
        onnx_file,
        int(channels),
        runtime=runtime,
        threads=config.segmenter.threads,
        precision=manifest_precision(manifest),
    )


def read_onnx_manifest(onnx_file: Path) -> dict[str, Any]:
    """The manifest beside ``onnx_file``, after checking its format and that the file is the one it describes."""
    where = manifest_path(onnx_file)
    if not onnx_file.is_file():
        raise ConfigError(f"segmenter.onnx {onnx_file}: no such file (write one with perception export --format onnx)")
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WeightsError(f"{where}: the manifest of {onnx_file.name} cannot be read ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise WeightsError(f"{where}: not a {FORMAT} manifest")
    digest = hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    if digest != manifest.get("sha256"):
        raise WeightsError(f"{onnx_file}: its sha256 differs from its manifest's (the file changed after export)")
    return manifest
