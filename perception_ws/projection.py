"""Range-image (spherical) projection of a point cloud, and pixel labels back to every point (docs/algorithms.md §1).

:func:`project` maps each point to one pixel of an H x W image:

* row: from the cloud's ``ring``/``channel`` field through the sensor's ring numbering when there is
  one; else the sensor's nearest beam (beam elevations and, for the HDL-64E, the heights of the beam
  origins; see :mod:`perception_ws.kernels.projection`); else, when the requested height differs
  from the sensor's beam count, uniform elevation bins over the sensor's vertical field of view.
  ``row_source`` forces one of these, or ``"order"``: rings from the storage order of a cloud kept
  ring by ring (KITTI ``.bin`` files, top ring first), which stays exact on motion-compensated scans
  (KITTI odometry / SemanticKITTI) where elevations no longer match the beam table exactly;
* column: azimuth ``phi = atan2(y, x)``; column 0 at the LEFT edge of the field of view (+45 deg for
  the front 90 deg, as in KITTI; +180 deg for a full turn), columns growing clockwise seen from above;
  ``width`` equal bins. This reproduces the columns of SqueezeSeg's KITTI frames;
* pixel conflicts: the nearest point (smallest range) wins.

The image has the channels :data:`CHANNELS`; empty pixels are all zero. The :class:`Projection` keeps
the pixel of every point, so per-pixel labels or probabilities flow back to all input points.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from perception_ws.calib.sensors import SensorModel, get_sensor
from perception_ws.cloud import as_structured
from perception_ws.errors import CloudFormatError, ProjectionError, SensorError
from perception_ws.kernels.nearest_owner import nearest_owners
from perception_ws.kernels.projection import (
    ColumnRule,
    Projected,
    RowRule,
    gather_image_fast,
    gather_image_reference,
    project_fast,
    project_reference,
)

CHANNELS = ("x", "y", "z", "intensity", "range", "mask")
RowSource = Literal["auto", "ring", "table", "uniform", "order"]
ROW_SOURCES: tuple[RowSource, ...] = ("auto", "ring", "table", "uniform", "order")
#: the fields tried, in order, for a point's ring (ROS drivers: ``ring``; Autoware: ``channel``).
RING_FIELDS = ("ring", "channel")
Backend = Literal["numba", "numpy"]
#: the narrowest field of view (the fast column search assumes a view much wider than 1e-6 rad).
MIN_FOV_DEG = 0.01


class ImageSize:
    """``height`` and ``width`` of an ``image`` whose first two axes are rows and columns (host or device)."""

    image: Any

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, eq=False)
class Projection(ImageSize):
    """A range image and the pixel of every input point."""

    #: (H, W, 6) float32: x, y, z, intensity, range, mask (see :data:`CHANNELS`); empty pixels 0.
    image: np.ndarray
    #: (N,) int32 row / column of every point, -1 when it is not in view (outside the field of view,
    #: or NaN/Inf coordinates, or zero range).
    rows: np.ndarray
    cols: np.ndarray
    #: (H, W) int32 index of the point that won each pixel (the nearest one), -1 where empty.
    owner: np.ndarray
    #: (N,) bool: rows/cols are valid.
    in_view: np.ndarray
    sensor: SensorModel
    #: (left, right) edges of the field of view in degrees (column 0 starts at ``left``).
    fov: tuple[float, float]
    #: where the rows came from: "ring", "table", "uniform" or "order".
    row_source: str
    #: the input points as a flat structured array (no copy of the caller's data where possible).
    points: np.ndarray

    @functools.cached_property
    def xyz(self) -> np.ndarray:
        """(N, 3) float32 coordinates of the input points."""
        return np.column_stack([self.points[axis] for axis in ("x", "y", "z")]).astype(np.float32, copy=False)

    @functools.cached_property
    def source_pixels(self) -> np.ndarray:
        """(N,) int64 flat pixel (row * W + col) each point takes its label from; -1 when not in view.

        A point that won its pixel reads that pixel. A point hidden behind a nearer one reads the pixel
        of the nearest pixel owner in 3D: the winner of its own pixel can be far away in depth (a pole in
        front of a wall), whereas the nearest owner in 3D is almost always a point of the same surface,
        usually in a neighbouring pixel. This is the faithful choice; the search (kernels/nearest_owner.py)
        looks only where the image can hold a closer owner, with the same result as a k-d tree over all
        owners (its reference) in about half the time or less.
        """
        n = len(self.rows)
        source = np.full(n, -1, dtype=np.int64)
        seen = np.flatnonzero(self.in_view)
        pixel = self.rows[seen].astype(np.int64) * self.width + self.cols[seen]
        source[seen] = pixel
        owner = self.owner.reshape(-1)
        is_hidden = owner[pixel] != seen
        if is_hidden.any():
            hidden = seen[is_hidden]
            left, right = self.fov
            source[hidden] = nearest_owners(self.xyz, hidden, pixel[is_hidden], self.owner, math.radians(left - right))
        return source

    def labels_to_points(self, pixel_labels: np.ndarray, fill: int = 0) -> np.ndarray:
        """(N,) label of every input point from an (H, W) integer label image (``fill`` when not in view)."""
        labels = np.asarray(pixel_labels)
        if labels.shape != (self.height, self.width) or labels.dtype.kind not in "biu":
            raise ProjectionError(
                f"pixel labels of shape {labels.shape} and dtype {labels.dtype}: expected an integer array of "
                f"shape ({self.height}, {self.width})"
            )
        return self._gather(labels.reshape(-1), fill)

    def pixel_values_to_points(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(N, ...) float values of every point from an (H, W, ...) map, e.g. class probabilities."""
        array = np.asarray(values)
        if array.shape[:2] != (self.height, self.width) or array.dtype.kind not in "biuf":
            raise ProjectionError(
                f"pixel values of shape {array.shape} and dtype {array.dtype}: expected a real array of shape "
                f"({self.height}, {self.width}, ...)"
            )
        flat = array.reshape(self.height * self.width, *array.shape[2:])
        return self._gather(flat.astype(np.result_type(flat.dtype, np.float32), copy=False), fill)

    def _gather(self, flat: np.ndarray, fill: float) -> np.ndarray:
        source = self.source_pixels
        # widen the dtype if the fill value does not fit it (uint8 labels, fill -1 -> int16)
        dtype = np.result_type(flat.dtype, np.min_scalar_type(fill))
        out = np.full((len(source), *flat.shape[1:]), fill, dtype=dtype)
        seen = source >= 0
        out[seen] = flat[source[seen]]
        return out


