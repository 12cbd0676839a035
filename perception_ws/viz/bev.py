"""Bird's-eye view: points from above, coloured by class or height, with oriented boxes.

The view is vehicle-centric: x (forward) points up the picture, y (left) to the left, so the picture
reads like the road ahead. Axes are in metres with equal scale on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Polygon

from perception_ws.boxes import MOVING_SPEED, Box3D
from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3, ClassSet
from perception_ws.viz.colors import EMPTY_RGB, HEIGHT_CMAP, class_colors, hex_color, value_colors

#: (x_min, x_max, y_min, y_max) in metres, LiDAR frame.
Extent = tuple[float, float, float, float]

EGO_LENGTH, EGO_WIDTH = 4.5, 1.8  # a typical car footprint, drawn around the sensor


def auto_extent(xyz: np.ndarray, boxes: Sequence[Box3D] = (), step: float = 5.0, limit: float = 80.0) -> Extent:
    """The region holding 98% of the points (1st..99th percentile per axis) and every box, in whole steps.

    Clamped to ``limit`` metres around the sensor (distant stray returns would shrink everything else)
    and always including the ego vehicle.
    """
    pts = _check_xyz(xyz)
    pts = pts[np.isfinite(pts).all(axis=1)]  # one NaN would make every percentile NaN (and the figure size)
    # What must be in view: the bulk of the points, every box corner and the ego car behind the sensor.
    keep = [np.array([[-EGO_LENGTH, -EGO_WIDTH], [EGO_LENGTH, EGO_WIDTH]])]
    if len(pts):
        keep.append(np.percentile(pts[:, :2], [1, 99], axis=0))
    keep += [b.bev_corners() for b in boxes]
    xy = np.concatenate(keep)
    xs, ys = xy[:, 0], xy[:, 1]

    def span(v: np.ndarray) -> tuple[float, float]:
        lo = max(np.floor(v.min() / step) * step, -limit)
        hi = min(np.ceil(v.max() / step) * step, limit)
        return (float(lo), float(max(hi, lo + step)))

    return (*span(xs), *span(ys))


def check_extent(extent: Extent) -> Extent:
    """``extent`` as four floats, rejecting an empty or non-finite region."""
    values = np.asarray(extent, dtype=np.float64).reshape(-1)
    if values.shape != (4,) or not np.all(np.isfinite(values)) or not (values[0] < values[1] and values[2] < values[3]):
        raise PerceptionError(f"bird's-eye view: extent {extent} must be finite (x_min < x_max, y_min < y_max)")
    x_min, x_max, y_min, y_max = (float(v) for v in values)
    return (x_min, x_max, y_min, y_max)


def _check_xyz(xyz: np.ndarray) -> np.ndarray:
    pts = np.asarray(xyz)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise PerceptionError(f"bird's-eye view: expected points of shape (N, 3), got {pts.shape}")
    return pts[:, :3]


def box_text(box: Box3D, class_set: ClassSet) -> str:
    """The box's name (or its class name), with the track id when it has one."""
    name = box.name or (class_set.names[box.label] if 0 <= box.label < len(class_set) else f"class {box.label}")
    return f"{name} #{box.track_id}" if box.track_id >= 0 else name


def box_rgb(box: Box3D, class_set: ClassSet) -> tuple[int, int, int]:
    """The class colour of ``box`` in ``class_set``, white for a label outside it."""
    return class_set.colors[box.label] if 0 <= box.label < len(class_set) else (255, 255, 255)


