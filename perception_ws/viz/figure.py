"""One picture of a scan: range image(s), bird's-eye view with boxes, camera overlay.

Layout: a column of image panels (camera overlay, range image by label, range image by intensity)
beside the bird's-eye view, sized so that both columns end level and no panel is stretched; very wide
range images (a full turn) go to a full-width strip on top instead when that wastes less space.
Panels whose inputs the scan lacks are left out. :func:`render_scan` writes the PNG;
:func:`compose_scan` also says where each panel lies in it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perception_ws.errors import PerceptionError
from perception_ws.io.atomic import atomic_file
from perception_ws.labels import KITTI3, SEMANTIC_KITTI, ClassSet, semantickitti_to_kitti3
from perception_ws.scan import Scan
from perception_ws.viz.bev import Extent, auto_extent, box_rgb, check_extent, draw_bev
from perception_ws.viz.overlay import overlay
from perception_ws.viz.range_image import pixel_labels, render_range_image

#: channel order of a range image (SqueezeSeg's .npy and projection.project alike).
INTENSITY, RANGE = 3, 4
#: a box is drawn on the camera image only when all its corners are at least this far in front.
MIN_BOX_DEPTH = 0.5

FIG_WIDTH_IN = 16.0
BEV_MIN_H_IN = 6.5  # the bird's-eye view is the main panel: never shorter than this
BEV_MAX_W_FRACTION = 0.55  # nor wider than this share of the width left for panels
WIDE_ASPECT = 0.25  # panels flatter than this (height / width) may go to a full-width strip on top
MAX_UNEVEN_IN = 1.5  # ... when side by side the columns would end further apart than this
LEGEND_IN = 1.4  # room right of the bird's-eye view for the class legend
SUPTITLE_IN = 0.5  # space for the figure title
PANEL_TITLE_IN = 0.3  # space above each panel for its title
MARGIN_IN = 0.15  # outer margin
GAP_IN = 0.35  # between the columns
BEV_LEFT_IN, BEV_BOTTOM_IN = 0.6, 0.5  # room for the bird's-eye view's tick and axis labels
FONT = 10.0


class RangeProjection(Protocol):
    """What :func:`perception_ws.projection.project` returns, as far as pictures need it."""

    @property
    def image(self) -> np.ndarray:  # (H, W, 6): x, y, z, intensity, range, mask
        ...

    @property
    def rows(self) -> np.ndarray:  # (N,) row of every point, -1 when not in view
        ...

    @property
    def cols(self) -> np.ndarray:  # (N,) column of every point, -1 when not in view
        ...


@dataclass
class ScanFigure:
    """A composed picture of a scan and where its panels lie.

    ``panels`` maps a panel name ("camera", "range_labels", "range_intensity", "bev") to its
    (left, top, right, bottom) pixel box in the saved PNG (origin top-left): the area where the panel's
    data is drawn; the bird's-eye view's box spans ``bev_extent``.
    """

    figure: Figure
    size: tuple[int, int]  # width, height in pixels
    panels: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    bev_extent: Extent | None = None

    def save(self, out_png: str | os.PathLike[str]) -> Path:
        """Write the PNG atomically (a temporary file renamed into place); returns its path."""
        out = Path(out_png)
        if out.suffix.lower() != ".png":
            raise PerceptionError(f"render_scan: output must be a .png file, got {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(out) as f:
            self.figure.savefig(f, format="png", dpi=self.figure.dpi)
        return out


def scan_labels(scan: Scan, class_set: ClassSet) -> np.ndarray | None:
    """The scan's per-point labels in ``class_set``: SemanticKITTI ids for that set, KITTI-3 otherwise
    (converted from SemanticKITTI ids when the scan has only those).
    """
    if class_set.name == SEMANTIC_KITTI.name:
        return scan.semantic
    if scan.labels is not None:
        return scan.labels
    if scan.semantic is not None and class_set.name == KITTI3.name:
        return semantickitti_to_kitti3(scan.semantic)
    return None


@dataclass
class _Panel:
    name: str
    title: str
    rgb: np.ndarray  # what imshow draws
    aspect: float  # height / width of the drawn area


def _range_panels(scan: Scan, projection: RangeProjection | None, class_set: ClassSet, row_scale: int) -> list[_Panel]:
    if scan.range_image is not None:
        image, pixels = np.asarray(scan.range_image), scan.pixels
        rows_cols = None if pixels is None else (np.asarray(pixels)[:, 0], np.asarray(pixels)[:, 1])
    elif projection is not None:
        image, rows_cols = np.asarray(projection.image), (np.asarray(projection.rows), np.asarray(projection.cols))
    else:
        return []
    if image.ndim != 3 or image.shape[2] <= RANGE:
        raise PerceptionError(
            f"range image: expected (H, W, C>={RANGE + 1}) with x, y, z, intensity, range; got {image.shape}"
        )
    h, w = image.shape[:2]
    valid = image[..., RANGE] > 0
    size = f"{h}×{w}"
    panels = []
    labels = scan_labels(scan, class_set)
    if labels is not None and rows_cols is not None:
        ids = pixel_labels(*rows_cols, labels, (h, w), depth=np.linalg.norm(scan.xyz, axis=1))
        rgb = render_range_image(ids, "labels", valid=valid & (ids >= 0), class_set=class_set, row_scale=row_scale)
        panels.append(_Panel("range_labels", f"range image {size}: labels ({class_set.name})", rgb, rgb.shape[0] / w))
    rgb = render_range_image(image[..., INTENSITY], "intensity", valid=valid, row_scale=row_scale)
    panels.append(
        _Panel("range_intensity", f"range image {size}: intensity (bright = strong return)", rgb, rgb.shape[0] / w)
    )
    return panels


def _camera_panel(scan: Scan, class_set: ClassSet) -> _Panel | None:
    if scan.image is None or scan.calib is None:
        return None
    image = np.asarray(scan.image)
    uv, depth = scan.calib.velo_to_image(scan.xyz)
    corners, colors = [], []
    h, w = image.shape[:2]
    for box in scan.boxes:
        c_uv, c_depth = scan.calib.velo_to_image(box.corners())
        on_image = (c_uv[:, 0] >= 0) & (c_uv[:, 0] < w) & (c_uv[:, 1] >= 0) & (c_uv[:, 1] < h)
        if np.all(c_depth >= MIN_BOX_DEPTH) and on_image.any():
            corners.append(c_uv)
            colors.append(box_rgb(box, class_set))
    rgb = overlay(image, uv, depth, radius=1, alpha=0.7, box_corners=corners, box_colors=colors)
    title = "camera: LiDAR points by depth (bright = near)" + (", 3D boxes" if corners else "")
    return _Panel("camera", title, rgb, h / w)


#: (left, top, width, height) in inches, ``top`` measured down from the figure's top edge.
Rect = tuple[float, float, float, float]


def _columns(panels: list[_Panel], bev_aspect: float, top: float) -> tuple[dict[str, Rect], float]:
    """``panels`` stacked in a left column beside the bird's-eye view, from ``top`` down; returns the
    data rectangles and the bottom of the taller column.

    Preferably both columns end level: Σ(Lw·a_i + title) = Bw·a_bev + title + axis labels, with the widths
    filling the figure. When that makes the view too small or too wide it gets a set size instead.
    """
    avail = FIG_WIDTH_IN - 2 * MARGIN_IN - GAP_IN - BEV_LEFT_IN - LEGEND_IN
    a_sum = sum(p.aspect for p in panels)
    extra_left = len(panels) * PANEL_TITLE_IN
    extra_bev = PANEL_TITLE_IN + BEV_BOTTOM_IN
    # Level columns: Lw + Bw = avail and Lw·a_sum + extra_left = Bw·a_bev + extra_bev (no left column: < 0).
    bev_w = (avail * a_sum + extra_left - extra_bev) / (a_sum + bev_aspect)
    bev_w = min(max(bev_w, BEV_MIN_H_IN / bev_aspect), BEV_MAX_W_FRACTION * avail)
    left_w = avail - bev_w
    rects: dict[str, Rect] = {}
    y = top
    for panel in panels:
        h = left_w * panel.aspect
        rects[panel.name] = (MARGIN_IN, y + PANEL_TITLE_IN, left_w, h)
        y += PANEL_TITLE_IN + h
    bev_left = MARGIN_IN + left_w + GAP_IN + BEV_LEFT_IN if panels else (FIG_WIDTH_IN - LEGEND_IN - bev_w) / 2
    rects["bev"] = (bev_left, top + PANEL_TITLE_IN, bev_w, bev_w * bev_aspect)
    return rects, max(y, top + bev_w * bev_aspect + extra_bev)


def _uneven(rects: dict[str, Rect], bottom: float) -> float:
    """How far the image column ends above the bird's-eye view column (inches of blank space)."""
    left_bottom = max((top + h for name, (_, top, _, h) in rects.items() if name != "bev"), default=bottom)
    return bottom - left_bottom


