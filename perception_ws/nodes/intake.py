"""Checks of an incoming PointCloud2, cheapest first, each failure with one reason and a clear detail.

A frame is rejected in the subscription callback, before it reaches the worker, so a stream of bad
messages can never displace a good frame that is waiting. The checks read the message's metadata and
view its buffer without copying; only the value checks touch every point, and only once the size is
known to be bounded.

The value checks catch a cloud whose layout is well-formed but wrong (a wrong ``is_bigendian`` flag, a
``point_step`` or field offset that reads the wrong bytes): its coordinates come out as denormal or huge
numbers, which would otherwise pass as phantom points and phantom detections. No LiDAR measures beyond a
kilometre, and no coordinate in metres is below float32's smallest normal number (1.2e-38) unless it is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_ws.calib.sensors import SensorModel
from perception_ws.cloud import XYZ, finite_mask, from_msg
from perception_ws.errors import CloudFormatError, PerceptionError
from perception_ws.projection import RING_FIELDS

#: why a frame was refused, each with what it means (also the keys of the diagnostics counters).
REJECT_REASONS: dict[str, str] = {
    "missing_xyz": "the cloud lacks field x, y or z",
    "empty": "the cloud has no points",
    "too_many_points": "the cloud has more points than sensor.max_points",
    "truncated": "data is shorter than row_step * height",
    "bad_layout": "fields, point_step or row_step are inconsistent (see the detail)",
    "bad_xyz_type": "x, y or z is not a single float32/float64 value",
    "no_finite_points": "every point has a NaN or Inf coordinate",
    "implausible_coordinates": "a coordinate lies beyond any LiDAR's reach (a wrong is_bigendian or point_step?)",
    "denormal_coordinates": "a coordinate is a denormal number (a wrong is_bigendian or point_step?)",
    "ring_out_of_range": "the ring/channel field holds a ring the configured sensor does not have",
}
#: no coordinate may lie further out (metres): 1 km, or 10x the sensor's rated range where that is more.
MAX_COORDINATE_M = 1000.0
#: bytes of a typical LiDAR point on the wire (a Velodyne driver's x y z intensity ring time, aligned).
TYPICAL_POINT_BYTES = 32

_LAYOUT_HINT = "is is_bigendian right, and do point_step and the field offsets match the data?"
#: float32's smallest normal number: a non-zero coordinate below it is a byte-order or layout mix-up.
SMALLEST_NORMAL = float(np.finfo(np.float32).tiny)
#: accepted frames that still deserve a note: the bad points are left out of every stage.
NON_FINITE_POINTS = "non_finite_points"


class RejectedFrameError(PerceptionError):
    """A frame the node does not process; ``reason`` is a key of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Frame:
    """An accepted frame: the message (whose buffer ``points`` views) and when it arrived."""

    msg: Any
    #: structured points, 1-D or organized (height, width), a view of ``msg.data`` where possible.
    points: np.ndarray
    stamp_s: float
    received_s: float
    non_finite: int


def accept_cloud(msg: Any, max_points: int, received_s: float, sensor: SensorModel | None = None) -> Frame:
    """The frame of a PointCloud2, or :class:`RejectedFrameError` with the first problem found; ``sensor``
    (when given) bounds the coordinates and the ring field.
    """
    names = [str(f.name) for f in msg.fields]
    missing = [axis for axis in XYZ if axis not in names]
    if missing:
        raise RejectedFrameError("missing_xyz", f"no field(s) {', '.join(missing)}; the cloud has fields {names}")
    height, width = int(msg.height), int(msg.width)
    count = height * width
    if count == 0:
        raise RejectedFrameError("empty", f"height {height} x width {width} = 0 points")
    if count > max_points:
        raise RejectedFrameError("too_many_points", f"{count} points; sensor.max_points is {max_points}")
    need, have = int(msg.row_step) * height, len(msg.data)
    if have < need:
        raise RejectedFrameError(
            "truncated", f"data has {have} bytes; row_step {msg.row_step} x height {height} = {need}"
        )
    try:
        points = from_msg(msg)
    except CloudFormatError as err:
        raise RejectedFrameError("bad_layout", str(err)) from None
    for axis in XYZ:
        dtype = points.dtype[axis]
        if dtype.kind != "f" or dtype.shape != ():
            raise RejectedFrameError("bad_xyz_type", f"field {axis!r} is {dtype}; expected one float32 or float64")
    finite = int(np.count_nonzero(finite_mask(points)))
    if finite == 0:
        raise RejectedFrameError("no_finite_points", f"all {count} points have NaN or Inf coordinates")
    _check_values(points, sensor)
    stamp = msg.header.stamp
    return Frame(msg, points, int(stamp.sec) + int(stamp.nanosec) * 1e-9, received_s, count - finite)


def transport_warning(max_points: int, segment_bytes: int | None) -> str | None:
    """A warning when a cloud of ``max_points`` typical points would not fit the shared-memory segment of the
    DDS profile (such a cloud is lost in transport, before the node can count it); None when it fits.
    """
    largest = max_points * TYPICAL_POINT_BYTES
    if segment_bytes is None or largest <= segment_bytes:
        return None
    return (
        f"sensor.max_points {max_points} x {TYPICAL_POINT_BYTES} bytes a point = {largest / 2**20:.1f} MiB exceeds "
        f"the Fast DDS shared-memory segment ({segment_bytes / 2**20:.1f} MiB, segment_size in the profile): clouds "
        "that large are lost in transport without being counted; raise segment_size or lower sensor.max_points"
    )


def _check_values(points: np.ndarray, sensor: SensorModel | None) -> None:
    """Reject coordinates no sensor measures and rings the sensor lacks (see the module doc)."""
    limit = MAX_COORDINATE_M if sensor is None else max(MAX_COORDINATE_M, 10.0 * sensor.max_range_m)
    for axis in XYZ:
        size = np.abs(points[axis])  # NaN compares False below; Inf is left to the finite-point count
        far = (size > limit) & (size != np.inf)
        if far.any():
            example = float(points[axis][far].flat[0])
            raise RejectedFrameError(
                "implausible_coordinates",
                f"{np.count_nonzero(far)} points lie beyond {limit:g} m (e.g. {axis} = {example:.3g}); {_LAYOUT_HINT}",
            )
        tiny = (size > 0) & (size < SMALLEST_NORMAL)
        if tiny.any():
            example = float(points[axis][tiny].flat[0])
            raise RejectedFrameError(
                "denormal_coordinates",
                f"{np.count_nonzero(tiny)} points have a denormal {axis} (e.g. {example:.3g}); {_LAYOUT_HINT}",
            )
    names = points.dtype.names or ()
    ring = next((name for name in RING_FIELDS if name in names), None)
    if sensor is None or ring is None or points.dtype[ring].kind not in "iuf" or points.dtype[ring].shape != ():
        return
    values = points[ring]
    values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    rings = len(sensor.ring_to_row)
    if values.size and (values.min() < 0 or values.max() >= rings):
        raise RejectedFrameError(
            "ring_out_of_range",
            f"field {ring!r} holds {values.min():g}..{values.max():g}, but {sensor.name} has rings 0..{rings - 1}; "
            "is sensor.model right?",
        )
