"""Camera-LiDAR fusion (docs/algorithms.md §10), ROS-free: points to pixels, then paint, transfer image labels, draw.

A LiDAR point ``x`` reaches pixel ``(u, v)`` through the extrinsic (LiDAR -> camera frame, e.g. KITTI's
``R0_rect · Tr_velo_to_cam``) and the camera model (e.g. KITTI's ``P2``); see
:class:`~perception_ws.calib.camera.PinholeCamera`. A point is *visible* when it lies in front of the
camera and its pixel ``round(u, v)`` inside the image.

Occlusion (:func:`visible_unoccluded`): the LiDAR sees around things the camera does not (it sits
elsewhere), so a point hidden behind a nearer object can still project onto that object's pixels and
would take its colour or label. A z-buffer settles it: the nearest depth per pixel, then the minimum
of that over a ``window`` x ``window`` neighbourhood (LiDAR points are sparse in the image, a few
pixels apart, so a point behind a surface usually lands *between* the surface's own points); a point
farther than that minimum by more than ``tol_abs_m + tol_rel * nearest`` is occluded. The tolerance
keeps points of one slanted surface (ground, a car's side) from hiding each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import recfunctions
from scipy.ndimage import minimum_filter

from perception_ws.boxes import Box3D
from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.calib.kitti import read_kitti_calib
from perception_ws.errors import CalibrationError, PerceptionError
from perception_ws.labels import ClassSet
from perception_ws.viz.colors import class_colors
from perception_ws.viz.overlay import overlay

#: the PCL / RViz name of a packed colour field: float32 whose bits are 0x00RRGGBB.
RGB_FIELD = "rgb"


@dataclass(frozen=True)
class Occlusion:
    """The z-buffer test of the module doc: ``window`` (odd, pixels) and the depth tolerance."""

    window: int = 5
    tol_abs_m: float = 0.5
    tol_rel: float = 0.1

    def __post_init__(self) -> None:
        if self.window < 1 or self.window % 2 == 0:
            raise PerceptionError(f"occlusion window = {self.window}; expected an odd number of pixels >= 1")
        if not (self.tol_abs_m >= 0 and self.tol_rel >= 0):
            raise PerceptionError(
                f"occlusion tolerance {self.tol_abs_m} m + {self.tol_rel} x depth; expected values >= 0"
            )


@dataclass(frozen=True)
class Projection:
    """Where points land: integer pixel ``col``/``row`` (valid where ``visible``), depth, float ``uv``."""

    uv: np.ndarray
    col: np.ndarray
    row: np.ndarray
    depth: np.ndarray
    visible: np.ndarray


def project_points(xyz: np.ndarray, camera: PinholeCamera, extrinsic: Extrinsic) -> Projection:
    """Points (N, 3) in the LiDAR frame through ``extrinsic`` and ``camera``; non-finite points are not visible."""
    _check_models(camera, extrinsic)
    pts = np.asarray(xyz)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise PerceptionError(f"fusion: points have shape {pts.shape}; expected (N, 3)")
    finite = np.all(np.isfinite(pts), axis=1)
    cam = extrinsic.apply(np.where(finite[:, None], pts, 0.0))
    uv, depth, visible = camera.project(cam)
    visible &= finite
    pix = np.round(np.where(visible[:, None], uv, 0.0)).astype(np.int64)
    # round() of u just below width - 0.5 can give width; clamp (the point is inside by project())
    col = np.clip(pix[:, 0], 0, camera.width - 1)
    row = np.clip(pix[:, 1], 0, camera.height - 1)
    return Projection(uv, col, row, np.where(finite, depth, np.nan), visible)


def visible_unoccluded(proj: Projection, height: int, width: int, occlusion: Occlusion) -> np.ndarray:
    """``proj.visible`` without the points the z-buffer of the module doc finds hidden."""
    seen = np.flatnonzero(proj.visible)
    flat = proj.row[seen] * width + proj.col[seen]
    depth = proj.depth[seen]
    zbuf = np.full(height * width, np.inf)
    np.minimum.at(zbuf, flat, depth)
    nearest = minimum_filter(zbuf.reshape(height, width), size=occlusion.window, mode="constant", cval=np.inf)
    near = nearest.reshape(-1)[flat]
    hidden = depth > near + occlusion.tol_abs_m + occlusion.tol_rel * near
    out = proj.visible.copy()
    out[seen[hidden]] = False
    return out


def _check_models(camera: PinholeCamera, extrinsic: Extrinsic) -> None:
    if not isinstance(camera, PinholeCamera):
        raise CalibrationError(f"fusion: camera is a {type(camera).__name__}; expected a PinholeCamera")
    if not isinstance(extrinsic, Extrinsic):
        raise CalibrationError(f"fusion: extrinsic is a {type(extrinsic).__name__}; expected an Extrinsic")


def _check_image(image: np.ndarray, camera: PinholeCamera, what: str, channels: int | None) -> np.ndarray:
    img = np.asarray(image)
    shape = (camera.height, camera.width) if channels is None else (camera.height, camera.width, channels)
    if img.shape != shape:
        raise CalibrationError(
            f"fusion: {what} has shape {img.shape}; the camera is calibrated for {camera.width}x{camera.height}, "
            f"expected {shape}"
        )
    return img


def paint_points(
    xyz: np.ndarray,
    image: np.ndarray,
    camera: PinholeCamera,
    extrinsic: Extrinsic,
    *,
    occlusion: Occlusion | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb (N, 3) uint8, visible (N,) bool)``: each visible point takes the colour of its pixel; others 0.

    ``image`` is RGB uint8 (H, W, 3) of the camera's size. With ``occlusion`` (off by default: colour is
    cheap to get wrong only at depth edges) hidden points are left unpainted too.
    """
    _check_models(camera, extrinsic)
    img = _check_image(image, camera, "image", 3)
    if img.dtype != np.uint8:
        raise PerceptionError(f"fusion: image has dtype {img.dtype}; expected uint8 RGB")
    proj = project_points(xyz, camera, extrinsic)
    visible = proj.visible if occlusion is None else visible_unoccluded(proj, camera.height, camera.width, occlusion)
    rgb = np.zeros((len(visible), 3), dtype=np.uint8)
    rgb[visible] = img[proj.row[visible], proj.col[visible]]
    return rgb, visible


