"""LiDAR points and boxes drawn on a camera image.

The projection (points to pixels) belongs to the calibration code; this module takes its output,
pixel coordinates ``uv`` and depths, so it works with any camera model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from perception_ws.errors import PerceptionError
from perception_ws.viz.colors import DEPTH_CMAP, value_colors

#: the 12 edges of a box from Box3D.corners() order (bottom face 0-3, top face 4-7), then a cross on the
#: front face (corners 0, 3, 4, 7 are at +length/2) so the heading shows.
BOX_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7), (0, 7), (3, 4),
)  # fmt: skip


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise PerceptionError(f"overlay: expected an RGB uint8 image (H, W, 3), got {img.dtype} {img.shape}")
    return img


def draw_points(
    image: np.ndarray,
    uv: np.ndarray,
    depth: np.ndarray,
    *,
    colors: np.ndarray | None = None,
    radius: int = 1,
    max_depth: float | None = None,
    alpha: float = 1.0,
) -> np.ndarray:
    """A copy of ``image`` with every point in front of the camera drawn as a (2r+1)² square.

    Colours: ``colors`` (N, 3) uint8 if given (e.g. class colours), else log depth (bright = near), blended
    over the image with opacity ``alpha``. Where squares overlap the nearer point wins, as in the
    camera's own view.
    """
    img = _check_image(image)
    pix = np.asarray(uv, dtype=np.float64)
    d = np.asarray(depth, dtype=np.float64).reshape(-1)
    if pix.ndim != 2 or pix.shape[1] != 2 or len(pix) != len(d):
        raise PerceptionError(f"overlay: expected uv (N, 2) and depth (N,), got {pix.shape} and {d.shape}")
    if colors is not None and np.shape(colors) != (len(d), 3):
        raise PerceptionError(f"overlay: colors must be (N, 3) = ({len(d)}, 3), got {np.shape(colors)}")
    if radius < 0:
        raise PerceptionError(f"overlay: radius must be >= 0, got {radius}")
    if not 0.0 <= alpha <= 1.0:
        raise PerceptionError(f"overlay: alpha must be in 0..1, got {alpha}")
    h, w = img.shape[:2]
    # Points behind the camera may come with NaN pixels: park them off-image before rounding.
    finite = np.all(np.isfinite(pix), axis=1) & np.isfinite(d)
    u, v = (np.round(np.where(finite, pix[:, i], -1.0)).astype(np.int64) for i in (0, 1))
    seen = finite & (d > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    if max_depth is not None:
        seen &= d <= max_depth
    if colors is None:
        # Log depth: most points are near, and a linear scale would give them all the same colour.
        top = None if max_depth is None else float(np.log(max_depth))
        rgb = value_colors(np.log(d[seen]), DEPTH_CMAP, None, top)
    else:
        rgb = np.asarray(colors, dtype=np.uint8)[seen]
    u, v, d = u[seen], v[seen], d[seen]

    # Every pixel of every square at once, then keep the nearest point per pixel (a z-buffer).
    offsets = np.arange(-radius, radius + 1)
    du, dv = (a.reshape(-1) for a in np.meshgrid(offsets, offsets))
    uu, vv = (u[:, None] + du[None, :]).reshape(-1), (v[:, None] + dv[None, :]).reshape(-1)
    owner = np.repeat(np.arange(len(d)), len(du))
    ok = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
    flat, owner = vv[ok] * w + uu[ok], owner[ok]
    order = np.lexsort((d[owner], flat))
    first = order[np.unique(flat[order], return_index=True)[1]]
    out = img.copy()
    pixels = out.reshape(-1, 3)
    under = pixels[flat[first]].astype(np.float32)
    pixels[flat[first]] = np.round(alpha * rgb[owner[first]] + (1.0 - alpha) * under).astype(np.uint8)
    return out


def draw_boxes(
    image: np.ndarray,
    *,
    boxes2d: np.ndarray | Sequence[Sequence[float]] = (),
    box_corners: Sequence[np.ndarray] = (),
    colors: Sequence[tuple[int, int, int]] | None = None,
    width: int = 2,
) -> np.ndarray:
    """A copy of ``image`` with 2D boxes (x1, y1, x2, y2) and projected 3D boxes ((8, 2) pixel corners).

    ``colors``: one RGB per box, 2D boxes first then 3D; default white.
    """
    img = _check_image(image)
    rects = np.asarray(boxes2d, dtype=np.float64).reshape(-1, 4) if len(boxes2d) else np.zeros((0, 4))
    cubes = [np.asarray(c, dtype=np.float64) for c in box_corners]
    for i, c in enumerate(cubes):
        if c.shape != (8, 2) or not np.all(np.isfinite(c)):
            raise PerceptionError(f"overlay: box_corners[{i}] must be 8 finite pixel corners (8, 2), got {c.shape}")
    n = len(rects) + len(cubes)
    palette = [(255, 255, 255)] * n if colors is None else [tuple(int(v) for v in c) for c in colors]
    if len(palette) != n:
        raise PerceptionError(f"overlay: {len(palette)} colours for {n} boxes; expected one per box")
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for rect, color in zip(rects, palette[: len(rects)], strict=True):
        x1, y1, x2, y2 = rect
        draw.rectangle((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), outline=color, width=width)
    for corners, color in zip(cubes, palette[len(rects) :], strict=True):
        for a, b in BOX_EDGES:
            draw.line((*corners[a], *corners[b]), fill=color, width=width)
    return np.asarray(pil)


def overlay(
    image: np.ndarray,
    uv: np.ndarray,
    depth: np.ndarray,
    *,
    colors: np.ndarray | None = None,
    radius: int = 1,
    max_depth: float | None = None,
    alpha: float = 1.0,
    boxes2d: np.ndarray | Sequence[Sequence[float]] = (),
    box_corners: Sequence[np.ndarray] = (),
    box_colors: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """Points (see :func:`draw_points`), then boxes on top (see :func:`draw_boxes`)."""
    painted = draw_points(image, uv, depth, colors=colors, radius=radius, max_depth=max_depth, alpha=alpha)
    return draw_boxes(painted, boxes2d=boxes2d, box_corners=box_corners, colors=box_colors)