def _arrange(panels: list[_Panel], bev_aspect: float) -> tuple[dict[str, Rect], float]:
    """Where each panel goes and the figure height (inches).

    Two columns (image panels | bird's-eye view), or, when that leaves much blank space under the
    images, very wide panels (full-turn range images) in a full-width strip on top, where they are
    readable, and the rest in columns below: whichever leaves less blank space.
    """
    rects, bottom = _columns(panels, bev_aspect, SUPTITLE_IN)
    wide = [p for p in panels if p.aspect < WIDE_ASPECT]
    if wide and _uneven(rects, bottom) > MAX_UNEVEN_IN:
        strip: dict[str, Rect] = {}
        y = SUPTITLE_IN
        width = FIG_WIDTH_IN - 2 * MARGIN_IN
        for panel in wide:
            strip[panel.name] = (MARGIN_IN, y + PANEL_TITLE_IN, width, width * panel.aspect)
            y += PANEL_TITLE_IN + width * panel.aspect
        rest = [p for p in panels if p not in wide]
        below, below_bottom = _columns(rest, bev_aspect, y + GAP_IN / 2)
        if not rest or _uneven(below, below_bottom) < _uneven(rects, bottom):
            rects, bottom = {**below, **strip}, below_bottom
    return rects, bottom + MARGIN_IN