def transfer_labels(
    xyz: np.ndarray,
    mask: np.ndarray,
    camera: PinholeCamera,
    extrinsic: Extrinsic,
    occlusion: Occlusion | bool = True,
) -> np.ndarray:
    """(N,) int64 class ids from an image label mask (H, W) of class ids; 0 where a point is not visible
    (or hidden, with ``occlusion``: True for the default :class:`Occlusion`, False to skip the test).
    """
    _check_models(camera, extrinsic)
    m = _check_image(mask, camera, "label mask", None)
    if m.dtype.kind not in "iu":
        raise PerceptionError(f"fusion: label mask has dtype {m.dtype}; expected integer class ids")
    proj = project_points(xyz, camera, extrinsic)
    test = Occlusion() if occlusion is True else occlusion or None
    visible = proj.visible if test is None else visible_unoccluded(proj, camera.height, camera.width, test)
    labels = np.zeros(len(visible), dtype=np.int64)
    labels[visible] = m[proj.row[visible], proj.col[visible]]
    return labels


def box_pixel_corners(box: Box3D, camera: PinholeCamera, extrinsic: Extrinsic) -> np.ndarray | None:
    """The 8 corners of ``box`` (LiDAR frame) in pixels (8, 2), or None when a corner is not in front of the
    camera (its edges cannot be drawn as straight lines). Corners may lie outside the image (lines are clipped).
    """
    proj = project_points(box.corners(), camera, extrinsic)
    if not np.all(np.isfinite(proj.uv)) or not np.all(proj.depth > 0.1):
        return None
    in_view = np.any(proj.visible)
    return proj.uv if in_view else None


