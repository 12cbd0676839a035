"""`perception viz --predict`: one PNG of a frame as the model sees it, above the frame's stored ground truth.

The top picture is :func:`perception_ws.viz.figure.compose_scan` of the scan with the node's pipeline
output in place of its labels and boxes (labels, instances, detections); the bottom one, drawn only when
the source has labels or boxes, the same scan with what it stores. Both share the bird's-eye view's extent.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
from PIL import Image

from perception_ws.config import PipelineConfig
from perception_ws.io.atomic import atomic_file
from perception_ws.pipeline import Pipeline
from perception_ws.scan import Scan
from perception_ws.viz.bev import auto_extent
from perception_ws.viz.figure import ScanFigure, compose_scan
from perception_ws.viz.scene import frame_view


def compose_prediction(
    path: Path, config: PipelineConfig, frame: int = 0, sensor: str | None = None, fov_deg: float | None = None
) -> list[ScanFigure]:
    """The model's picture of frame ``frame``, then the ground truth's when the source has any."""
    scan, projection, title = frame_view(path, frame, sensor, fov_deg)
    pipeline = Pipeline(config)
    result = pipeline.process(scan.points, 0.0, track=False)
    predicted = dataclasses.replace(
        scan, labels=result.labels, semantic=None, instances=result.instances, boxes=result.detections
    )
    extent = auto_extent(scan.xyz, [*scan.boxes, *result.detections])
    classes = pipeline.class_set
    source = config.segmenter.kind if config.segmenter.kind != "model" else "model"
    figures = [
        compose_scan(predicted, projection, classes, f"{source}: {title} · {len(result.detections)} detections",
                     extent=extent)
    ]  # fmt: skip
    if _has_truth(scan):
        figures.append(compose_scan(scan, projection, classes, f"ground truth: {title}", extent=extent))
    return figures


def render_prediction(
    path: Path,
    out: Path,
    config: PipelineConfig,
    frame: int = 0,
    sensor: str | None = None,
    fov_deg: float | None = None,
) -> Path:
    """Write :func:`compose_prediction`'s pictures, one above the other, to the PNG ``out`` (atomically)."""
    if out.suffix.lower() != ".png":
        from perception_ws.errors import PerceptionError

        raise PerceptionError(f"viz: --out must name a .png file; got {out}")
    return save_stacked(compose_prediction(path, config, frame, sensor, fov_deg), out)


def save_stacked(figures: list[ScanFigure], out: Path) -> Path:
    """The figures one above the other in the PNG ``out`` (written atomically)."""
    pictures = [np.asarray(figure.figure.canvas.buffer_rgba())[..., :3] for figure in figures]  # type: ignore[attr-defined]
    width = max(p.shape[1] for p in pictures)
    padded = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in pictures]
    buffer = io.BytesIO()
    Image.fromarray(np.vstack(padded)).save(buffer, format="PNG")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as handle:
        handle.write(buffer.getvalue())
    return out


def save_small_copy(full: Path, out: Path) -> None:
    """The PNG ``full`` at half size in 256 colours, as ``out`` (atomically): the size the repository's pictures
    are kept at (docs/images).
    """
    small = Image.open(full).convert("RGB")
    small = small.resize((small.width // 2, small.height // 2), Image.Resampling.LANCZOS)
    small = small.quantize(colors=256, dither=Image.Dither.NONE)
    with atomic_file(out) as handle:
        small.save(handle, format="PNG", optimize=True)


def _has_truth(scan: Scan) -> bool:
    return scan.labels is not None or scan.semantic is not None or bool(scan.boxes)