def _image_axes(fig: Figure, rect: tuple[float, float, float, float], panel: _Panel) -> Axes:
    ax = fig.add_axes(rect)
    upscaled = rect[2] * fig.get_figwidth() * fig.dpi >= panel.rgb.shape[1]
    ax.imshow(panel.rgb, interpolation="nearest" if upscaled else "antialiased", aspect="auto")
    ax.set_axis_off()
    ax.set_title(panel.title, fontsize=FONT, loc="left", pad=4)
    return ax


def compose_scan(
    scan: Scan,
    projection: RangeProjection | None = None,
    class_set: ClassSet = KITTI3,
    title: str | None = None,
    *,
    extent: Extent | None = None,
    row_scale: int = 4,
    dpi: int = 100,
) -> ScanFigure:
    """Compose the picture of ``scan`` (see :func:`render_scan`) without writing it."""
    camera = _camera_panel(scan, class_set)
    left = ([camera] if camera else []) + _range_panels(scan, projection, class_set, row_scale)
    labels = scan_labels(scan, class_set)
    xyz = scan.xyz
    bev_extent = auto_extent(xyz, scan.boxes) if extent is None else check_extent(extent)
    bev_aspect = (bev_extent[1] - bev_extent[0]) / (bev_extent[3] - bev_extent[2])

    rects, height = _arrange(left, bev_aspect)
    fig = Figure(figsize=(FIG_WIDTH_IN, height), dpi=dpi)
    fig.suptitle(
        title or scan.name or "scan",
        fontsize=FONT + 3,
        x=MARGIN_IN / FIG_WIDTH_IN,
        ha="left",
        y=1 - 0.12 / height,
        va="top",
    )

    def fraction(rect: Rect) -> tuple[float, float, float, float]:
        left, top, w, h = rect
        return (left / FIG_WIDTH_IN, 1 - (top + h) / height, w / FIG_WIDTH_IN, h / height)

    axes = {panel.name: _image_axes(fig, fraction(rects[panel.name]), panel) for panel in left}
    ax = fig.add_axes(fraction(rects["bev"]))
    draw_bev(
        ax,
        xyz,
        labels=labels,
        class_set=class_set,
        boxes=scan.boxes,
        extent=bev_extent,
        legend="outside",
        fontsize=FONT - 1,
    )
    coloured_by = f"points by class ({class_set.name})" if labels is not None else "points by height"
    ax.set_title(f"bird's-eye view: {coloured_by}" + (", boxes" if scan.boxes else ""), fontsize=FONT, loc="left")
    axes["bev"] = ax

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # settles the layout, so the panel boxes below match the saved file
    width_px, height_px = (int(v) for v in canvas.get_width_height())
    panels = {}
    for name, a in axes.items():
        box = a.get_window_extent()
        panels[name] = (round(box.x0), round(height_px - box.y1), round(box.x1), round(height_px - box.y0))
    return ScanFigure(fig, (width_px, height_px), panels, bev_extent)


def render_scan(
    scan: Scan,
    out_png: str | os.PathLike[str],
    projection: RangeProjection | None = None,
    class_set: ClassSet = KITTI3,
    title: str | None = None,
    *,
    extent: Extent | None = None,
    row_scale: int = 4,
    dpi: int = 100,
) -> Path:
    """Write one PNG of ``scan``: range image(s), bird's-eye view with boxes, camera overlay.

    The range image is the scan's own (``scan.range_image`` with ``scan.pixels``, e.g. SqueezeSeg's) or,
    failing that, the given ``projection``; without either that panel is left out. The camera panel
    needs ``scan.image`` and ``scan.calib`` (projected with ``scan.calib.velo_to_image``). Labels, when
    the scan has them, colour the range image and the bird's-eye view. The file is written atomically.
    """
    composed = compose_scan(scan, projection, class_set, title, extent=extent, row_scale=row_scale, dpi=dpi)
    return composed.save(out_png)
