"""Range images as RGB pictures: by class label, by intensity or by range.

A LiDAR range image is wide and short (64 x 512 for KITTI's front view, 64 x 2048 for a full turn) and
each pixel spans more elevation than azimuth, so rows are drawn several pixels tall to stay readable.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3, ClassSet
from perception_ws.viz.colors import DEPTH_CMAP, EMPTY_RGB, INTENSITY_CMAP, as_label_ids, class_colors, value_colors

RangeImageKind = Literal["labels", "intensity", "range"]
KINDS: tuple[str, ...] = ("labels", "intensity", "range")


def render_range_image(
    values: np.ndarray,
    kind: RangeImageKind = "labels",
    *,
    valid: np.ndarray | None = None,
    class_set: ClassSet = KITTI3,
    row_scale: int = 4,
    col_scale: int = 1,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """(H * row_scale, W * col_scale, 3) uint8 picture of one (H, W) channel; empty pixels dark.

    ``valid``: pixels holding a return. Default: ids >= 0 for labels (see :func:`pixel_labels`), range > 0
    for range, every pixel for intensity (an intensity of 0 is a real return, so pass the mask).
    Intensity and range use perceptually uniform colormaps; limits default to 0 and the 99th percentile.
    """
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise PerceptionError(f"range image: expected one (H, W) channel, got shape {arr.shape}")
    if kind not in KINDS:
        raise PerceptionError(f"range image: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if row_scale < 1 or col_scale < 1:
        raise PerceptionError(f"range image: scales must be >= 1, got row_scale={row_scale}, col_scale={col_scale}")
    if valid is not None and np.shape(valid) != arr.shape:
        raise PerceptionError(f"range image: valid mask has shape {np.shape(valid)}, expected {arr.shape}")

    if kind == "labels":
        ids = as_label_ids("range image labels", arr)
        ok = ids >= 0 if valid is None else np.asarray(valid, dtype=bool)
        rgb = np.empty((*arr.shape, 3), dtype=np.uint8)
        rgb[...] = EMPTY_RGB
        rgb[ok] = class_colors(ids[ok], class_set)
    else:
        if kind == "range" and valid is None:
            valid = arr > 0
        cmap = DEPTH_CMAP if kind == "range" else INTENSITY_CMAP
        rgb = value_colors(arr, cmap, 0.0 if vmin is None else vmin, vmax, valid)
    return np.repeat(np.repeat(rgb, row_scale, axis=0), col_scale, axis=1)


def pixel_labels(
    rows: np.ndarray, cols: np.ndarray, labels: np.ndarray, shape: tuple[int, int], depth: np.ndarray | None = None
) -> np.ndarray:
    """Per-point labels scattered into an (H, W) int64 image; -1 where no point lands.

    Points with a negative row or column (outside the view) are skipped. When several points share a
    pixel the nearest (smallest ``depth``) one names it, as the range image keeps the nearest return;
    without ``depth`` the first point does.
    """
    r, c = np.asarray(rows).reshape(-1), np.asarray(cols).reshape(-1)
    ids = as_label_ids("labels", labels).reshape(-1)
    if not (len(r) == len(c) == len(ids)) or (depth is not None and len(depth) != len(ids)):
        raise PerceptionError(
            f"pixel_labels: rows ({len(r)}), cols ({len(c)}), labels ({len(ids)})"
            + (f", depth ({len(depth)})" if depth is not None else "")
            + " must have one entry per point"
        )
    h, w = shape
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    flat = r[inside].astype(np.int64) * w + c[inside]
    key = np.zeros(len(flat)) if depth is None else np.asarray(depth, dtype=np.float64).reshape(-1)[inside]
    order = np.lexsort((key, flat))  # by pixel, nearest first (stable: first point on ties)
    first = order[np.unique(flat[order], return_index=True)[1]]
    out = np.full(h * w, -1, dtype=np.int64)
    out[flat[first]] = ids[inside][first]
    return out.reshape(h, w)
