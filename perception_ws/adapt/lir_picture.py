"""The LIR picture: a real scan's intensity above what each network renders for the same points."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perception_ws.io.atomic import atomic_file
from perception_ws.viz.colors import INTENSITY_CMAP, value_colors

#: rows of a full-turn HDL-64E image are drawn this many pixels tall (64 x 2048 is too flat to read)
_ROW_SCALE = 3


def save_intensity_rows(
    out_png: str | Path, real: np.ndarray, valid: np.ndarray, rendered: Mapping[str, np.ndarray], title: str
) -> Path:
    """One row per image (real first, then each ``rendered`` one), intensity 0..1 on one colour scale."""
    rows = {"real intensity": real, **{f"rendered: {name}": image for name, image in rendered.items()}}
    height, width = real.shape
    fig = Figure(figsize=(width / 160, len(rows) * (height * _ROW_SCALE / 160 + 0.35) + 0.3), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (name, image) in zip(axes, rows.items(), strict=True):
        ax.imshow(value_colors(image, INTENSITY_CMAP, 0.0, 1.0, valid), aspect=_ROW_SCALE, interpolation="nearest")
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    target = Path(out_png)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as handle:
        fig.savefig(handle, format="png", dpi=fig.dpi)
    return target