def overlay_image(
    image: np.ndarray,
    xyz: np.ndarray,
    labels: np.ndarray | None,
    boxes: Sequence[Box3D],
    camera: PinholeCamera,
    extrinsic: Extrinsic,
    *,
    class_set: ClassSet | None = None,
    radius: int = 1,
    max_depth: float | None = 80.0,
    draw_background: bool = False,
) -> np.ndarray:
    """RGB uint8 copy of ``image`` with the points drawn (class colours of ``labels`` in ``class_set``, else
    by depth) and the boxes' projected edges (class colours, white without a class set). With labels, only
    points of the object classes are drawn unless ``draw_background``.
    """
    _check_models(camera, extrinsic)
    img = _check_image(image, camera, "image", 3)
    proj = project_points(xyz, camera, extrinsic)
    depth = np.where(proj.visible, proj.depth, -1.0)  # draw_points skips depth <= 0
    colors = None
    if labels is not None:
        if class_set is None:
            raise PerceptionError("fusion: labels given without a class set to colour them")
        ids = np.asarray(labels).reshape(-1)
        if ids.shape != (len(depth),):
            raise PerceptionError(f"fusion: {ids.size} labels for {len(depth)} points; expected one per point")
        colors = class_colors(ids, class_set)
        if not draw_background:
            # the background class would grey out the whole picture; the labelled objects are what to see
            depth = np.where(np.isin(ids, class_set.object_ids), depth, -1.0)
    corners: list[np.ndarray] = []
    box_colors: list[tuple[int, int, int]] = []
    for box in boxes:
        pixels = box_pixel_corners(box, camera, extrinsic)
        if pixels is None:
            continue
        corners.append(pixels)
        color = (255, 255, 255)
        if class_set is not None and 0 <= box.label < len(class_set):
            r, g, b = (int(c) for c in class_set.colorize(np.array([box.label]))[0])
            color = (r, g, b)
        box_colors.append(color)
    return overlay(
        img,
        np.where(proj.visible[:, None], proj.uv, np.nan),
        depth,
        colors=colors,
        radius=radius,
        max_depth=max_depth,
        box_corners=corners,
        box_colors=box_colors,
    )


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N,) float32 whose bits are 0x00RRGGBB (the PCL / RViz ``rgb`` field)."""
    c = np.asarray(rgb, dtype=np.uint32)
    if c.ndim != 2 or c.shape[1] != 3:
        raise PerceptionError(f"fusion: colours have shape {c.shape}; expected (N, 3)")
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """The inverse of :func:`pack_rgb`."""
    bits = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=-1).astype(np.uint8)


def with_field(points: np.ndarray, name: str, values: np.ndarray) -> np.ndarray:
    """A copy of structured ``points`` (1-D or organized) with field ``name`` set to ``values`` (flat, in
    row-major order), appended at the end; a field of that name the input had is replaced.
    """
    flat = points.reshape(-1)
    if name in (points.dtype.names or ()):
        flat = recfunctions.drop_fields(flat, name, usemask=False)
    out = recfunctions.append_fields(flat, name, np.asarray(values).reshape(-1), usemask=False)
    return np.asarray(out).reshape(points.shape)


def load_extrinsic(matrix: Sequence[float], kitti_calib: str | Path = "") -> Extrinsic:
    """The LiDAR -> camera transform from 16 (4x4) or 12 (3x4) row-major values, or from a KITTI calibration
    file (``R0_rect · Tr_velo_to_cam``); exactly one of the two must be given.
    """
    values = list(matrix)
    if values and kitti_calib:
        raise CalibrationError(
            "LiDAR -> camera transform given twice (a matrix and a KITTI calibration file); expected one of them"
        )
    if kitti_calib:
        return read_kitti_calib(kitti_calib).extrinsic()
    if len(values) not in (12, 16):
        raise CalibrationError(
            f"LiDAR -> camera transform has {len(values)} values; expected 16 (4x4) or 12 (3x4) row-major, "
            "or a KITTI calibration file (or, in the fusion node, calibration.from_tf: true to read /tf_static)"
        )
    return Extrinsic(np.asarray(values, dtype=np.float64).reshape(-1, 4), "LiDAR -> camera matrix parameter")