def project(
    points: Any,
    sensor: SensorModel | str | None = None,
    fov_deg: float | tuple[float, float] = 90.0,
    width: int = 512,
    height: int | None = None,
    ring_field: str | Sequence[str] = RING_FIELDS,
    row_source: RowSource = "auto",
    backend: Backend = "numba",
) -> Projection:
    """Project a cloud into a range image (see the module doc for the rows, columns and conflicts).

    ``points``: a :class:`~perception_ws.scan.Scan`, a structured array with x, y, z[, intensity][, ring],
    or an (N, 3) / (N, 4) array. ``sensor``: a model or a built-in name; None takes the Scan's sensor.
    ``fov_deg``: a width centred on the x axis (90 = the front 90 deg, 360 = a full turn), or
    ``(left_deg, right_deg)`` edges with left > right (e.g. (180, 0) = the left half). ``height``:
    None = the sensor's beam count. ``backend``: "numba" (fast) or "numpy" (the reference; identical
    results). Raises :class:`ProjectionError`, :class:`SensorError` or :class:`CloudFormatError`.
    """
    inputs = prepare_projection(points, sensor, fov_deg, width, height, ring_field, row_source)
    if backend not in ("numba", "numpy"):
        raise ProjectionError(f"backend {backend!r} is unknown; expected 'numba' or 'numpy'")
    x, y, z, intensity = inputs.x, inputs.y, inputs.z, inputs.intensity
    if backend == "numba":
        result: Projected = project_fast(x, y, z, inputs.rows, inputs.columns, inputs.height)
        image = gather_image_fast(result.owner, x, y, z, intensity, result.ranges)
    else:
        result = project_reference(x, y, z, inputs.rows, inputs.columns, inputs.height)
        image = gather_image_reference(result.owner, x, y, z, intensity, result.ranges)
    return Projection(
        image,
        result.rows,
        result.cols,
        result.owner,
        result.rows >= 0,
        inputs.sensor,
        inputs.fov,
        inputs.row_source,
        inputs.cloud,
    )


@dataclass(frozen=True, eq=False)
class ProjectionInputs:
    """A cloud checked against the projection settings, with the rules that place its points (host arrays).

    Shared by :func:`project` and the device projection (:mod:`perception_ws.device_projection`), so both
    accept and refuse the same inputs with the same messages.
    """

    #: the input points as a flat structured array.
    cloud: np.ndarray
    #: coordinates as stored (float32 views of the cloud, or float64 copies of other numeric fields).
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    intensity: np.ndarray | None
    sensor: SensorModel
    #: (left, right) edges of the field of view in degrees.
    fov: tuple[float, float]
    #: where the rows come from: "ring", "table", "uniform" or "order".
    row_source: str
    rows: RowRule
    columns: ColumnRule
    height: int


