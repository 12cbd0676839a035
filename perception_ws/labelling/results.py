"""One frame's pipeline results kept on disk (``results/NNNNNN.npz``) for the outputs made after the frame
loop (the MCAP, whose tracks need every frame's detections in order): labels, instances, detections.

Plain arrays in an uncompressed ``.npz`` read with ``allow_pickle=False``: loading runs no code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.errors import DatasetError
from perception_ws.io.atomic import atomic_file

#: columns of the detections array.
_BOX_COLUMNS = ("cx", "cy", "cz", "length", "width", "height", "yaw", "score", "num_points", "label")


@dataclass
class FrameResult:
    """What the frame loop found in one scan (per-point arrays in the scan's point order)."""

    labels: np.ndarray
    instances: np.ndarray
    detections: list[Box3D]
    stamp_ns: int


def save_result(path: Path, result: FrameResult) -> None:
    """Write ``result`` atomically."""
    boxes = np.array(
        [[*b.center, *b.size, b.yaw, b.score, b.num_points, b.label] for b in result.detections], dtype=np.float64
    ).reshape(-1, len(_BOX_COLUMNS))
    buffer = io.BytesIO()
    np.savez(
        buffer,
        labels=np.asarray(result.labels, np.uint16),
        instances=np.asarray(result.instances, np.uint32),
        boxes=boxes,
        stamp_ns=np.int64(result.stamp_ns),
    )
    with atomic_file(path) as handle:
        handle.write(buffer.getvalue())


def load_result(path: Path, class_names: tuple[str, ...]) -> FrameResult:
    """Read a result :func:`save_result` wrote (boxes get their class name from ``class_names``)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            labels, instances, boxes = data["labels"], data["instances"], data["boxes"]
            stamp_ns = int(data["stamp_ns"])
    except (OSError, KeyError, ValueError) as err:
        raise DatasetError(f"{path}: not a readable frame result ({err}); delete it to label the frame again") from None
    detections = [
        Box3D(
            center=row[0:3],
            size=row[3:6],
            yaw=float(row[6]),
            score=float(row[7]),
            num_points=int(row[8]),
            label=int(row[9]),
            name=class_names[int(row[9])],
        )
        for row in boxes
    ]
    return FrameResult(labels, instances, detections, stamp_ns)
