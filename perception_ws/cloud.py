"""Point clouds as numpy structured arrays, and their conversion to and from ``sensor_msgs/PointCloud2``.

A cloud is a structured array with at least the fields ``x``, ``y``, ``z`` (1-D, or 2-D ``(height,
width)`` for organized clouds). :func:`from_msg` turns a PointCloud2 — from rclpy, or deserialized by
``rosbags`` — into such an array *without copying* where the message's buffer allows it: the array is
a strided view of ``msg.data``, one item per point, padding bytes skipped by the dtype's offsets.
:func:`pack` does the reverse in one numpy copy; :func:`to_msg` wraps that in an rclpy message.

This module never imports ROS at import time: only :func:`to_msg` needs ``sensor_msgs``.
"""

from __future__ import annotations

import array
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from perception_ws.errors import CloudFormatError

if TYPE_CHECKING:
    from sensor_msgs.msg import PointCloud2

#: sensor_msgs/PointField datatype codes and the numpy scalar type each one stands for.
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.int8),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int16),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int32),
    6: np.dtype(np.uint32),
    7: np.dtype(np.float32),
    8: np.dtype(np.float64),
}
_CODE_OF = {(dt.kind, dt.itemsize): code for code, dt in POINTFIELD_DTYPES.items()}
_NAMES_OF_CODES = "INT8=1, UINT8=2, INT16=3, UINT16=4, INT32=5, UINT32=6, FLOAT32=7, FLOAT64=8"
XYZ = ("x", "y", "z")


class FieldLike(Protocol):
    """What a PointField looks like (rclpy's, rosbags', or :class:`FieldSpec`)."""

    name: str
    offset: int
    datatype: int
    count: int


@dataclass(frozen=True)
class FieldSpec:
    """One PointField: ``count`` values of type ``datatype`` (1..8) at byte ``offset`` of each point."""

    name: str
    offset: int
    datatype: int
    count: int


@dataclass(frozen=True)
class PackedCloud:
    """Everything a PointCloud2 carries besides its header, as plain Python and numpy values."""

    fields: tuple[FieldSpec, ...]
    height: int
    width: int
    point_step: int
    row_step: int
    is_dense: bool
    #: the points' bytes, little-endian, ``row_step * height`` long (1-D contiguous uint8).
    data: np.ndarray

    def message_fields(self, point_field: Callable[..., Any]) -> dict[str, Any]:
        """A PointCloud2's keyword arguments but header and data, ``point_field`` building each PointField
        (rclpy's class or a rosbags typestore's: the two message families take the same names).
        """
        return {
            "height": self.height,
            "width": self.width,
            "fields": [
                point_field(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in self.fields
            ],
            "is_bigendian": False,
            "point_step": self.point_step,
            "row_step": self.row_step,
            "is_dense": self.is_dense,
        }


def fields_to_dtype(fields: Iterable[FieldLike], point_step: int, is_bigendian: bool = False) -> np.dtype:
    """The structured dtype of one point described by PointFields; its itemsize is ``point_step``.

    A field with ``count > 1`` becomes a sub-array; bytes no field covers stay padding. Raises
    :class:`CloudFormatError` for unknown datatypes, non-positive counts, fields outside the point,
    overlapping or duplicate fields.
    """
    specs = [_spec_of(f) for f in fields]
    point_step = int(point_step)
    if point_step < 0:
        raise CloudFormatError(f"PointCloud2: point_step is {point_step}, expected a non-negative byte count")
    order: Literal["<", ">"] = ">" if is_bigendian else "<"
    names: list[str] = []
    formats: list[Any] = []
    offsets: list[int] = []
    ends: list[int] = []
    for spec in specs:
        if spec.datatype not in POINTFIELD_DTYPES:
            raise CloudFormatError(
                f"PointCloud2: field {spec.name!r} has unknown datatype code {spec.datatype}; expected one of "
                f"{_NAMES_OF_CODES}"
            )
        if spec.count <= 0:
            raise CloudFormatError(f"PointCloud2: field {spec.name!r} has count {spec.count}, expected at least 1")
        if not spec.name:
            raise CloudFormatError("PointCloud2: a field has an empty name")
        if spec.name in names:
            raise CloudFormatError(f"PointCloud2: field {spec.name!r} appears twice")
        if spec.offset < 0:
            raise CloudFormatError(f"PointCloud2: field {spec.name!r} offset {spec.offset} is out of range (negative)")
        base = POINTFIELD_DTYPES[spec.datatype].newbyteorder(order)
        names.append(spec.name)
        formats.append(base if spec.count == 1 else (base, (spec.count,)))
        offsets.append(spec.offset)
        ends.append(spec.offset + base.itemsize * spec.count)
    if ends and max(ends) > point_step:
        worst = specs[int(np.argmax(ends))]
        raise CloudFormatError(
            f"PointCloud2: field {worst.name!r} (offset {worst.offset}) is out of range: point_step {point_step} "
            f"is smaller than the fields' extent of {max(ends)} bytes"
        )
    _check_no_overlap(specs)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})