def prepare_projection(
    points: Any,
    sensor: SensorModel | str | None = None,
    fov_deg: float | tuple[float, float] = 90.0,
    width: int = 512,
    height: int | None = None,
    ring_field: str | Sequence[str] = RING_FIELDS,
    row_source: RowSource = "auto",
) -> ProjectionInputs:
    """Validate :func:`project`'s arguments and build its row and column rules (same arguments and errors)."""
    model = _resolve_sensor(points, sensor)
    left, right = fov_bounds(fov_deg)
    width = _positive_int(width, "width")
    rows_out = model.height if height is None else _positive_int(height, "height")
    if row_source not in ROW_SOURCES:
        raise ProjectionError(f"row_source {row_source!r} is unknown; expected one of {', '.join(ROW_SOURCES)}")
    cloud = as_structured(points).reshape(-1)
    x, y, z = (_coordinate(cloud, axis) for axis in ("x", "y", "z"))
    names = cloud.dtype.names or ()
    intensity = _coordinate(cloud, "intensity") if "intensity" in names else None
    source, rule = _row_rule(cloud, model, rows_out, ring_field, row_source)
    right_rad = math.radians(right)
    right_rad = (right_rad + math.pi) % (2.0 * math.pi) - math.pi
    columns = ColumnRule(right_rad, math.radians(left - right), width)
    return ProjectionInputs(cloud, x, y, z, intensity, model, (left, right), source, rule, columns, rows_out)


def fov_bounds(fov_deg: float | tuple[float, float]) -> tuple[float, float]:
    """(left, right) edges in degrees of a field of view given as a width or as edges (validated)."""
    if isinstance(fov_deg, (tuple, list)):
        if len(fov_deg) != 2 or not all(_is_real(v) for v in fov_deg):
            raise ProjectionError(f"fov_deg {fov_deg!r}: expected a width in degrees or (left_deg, right_deg)")
        left, right = float(fov_deg[0]), float(fov_deg[1])
        if not MIN_FOV_DEG <= left - right <= 360.0:
            raise ProjectionError(
                f"fov_deg {fov_deg!r}: expected left > right, {MIN_FOV_DEG} to 360 degrees apart (e.g. (45, -45) "
                "for the front 90 degrees)"
            )
        return left, right
    if not _is_real(fov_deg) or not MIN_FOV_DEG <= float(fov_deg) <= 360.0:
        raise ProjectionError(
            f"fov_deg {fov_deg!r}: expected a width in degrees in [{MIN_FOV_DEG}, 360] or (left_deg, right_deg)"
        )
    half = float(fov_deg) / 2.0
    return half, -half


