"""`perception viz`: draw one frame of any source the io registry reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception_ws.calib.sensors import load_sensor
from perception_ws.errors import DatasetError
from perception_ws.io import open_dataset
from perception_ws.labels import KITTI3
from perception_ws.projection import Projection, project
from perception_ws.scan import Scan
from perception_ws.viz.figure import render_scan


def render_path(path: Path, out: Path, frame: int = 0, sensor: str | None = None, fov_deg: float | None = None) -> Path:
    """Render frame ``frame`` of ``path`` to the PNG ``out``: range image, bird's-eye view, camera overlay."""
    scan, projection, title = frame_view(path, frame, sensor, fov_deg)
    return render_scan(scan, out, projection=projection, class_set=KITTI3, title=title)


def frame_view(
    path: Path, frame: int = 0, sensor: str | None = None, fov_deg: float | None = None
) -> tuple[Scan, Projection, str]:
    """Frame ``frame`` of ``path``, its range-image projection for the picture and the picture's title."""
    dataset = open_dataset(path)
    if len(dataset) == 0:
        why = "; ".join(dataset.notes) or "it holds no frames"
        raise DatasetError(f"{path}: nothing to draw ({why})")
    if not 0 <= frame < len(dataset):
        raise DatasetError(f"{path}: frame {frame} does not exist; it holds frames 0..{len(dataset) - 1}")
    scan = dataset[frame]
    if not np.isfinite(scan.xyz).all(axis=1).any():
        raise DatasetError(
            f"{path}: frame {frame} has no point with finite coordinates (all NaN or Inf); nothing to draw"
        )
    model = load_sensor(sensor or scan.sensor or "hdl64e")  # a built-in name or a sensor YAML file
    if fov_deg is None and scan.range_image is not None:
        fov, width = 90.0, scan.range_image.shape[1]  # a released front-view image: keep its geometry
    else:
        # None means the full turn; 0 is not a width (project() refuses it with the valid range)
        fov = 360.0 if fov_deg is None else fov_deg
        width = 2048 if fov > 180 else 512
    projection = project(scan, model, fov_deg=fov, width=width)
    title = f"{path.name} · frame {frame} ({scan.name}) · {len(scan)} points · {model.name}"
    return scan, projection, title