def from_msg(msg: Any) -> np.ndarray:
    """A PointCloud2 as a structured array: 1-D for ``height == 1``, else ``(height, width)``.

    The result is a view of ``msg.data`` (no copy) whenever the data is a buffer (rclpy's
    ``array.array``, bytes, a rosbags numpy array), so it shares memory with the message and is
    read-only when the buffer is. Non-finite points are kept (``is_dense`` is not acted on).
    Big-endian clouds are supported by byte-swapping into a native copy.
    """
    try:
        fields = list(msg.fields)
        height, width = int(msg.height), int(msg.width)
        point_step, row_step = int(msg.point_step), int(msg.row_step)
        is_bigendian = bool(msg.is_bigendian)
        data = msg.data
        names = [str(f.name) for f in fields]
    except AttributeError as err:
        raise CloudFormatError(f"not a PointCloud2 message: {err}") from None
    missing = [axis for axis in XYZ if axis not in names]
    if missing:
        raise CloudFormatError(f"PointCloud2: missing field(s) {', '.join(missing)}; it has fields {names}")
    if height < 0 or width < 0:
        raise CloudFormatError(f"PointCloud2: height {height} and width {width} must not be negative")
    dtype = fields_to_dtype(fields, point_step, is_bigendian)
    if height and width and row_step < width * point_step:
        raise CloudFormatError(
            f"PointCloud2: row_step {row_step} is smaller than width * point_step = {width} * {point_step}"
        )
    buf = _as_uint8(data)
    need = row_step * height
    if buf.size < need:
        raise CloudFormatError(
            f"PointCloud2: data is truncated: {buf.size} bytes, expected row_step * height = "
            f"{row_step} * {height} = {need}"
        )
    if height == 0 or width == 0:
        points = np.zeros((0,) if height <= 1 else (height, 0), dtype=dtype)
    else:
        points = np.ndarray(shape=(height, width), dtype=dtype, buffer=buf, strides=(row_step, point_step))
        if height == 1:
            points = points[0]
    if is_bigendian:
        points = points.astype(dtype.newbyteorder("<"))
    return points


def pack(points: np.ndarray) -> PackedCloud:
    """The PointCloud2 layout and bytes of a structured array (one numpy copy, padding kept)."""
    points = _require_structured(points)
    if points.ndim not in (1, 2):
        raise CloudFormatError(f"points have shape {points.shape}; expected 1-D (unorganized) or 2-D (height, width)")
    dtype = points.dtype
    specs = [_field_of(name, dtype) for name in dtype.names or ()]
    missing = [axis for axis in XYZ if axis not in (dtype.names or ())]
    if missing:
        raise CloudFormatError(f"points lack field(s) {', '.join(missing)}; have {list(dtype.names or ())}")
    _check_no_overlap(specs)
    little = dtype.newbyteorder("<")
    if little != dtype:
        points = points.astype(little)
    height, width = (1, points.shape[0]) if points.ndim == 1 else points.shape
    contiguous = np.ascontiguousarray(points)
    data = contiguous.view(np.uint8).reshape(-1) if contiguous.size else np.zeros(0, np.uint8)
    return PackedCloud(
        fields=tuple(specs),
        height=int(height),
        width=int(width),
        point_step=dtype.itemsize,
        row_step=dtype.itemsize * int(width),
        is_dense=bool(finite_mask(points).all()),
        data=data,
    )


