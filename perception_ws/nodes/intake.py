"""Checks of an incoming PointCloud2, cheapest first, each failure with one reason and a clear detail.

A frame is rejected in the subscription callback, before it reaches the worker, so a stream of bad
messages can never displace a good frame that is waiting. The checks read the message's metadata and
view its buffer without copying; only the finite-coordinate check touches every point, and only once
the size is known to be bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_ws.cloud import XYZ, finite_mask, from_msg
from perception_ws.errors import CloudFormatError, PerceptionError

#: why a frame was refused, each with what it means (also the keys of the diagnostics counters).
REJECT_REASONS: dict[str, str] = {
    "missing_xyz": "the cloud lacks field x, y or z",
    "empty": "the cloud has no points",
    "too_many_points": "the cloud has more points than sensor.max_points",
    "truncated": "data is shorter than row_step * height",
    "bad_layout": "fields, point_step or row_step are inconsistent (see the detail)",
    "bad_xyz_type": "x, y or z is not a single float32/float64 value",
    "no_finite_points": "every point has a NaN or Inf coordinate",
}
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


def accept_cloud(msg: Any, max_points: int, received_s: float) -> Frame:
    """The frame of a PointCloud2, or :class:`RejectedFrameError` with the first problem found."""
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
    stamp = msg.header.stamp
    return Frame(msg, points, int(stamp.sec) + int(stamp.nanosec) * 1e-9, received_s, count - finite)
