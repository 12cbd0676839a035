"""Colours shared by every picture: value colormaps, class colours, input checks for colour arrays."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from perception_ws.errors import PerceptionError
from perception_ws.labels import ClassSet

#: pixels with no return (and the BEV background): dark, but not the black some class sets use.
EMPTY_RGB = (28, 28, 32)
#: perceptually uniform maps: intensity bright = strong return; range/depth bright = near.
INTENSITY_CMAP = "viridis"
DEPTH_CMAP = "plasma_r"
HEIGHT_CMAP = "viridis"


def value_colors(
    values: np.ndarray, cmap: str, vmin: float | None = None, vmax: float | None = None, valid: np.ndarray | None = None
) -> np.ndarray:
    """RGB uint8 (shape + (3,)) of ``values`` through a matplotlib colormap.

    Unset limits come from the valid values' 1st and 99th percentiles, so one bright reflector or one
    far point does not wash out the picture.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(v))
    sample = v[ok]
    if vmin is None:
        vmin = float(np.percentile(sample, 1)) if sample.size else 0.0
    if vmax is None:
        vmax = float(np.percentile(sample, 99)) if sample.size else 1.0
    lo, hi = vmin, vmax
    scaled = np.clip((v - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(v)
    rgba = colormaps[cmap](np.where(ok, scaled, 0.0), bytes=True)
    rgb = np.ascontiguousarray(rgba[..., :3])
    rgb[~ok] = EMPTY_RGB
    return rgb


def as_label_ids(name: str, labels: np.ndarray) -> np.ndarray:
    """Class ids as int64; float arrays are accepted when they hold whole numbers (SqueezeSeg's .npy)."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise PerceptionError(f"{name}: expected integer class ids, got dtype {arr.dtype} with non-integer values")


def class_colors(labels: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """RGB uint8 per label, rejecting ids the class set does not have (a label-space mix-up)."""
    ids = as_label_ids("labels", labels)
    if ids.size and (ids.min() < 0 or ids.max() >= len(class_set)):
        raise PerceptionError(
            f"labels: ids {ids.min()}..{ids.max()} do not fit class set {class_set.name} (0..{len(class_set) - 1})"
        )
    return class_set.colorize(ids)


def hex_color(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """An (r, g, b) 0..255 colour as matplotlib's ``#rrggbb``."""
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"