def to_msg(
    points: np.ndarray,
    frame_id: str = "",
    stamp: Any = None,
    header: Any = None,
) -> PointCloud2:
    """A ``sensor_msgs.msg.PointCloud2`` holding ``points`` (structured, 1-D or organized 2-D).

    ``stamp`` is None (zero), ``(sec, nanosec)``, a ``builtin_interfaces`` Time or integer
    nanoseconds; alternatively pass a whole ``header`` (then leave ``frame_id`` and ``stamp`` out).
    """
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import PointCloud2, PointField
    from std_msgs.msg import Header

    packed = pack(points)
    if header is not None:
        if frame_id or stamp is not None:
            raise CloudFormatError("to_msg: give either header or frame_id/stamp, not both")
        sec, nanosec = stamp_to_sec_nanosec(header.stamp)
        frame_id = str(header.frame_id)
    else:
        sec, nanosec = stamp_to_sec_nanosec(stamp)
    # check_fields=True makes rclpy's data setter keep an array.array as it is; without it the setter
    # always copies (slowly, byte by byte)
    msg = PointCloud2(
        check_fields=True,
        header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id),
        **packed.message_fields(PointField),
    )
    data = array.array("B")  # one memcpy; given anything else the setter would check every byte
    data.frombytes(packed.data.data)
    msg.data = data
    return msg


def packed_records(points: np.ndarray, byteorder: Literal["<", ">"] = "<") -> np.ndarray:
    """A 1-D copy of a structured cloud without padding bytes, every field in ``byteorder``.

    Organized clouds are flattened row by row; sub-array fields stay sub-arrays.
    """
    cloud = _require_structured(points).reshape(-1)
    names = cloud.dtype.names or ()
    out = np.empty(len(cloud), dtype=[(name, cloud.dtype[name].newbyteorder(byteorder)) for name in names])
    for name in names:
        out[name] = cloud[name]
    return out


def stamp_to_sec_nanosec(stamp: Any) -> tuple[int, int]:
    """(sec, nanosec) of None (zero), integer nanoseconds, a ``(sec, nanosec)`` pair or a Time message."""
    if stamp is None:
        return 0, 0
    if isinstance(stamp, int | np.integer) and not isinstance(stamp, bool):
        sec, nanosec = divmod(int(stamp), 1_000_000_000)
    elif isinstance(stamp, Sequence) and len(stamp) == 2:
        sec, nanosec = int(stamp[0]), int(stamp[1])
    elif hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        sec, nanosec = int(stamp.sec), int(stamp.nanosec)
    else:
        raise CloudFormatError(
            f"stamp {stamp!r}: expected None, integer nanoseconds, (sec, nanosec) or a builtin_interfaces Time"
        )
    if not (0 <= nanosec < 1_000_000_000 and -(2**31) <= sec < 2**31):
        raise CloudFormatError(
            f"stamp {stamp!r}: sec={sec}, nanosec={nanosec} out of range; expected nanosec in [0, 1e9) and an int32 sec"
        )
    return sec, nanosec


