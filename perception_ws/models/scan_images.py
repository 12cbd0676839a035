"""Real scans as range images of one size, for checking an export and calibrating its int8 copy (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception_ws.errors import ExportError


def real_images(
    source: str | Path, height: int, width: int, fov_deg: float, frames: int, sensor: str = "hdl64e"
) -> list[np.ndarray]:
    """The first ``frames`` scans of ``source`` (any readable file, folder or bag) projected to ``height`` x
    ``width`` over ``fov_deg`` degrees, as (H, W, 6) range images; the pipeline's own projection. ``sensor``
    gives the beam table of scans that name no sensor (PCD files, KITTI .bin).
    """
    from perception_ws.io import open_dataset
    from perception_ws.projection import project

    dataset = open_dataset(source)
    count = min(frames, len(dataset))
    if count == 0:
        raise ExportError(f"{source}: holds no scans to check the export on")
    images = []
    for index in range(count):
        scan = dataset[index]
        # the numpy backend: for a few frames it is quicker than compiling the numba one, and its results are the same
        projection = project(scan, scan.sensor or sensor, fov_deg=fov_deg, width=width, height=height, backend="numpy")
        images.append(projection.image)
    return images
