"""The exported segmenter run by onnxruntime (``segmenter.runtime: onnxruntime``), without torch.

:func:`load_onnx_segmenter` opens ``segmenter.onnx`` (written by ``perception export --format onnx``) and checks
its manifest against the pipeline's config before the first scan: the class count against the class set, the
input's rows against the sensor's beams and its columns against ``sensor.width`` (a dynamic-width export takes
any multiple of its ``width_multiple``). :class:`OnnxSegmenter` then has NetworkSegmenter's interface.
onnxruntime is imported only here, when such a segmenter is built.
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
from perception_ws.models.onnx_format import FORMAT, INPUT_NAME, OUTPUT_NAME, manifest_path
from perception_ws.schema import ConfigError


class OnnxSegmenter:
    """An exported range-image network with its CRF, run on onnxruntime's CPU provider: class and confidence
    per pixel, as :class:`~perception_ws.models.network_segmenter.NetworkSegmenter` gives them.
    """

    reads: Literal["range_image"] = "range_image"

    def __init__(self, onnx_file: str | Path, in_channels: int, *, threads: int = 0) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise WeightsError(
                "segmenter.runtime = 'onnxruntime' needs the onnxruntime package: pip install 'perception_ws[onnx]'"
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default (one per core)
        options.inter_op_num_threads = 1  # one graph at a time: no second pool competing for the cores
        try:
            self.session = onnxruntime.InferenceSession(
                str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise WeightsError(f"{onnx_file}: onnxruntime cannot load it ({error})") from None
        self.in_channels = in_channels
        self.summary = f"{Path(onnx_file).name} on onnxruntime {onnxruntime.__version__} (CPU), fp32"

    def segment_image(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) class ids and (H, W) float32 probability of that class, from an (H, W, C) range image."""
        x = np.ascontiguousarray(image[..., : self.in_channels].transpose(2, 0, 1)[None], dtype=np.float32)
        logits = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0][0]
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
    return OnnxSegmenter(onnx_file, int(channels), threads=config.segmenter.threads)


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