def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds of a stamp in any form :func:`stamp_to_sec_nanosec` takes (a Time message, mostly)."""
    sec, nanosec = stamp_to_sec_nanosec(stamp)
    return sec * 1_000_000_000 + nanosec


def xyz_array(points: Any) -> np.ndarray:
    """(N, 3) float32 coordinates of a cloud (organized clouds flattened row by row)."""
    cloud = as_structured(points)
    xyz = np.stack([cloud[axis] for axis in XYZ], axis=-1)
    return xyz.reshape(-1, 3).astype(np.float32, copy=False)


def finite_mask(points: Any) -> np.ndarray:
    """True where x, y and z are all finite (same shape as the cloud)."""
    cloud = as_structured(points)
    mask = np.ones(cloud.shape, dtype=bool)
    for axis in XYZ:
        finite = np.isfinite(cloud[axis])
        mask &= finite.all(axis=tuple(range(cloud.ndim, finite.ndim)))  # sub-array coordinates: all finite
    return mask


def as_structured(array_or_scan: Any) -> np.ndarray:
    """A structured cloud from a structured array, a Scan, or an (N, 3) / (N, 4) x, y, z[, intensity] array."""
    value = array_or_scan
    if not isinstance(value, np.ndarray) and hasattr(value, "points"):
        value = value.points
    if not isinstance(value, np.ndarray):
        raise CloudFormatError(f"expected a numpy array or a Scan, got {type(array_or_scan).__name__}")
    if value.dtype.names is not None:
        missing = [axis for axis in XYZ if axis not in value.dtype.names]
        if missing:
            raise CloudFormatError(f"points lack field(s) {', '.join(missing)}; have {list(value.dtype.names)}")
        return value
    if value.ndim != 2 or value.shape[1] not in (3, 4) or value.dtype.kind not in "iuf":
        raise CloudFormatError(
            f"array of shape {value.shape} and dtype {value.dtype}: expected a structured array or a real (N, 3) "
            "x, y, z / (N, 4) x, y, z, intensity array"
        )
    names = ["x", "y", "z", "intensity"][: value.shape[1]]
    out = np.empty(len(value), dtype=[(name, np.float32) for name in names])
    for column, name in enumerate(names):
        out[name] = value[:, column]
    return out


def _spec_of(field: FieldLike) -> FieldSpec:
    try:
        return FieldSpec(str(field.name), int(field.offset), int(field.datatype), int(field.count))
    except (AttributeError, TypeError, ValueError) as err:
        raise CloudFormatError(f"PointCloud2: malformed PointField {field!r}: {err}") from None


def _check_no_overlap(specs: Sequence[FieldSpec]) -> None:
    spans = sorted((s.offset, s.offset + POINTFIELD_DTYPES[s.datatype].itemsize * s.count, s.name) for s in specs)
    for (_, end, name), (start, _, next_name) in itertools.pairwise(spans):
        if start < end:
            raise CloudFormatError(
                f"PointCloud2: fields {name!r} and {next_name!r} overlap ({name!r} ends at byte {end}, "
                f"{next_name!r} starts at {start})"
            )


def _field_of(name: str, dtype: np.dtype) -> FieldSpec:
    field_dtype, offset = dtype.fields[name][:2]  # type: ignore[index]
    base = field_dtype.base if field_dtype.subdtype is not None else field_dtype
    code = _CODE_OF.get((base.kind, base.itemsize)) if base.names is None else None
    if code is None:
        raise CloudFormatError(
            f"field {name!r} has type {base}, which a PointField cannot express; expected int8/16/32, uint8/16/32, "
            "float32 or float64"
        )
    return FieldSpec(name, int(offset), code, math.prod(field_dtype.shape))


def _require_structured(points: Any) -> np.ndarray:
    if not isinstance(points, np.ndarray) or points.dtype.names is None:
        what = f"array of dtype {points.dtype}" if isinstance(points, np.ndarray) else type(points).__name__
        raise CloudFormatError(f"expected a structured point array, got {what}; see cloud.as_structured()")
    return points


def _as_uint8(data: Any) -> np.ndarray:
    """The message's bytes as a flat uint8 array, sharing memory whenever ``data`` is a buffer."""
    if isinstance(data, np.ndarray):
        flat = data.reshape(-1)
        return flat if flat.dtype == np.uint8 else np.ascontiguousarray(flat).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    try:
        return np.asarray(data, dtype=np.uint8).reshape(-1)  # e.g. a list of ints: one copy
    except (TypeError, ValueError, OverflowError) as err:
        raise CloudFormatError(f"PointCloud2: data of type {type(data).__name__} is not a byte buffer: {err}") from None