def rings_from_scan_order(points: Any) -> np.ndarray:
    """(N,) ring index of each point of a cloud stored ring by ring, as KITTI ``.bin`` files are.

    Within one ring the azimuth sweeps once around; a new ring starts where the azimuth, taken in
    [0, 360), jumps back by more than half a turn. KITTI starts every ring near the x axis and
    stores the top ring first. Points with NaN coordinates continue the current ring.
    """
    cloud = as_structured(points).reshape(-1)
    with np.errstate(invalid="ignore"):
        azimuth = np.mod(np.arctan2(_coordinate(cloud, "y"), _coordinate(cloud, "x")), 2.0 * np.pi)
        starts = np.diff(azimuth) < -np.pi
    rings = np.zeros(len(cloud), dtype=np.int32)
    np.cumsum(starts, out=rings[1:])
    return rings


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(image - mean) / std`` per channel (float32 copy), empty pixels included (docs/algorithms.md §1).

    ``mean``/``std`` cover the first channels (e.g. 5: x, y, z, intensity, range); later channels, such
    as the 0/1 mask, are copied unchanged.
    """
    array = np.asarray(image)
    m = np.asarray(mean, dtype=np.float32).reshape(-1)
    s = np.asarray(std, dtype=np.float32).reshape(-1)
    if array.ndim < 1 or len(m) != len(s) or not 0 < len(m) <= array.shape[-1]:
        raise ProjectionError(
            f"normalize: image of shape {array.shape} with {len(m)} means and {len(s)} stds; expected as many "
            "means as stds, at most one per image channel (last axis)"
        )
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ProjectionError(f"normalize: means must be finite and stds positive; got {m.tolist()}, {s.tolist()}")
    out = array.astype(np.float32, copy=True)
    out[..., : len(m)] = (out[..., : len(m)] - m) / s
    return out


# -- helpers -----------------------------------------------------------------------------------


def _resolve_sensor(points: Any, sensor: SensorModel | str | None) -> SensorModel:
    if isinstance(sensor, SensorModel):
        return sensor
    if sensor is None:
        sensor = getattr(points, "sensor", None)
        if not sensor:
            raise SensorError("project: no sensor given and the points carry none; pass a SensorModel or a name")
    if not isinstance(sensor, str):
        raise SensorError(f"project: sensor must be a SensorModel or a name, got {type(sensor).__name__}")
    return get_sensor(sensor)


def _row_rule(
    cloud: np.ndarray, sensor: SensorModel, height: int, ring_field: str | Sequence[str], row_source: RowSource
) -> tuple[str, RowRule]:
    fields = (ring_field,) if isinstance(ring_field, str) else tuple(ring_field)
    present = next((f for f in fields if f in (cloud.dtype.names or ())), None)
    source: str = row_source
    if row_source == "auto":
        source = ("ring" if present else "table") if height == sensor.height else "uniform"
    if source != "uniform" and height != sensor.height:
        raise ProjectionError(
            f"row_source {source!r} gives one row per beam ({sensor.height} for {sensor.name}) but height={height} "
            "was asked for; leave height unset or use row_source='uniform'"
        )
    if source == "ring":
        if present is None:
            raise ProjectionError(
                f"row_source 'ring': the cloud has no field {' / '.join(fields)}; "
                f"fields: {list(cloud.dtype.names or ())}"
            )
        return source, RowRule.given(_rows_from_ring(cloud[present], present, sensor))
    if source == "order":
        rings = rings_from_scan_order(cloud)
        found = int(rings[-1]) + 1 if len(rings) else sensor.height
        if found != sensor.height:
            raise CloudFormatError(
                f"row_source 'order': the azimuth wraps around {found - 1} times, giving {found} rings; expected "
                f"{sensor.height} for {sensor.name} (is the cloud stored ring by ring, like a KITTI .bin?)"
            )
        return source, RowRule.given(rings)
    if source == "table":
        return source, table_rule(sensor)
    top, bottom = sensor.vertical_fov_deg
    return source, RowRule.uniform(math.radians(top), math.radians(bottom), height)


@functools.lru_cache(maxsize=32)
def table_rule(sensor: SensorModel) -> RowRule:
    """The beam-table rule of a sensor (models are immutable; the rule costs a pass over beam pairs)."""
    return RowRule.table(np.radians(sensor.elevations_deg), sensor.beam_heights_m)


def _rows_from_ring(ring: np.ndarray, name: str, sensor: SensorModel) -> np.ndarray:
    values = np.asarray(ring)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise CloudFormatError(f"ring field {name!r} holds non-integer values; expected ring numbers")
    elif values.dtype.kind not in "iub":
        raise CloudFormatError(f"ring field {name!r} has dtype {values.dtype}; expected integers")
    table = sensor.ring_to_row
    if len(values) and (values.min() < 0 or values.max() >= len(table)):
        raise SensorError(
            f"ring field {name!r} holds values {values.min():g}..{values.max():g} but {sensor.name} has "
            f"{len(table)} rings (0..{len(table) - 1}); is this the right sensor?"
        )
    return table[values.astype(np.intp)]


def _coordinate(cloud: np.ndarray, name: str) -> np.ndarray:
    values = cloud[name]
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        raise CloudFormatError(
            f"field {name!r} has dtype {values.dtype} and shape {values.shape[1:]}; expected a number"
        )
    return values if values.dtype.kind == "f" else values.astype(np.float64)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ProjectionError(f"{name} {value!r}: expected a positive integer")
    return int(value)


def _is_real(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
    )


def range_image(points: np.ndarray, pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 6) float32 x, y, z, intensity, range, mask of points with known pixels (one per pixel)."""
    image = np.zeros((height, width, 6), dtype=np.float32)
    rows, cols = pixels[:, 0], pixels[:, 1]
    names = points.dtype.names or ()
    for channel, field in enumerate(("x", "y", "z")):
        image[rows, cols, channel] = points[field]
    if "intensity" in names:
        image[rows, cols, 3] = points["intensity"]
    image[rows, cols, 4] = np.sqrt(image[rows, cols, 0] ** 2 + image[rows, cols, 1] ** 2 + image[rows, cols, 2] ** 2)
    image[rows, cols, 5] = 1.0
    return image