def draw_bev(
    ax: Axes,
    xyz: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    class_set: ClassSet = KITTI3,
    boxes: Sequence[Box3D] = (),
    extent: Extent | None = None,
    point_size: float = 1.5,
    height_range: tuple[float, float] | None = None,
    legend: Literal["inside", "outside"] | None = "inside",
    fontsize: float = 8.0,
) -> Extent:
    """Draw the view on ``ax``; returns the extent drawn.

    Points are coloured by ``labels`` when given (object points drawn larger, over the background),
    else by height. ``legend``: the class colours inside the axes, outside to their right, or none.
    """
    pts = _check_xyz(xyz)
    if labels is not None and len(labels) != len(pts):
        raise PerceptionError(f"bird's-eye view: {len(labels)} labels for {len(pts)} points; expected one per point")
    x_min, x_max, y_min, y_max = auto_extent(pts, boxes) if extent is None else check_extent(extent)

    inside = (pts[:, 0] >= x_min) & (pts[:, 0] <= x_max) & (pts[:, 1] >= y_min) & (pts[:, 1] <= y_max)
    shown = pts[inside]
    sizes = np.full(len(shown), point_size)
    if labels is not None:
        ids = np.asarray(labels)[inside]
        colors = class_colors(ids, class_set)
        is_object = ids != class_set.ignore_id
        sizes[is_object] *= 3.0  # objects are few points among many: make them visible
        order = np.argsort(is_object, kind="stable")  # objects drawn over the background
    else:
        lo, hi = height_range if height_range is not None else (None, None)
        colors = value_colors(shown[:, 2], HEIGHT_CMAP, lo, hi)
        order = np.argsort(shown[:, 2], kind="stable")  # higher points on top, as seen from above
    ax.set_facecolor(hex_color(EMPTY_RGB))
    ax.scatter(
        shown[order, 1],
        shown[order, 0],
        s=sizes[order],
        c=colors[order] / 255.0,
        marker=".",
        linewidths=0,
        rasterized=True,
    )

    for box in boxes:
        _draw_box(ax, box, class_set, fontsize)
    _draw_ego(ax)

    ax.set_xlim(y_max, y_min)  # +y (left) on the left of the picture
    ax.set_ylim(x_min, x_max)
    ax.set_aspect("equal")
    ax.set_xlabel("y [m] (left +)", fontsize=fontsize + 1)
    ax.set_ylabel("x [m] (forward +)", fontsize=fontsize + 1)
    ax.tick_params(labelsize=fontsize)
    ax.grid(True, color="white", alpha=0.15, linewidth=0.6)
    if legend is not None:
        present = set() if labels is None else set(np.unique(np.asarray(labels)[inside]).tolist())
        present |= {b.label for b in boxes if 0 <= b.label < len(class_set)}
        handles = [Patch(color=hex_color(class_set.colors[i]), label=class_set.names[i]) for i in sorted(present)]
        if handles and legend == "inside":
            ax.legend(handles=handles, loc="upper right", fontsize=fontsize, framealpha=0.85)
        elif handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=fontsize, frameon=False)
    return (x_min, x_max, y_min, y_max)


def _draw_box(ax: Axes, box: Box3D, class_set: ClassSet, fontsize: float) -> None:
    color = hex_color(box_rgb(box, class_set))
    corners = box.bev_corners()  # (4, 2) x, y; corners 0 and 3 carry the front edge
    ax.add_patch(Polygon(corners[:, ::-1], closed=True, fill=False, edgecolor=color, linewidth=1.6))
    front = (corners[0] + corners[3]) / 2.0
    ax.plot([box.center[1], front[1]], [box.center[0], front[0]], color=color, linewidth=1.6)
    if box.speed >= MOVING_SPEED:  # where it will be in one second, as RViz's velocity arrows show it
        (vx, vy) = box.velocity[:2]
        ax.arrow(box.center[1], box.center[0], vy, vx, color="white", width=0.08, head_width=0.6,
                 length_includes_head=True, zorder=4)  # fmt: skip
    top = corners[np.argmax(corners[:, 0])]  # label just beyond the box's farthest-forward corner
    ax.annotate(
        box_text(box, class_set),
        (top[1], top[0]),
        xytext=(0, 4),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=fontsize,
        color="white",
        bbox={"boxstyle": "round,pad=0.15", "facecolor": color, "edgecolor": "none", "alpha": 0.75},
        annotation_clip=True,
    )


def _draw_ego(ax: Axes) -> None:
    half_l, half_w = EGO_LENGTH / 2, EGO_WIDTH / 2
    body = np.array([[half_l, half_w], [-half_l, half_w], [-half_l, -half_w], [half_l, -half_w]])
    ax.add_patch(Polygon(body[:, ::-1], closed=True, facecolor="white", edgecolor="black", linewidth=0.8, zorder=5))
    nose = np.array([[half_l, 0.0], [half_l - 1.4, half_w * 0.8], [half_l - 1.4, -half_w * 0.8]])
    ax.add_patch(Polygon(nose[:, ::-1], closed=True, facecolor="black", zorder=6))


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """Render a matplotlib figure with Agg (no screen) to an (H, W, 3) uint8 array."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def render_bev(
    xyz: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    class_set: ClassSet = KITTI3,
    boxes: Sequence[Box3D] = (),
    extent: Extent | None = None,
    size_in: float = 8.0,
    dpi: int = 100,
) -> np.ndarray:
    """The bird's-eye view alone as an RGB uint8 array (about ``size_in`` inches on its longer side)."""
    fig = Figure(figsize=(size_in, size_in), dpi=dpi)
    ax = fig.add_axes((0.1, 0.08, 0.86, 0.88))
    draw_bev(ax, xyz, labels=labels, class_set=class_set, boxes=boxes, extent=extent)
    return figure_to_rgb(fig)
