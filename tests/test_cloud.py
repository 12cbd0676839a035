"""perception_ws.cloud: PointCloud2 <-> structured arrays, with rclpy's and rosbags' message classes."""

from __future__ import annotations

import array
import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.serialization import serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from perception_ws.cloud import (
    POINTFIELD_DTYPES,
    as_structured,
    fields_to_dtype,
    finite_mask,
    from_msg,
    pack,
    to_msg,
    xyz_array,
)
from perception_ws.errors import CloudFormatError
from perception_ws.scan import Scan

KILTED = get_typestore(Stores.ROS2_KILTED)


def real_kitti_points(real_data: Path) -> np.ndarray:
    raw = np.fromfile(real_data / "kitti_odometry_00" / "000094.bin", dtype=np.float32).reshape(-1, 4)
    return as_structured(raw)


def field_bytes(points: np.ndarray, name: str) -> bytes:
    """The raw bytes of one field, in point order (bitwise comparison, NaN payloads included)."""
    return np.ascontiguousarray(points[name]).tobytes()


def assert_same_points(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert a.dtype.names == b.dtype.names
    for name in a.dtype.names or ():
        assert a.dtype[name] == b.dtype[name], name
        assert field_bytes(a, name) == field_bytes(b, name), name


# -- random layouts -----------------------------------------------------------------------------------------------

extra_names = st.text(alphabet="abcdefghijklmnopqrstuvw_", min_size=1, max_size=8).filter(
    lambda s: s not in ("x", "y", "z")
)


@st.composite
def random_clouds(draw: st.DrawFn) -> np.ndarray:
    """A structured cloud with a random layout (types, counts, order, gaps, tail padding, shape) and random bytes."""
    extras = draw(st.lists(extra_names, max_size=4, unique=True))
    specs: list[tuple[str, np.dtype, int]] = [
        (axis, POINTFIELD_DTYPES[draw(st.sampled_from([7, 8]))], 1) for axis in "xyz"
    ]
    specs += [(name, POINTFIELD_DTYPES[draw(st.integers(1, 8))], draw(st.integers(1, 3))) for name in extras]
    specs = draw(st.permutations(specs))
    names, formats, offsets = [], [], []
    offset = 0
    for name, base, count in specs:
        offset += draw(st.integers(0, 3))  # padding gap before the field (alignment is not required)
        names.append(name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(offset)
        offset += base.itemsize * count
    itemsize = offset + draw(st.integers(0, 8))
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})
    shape = draw(st.one_of(st.tuples(st.integers(0, 12)), st.tuples(st.integers(2, 4), st.integers(1, 5))))
    n = int(np.prod(shape))
    raw = draw(st.binary(min_size=n * itemsize, max_size=n * itemsize))
    points = np.frombuffer(raw, dtype=dtype, count=n).reshape(shape).copy()
    nan_at = draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=3)) if n else []
    flat = points.reshape(-1)
    for i in nan_at:
        flat[draw(st.sampled_from("xyz"))][i] = np.nan
    return points


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=random_clouds())
def test_random_layouts_round_trip_bitwise_through_rclpy_messages(points: np.ndarray) -> None:
    msg = to_msg(points, frame_id="velodyne", stamp=(12, 34))
    assert isinstance(msg, PointCloud2)
    assert msg.point_step == points.dtype.itemsize
    assert [f.name for f in msg.fields] == list(points.dtype.names or ())
    assert [f.offset for f in msg.fields] == [points.dtype.fields[n][1] for n in points.dtype.names or ()]  # type: ignore[index]
    assert (msg.height, msg.width) == ((1, points.shape[0]) if points.ndim == 1 else points.shape)
    assert msg.is_dense == bool(np.all([np.isfinite(points[a].astype(np.float64)) for a in "xyz"])), (
        "is_dense must be False exactly when some x/y/z is not finite"
    )
    back = from_msg(msg)
    assert_same_points(points, back)
    if points.size:
        assert np.shares_memory(back, np.frombuffer(msg.data, dtype=np.uint8)), "from_msg must be a view of msg.data"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=random_clouds(), row_padding=st.integers(1, 9), tail=st.integers(0, 5))
def test_row_padding_and_trailing_bytes_are_skipped(points: np.ndarray, row_padding: int, tail: int) -> None:
    msg = to_msg(points)
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.row_step)
    padded = np.concatenate([rows, np.full((msg.height, row_padding), 0xAB, np.uint8)], axis=1)
    msg.row_step += row_padding
    msg.data = array.array("B", padded.tobytes() + bytes(tail))
    assert_same_points(points, from_msg(msg))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=random_clouds())
def test_random_layouts_survive_cdr_through_rosbags(points: np.ndarray) -> None:
    """rclpy's own serializer writes the CDR, rosbags reads it: from_msg takes rosbags' numpy data."""
    raw = serialize_message(to_msg(points, frame_id="f", stamp=5))
    msg: Any = KILTED.deserialize_cdr(raw, "sensor_msgs/msg/PointCloud2")
    assert isinstance(msg.data, np.ndarray)
    assert_same_points(points, from_msg(msg))


@settings(max_examples=60, deadline=None)
@given(points=random_clouds())
def test_big_endian_messages_are_byteswapped_to_native(points: np.ndarray) -> None:
    msg = to_msg(points)
    swapped = points.astype(points.dtype.newbyteorder(">"))  # same offsets, every field big-endian
    msg.data = array.array("B", np.ascontiguousarray(swapped).tobytes())
    msg.is_bigendian = True
    back = from_msg(msg)
    assert back.dtype == points.dtype  # native little-endian again
    for name in points.dtype.names or ():
        assert field_bytes(back, name) == field_bytes(points, name)


# -- real data ----------------------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_kitti_scan_round_trips_and_keeps_header(real_data: Path) -> None:
    points = real_kitti_points(real_data)
    msg = to_msg(points, frame_id="velo_link", stamp=1_317_000_123_456_789_012)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_317_000_123, 456_789_012)
    assert msg.header.frame_id == "velo_link"
    assert msg.is_dense
    assert msg.width == len(points)
    assert msg.height == 1
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("intensity", 12, PointField.FLOAT32, 1),
    ]
    assert_same_points(points, from_msg(msg))


@pytest.mark.real_data
@pytest.mark.parametrize("store", [Stores.ROS2_KILTED, Stores.ROS2_HUMBLE])
def test_real_scan_deserialized_by_rosbags_converts(real_data: Path, store: Stores) -> None:
    typestore = get_typestore(store)
    types = typestore.types
    points = real_kitti_points(real_data)
    packed = pack(points)
    msg = types["sensor_msgs/msg/PointCloud2"](
        header=types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=7, nanosec=9), frame_id="v"),
        height=packed.height,
        width=packed.width,
        fields=[
            types["sensor_msgs/msg/PointField"](name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
            for f in packed.fields
        ],
        is_bigendian=False,
        point_step=packed.point_step,
        row_step=packed.row_step,
        data=packed.data,
        is_dense=packed.is_dense,
    )
    back = typestore.deserialize_cdr(
        typestore.serialize_cdr(msg, "sensor_msgs/msg/PointCloud2"), "sensor_msgs/msg/PointCloud2"
    )
    assert_same_points(points, from_msg(back))


@pytest.mark.real_data
def test_real_scan_serialized_by_rclpy_reads_through_rosbags(real_data: Path) -> None:
    points = real_kitti_points(real_data)[:20000]
    raw = serialize_message(to_msg(points, frame_id="velo"))
    msg: Any = KILTED.deserialize_cdr(raw, "sensor_msgs/msg/PointCloud2")
    assert msg.header.frame_id == "velo"
    assert_same_points(points, from_msg(msg))


@pytest.mark.real_data
def test_organized_real_scan_keeps_its_shape(real_data: Path) -> None:
    points = real_kitti_points(real_data)[: 64 * 1800].reshape(64, 1800)
    msg = to_msg(points)
    assert (msg.height, msg.width, msg.row_step) == (64, 1800, 1800 * 16)
    back = from_msg(msg)
    assert back.shape == (64, 1800)
    assert_same_points(points, back)


# -- bad messages: one CloudFormatError naming the problem ----------------------------------------------------------


def xyz_message(n: int = 4) -> PointCloud2:
    points = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    points["x"] = np.arange(n)
    return to_msg(points)


def with_fields(msg: PointCloud2, *fields: tuple[str, int, int, int]) -> PointCloud2:
    bad = copy.deepcopy(msg)
    bad.fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields]
    return bad


XYZI = [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 12, 7, 1)]


def test_truncated_data_is_rejected() -> None:
    msg = xyz_message()
    msg.data = msg.data[:-1]
    with pytest.raises(CloudFormatError, match=r"truncated: 63 bytes, expected row_step \* height = 64"):
        from_msg(msg)


def test_point_step_smaller_than_fields_is_rejected() -> None:
    msg = xyz_message()
    msg.point_step = 12
    msg.row_step = 48
    with pytest.raises(CloudFormatError, match=r"'intensity'.*point_step 12 is smaller than the fields' extent of 16"):
        from_msg(msg)


def test_row_step_smaller_than_a_row_is_rejected() -> None:
    msg = xyz_message()
    msg.row_step = 60
    with pytest.raises(CloudFormatError, match=r"row_step 60 is smaller than width \* point_step = 4 \* 16"):
        from_msg(msg)


def test_field_offset_out_of_range_is_rejected() -> None:
    msg = with_fields(xyz_message(), *XYZI[:3], ("intensity", 1000, 7, 1))
    with pytest.raises(CloudFormatError, match=r"'intensity' \(offset 1000\) is out of range"):
        from_msg(msg)


def test_negative_offset_and_count_are_rejected() -> None:
    """rclpy's classes refuse negative numbers; rosbags' plain dataclasses (duck typing) do not."""
    types = KILTED.types
    msg = xyz_message()
    layouts: list[tuple[Any, str]] = [
        (
            types["sensor_msgs/msg/PointField"](name="x", offset=-4, datatype=7, count=1),
            r"'x' offset -4 is out of range",
        ),
        (types["sensor_msgs/msg/PointField"](name="x", offset=0, datatype=7, count=-1), r"'x' has count -1, expected"),
    ]
    for bad_x, message in layouts:
        bad = types["sensor_msgs/msg/PointCloud2"](
            header=types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
            ),
            height=msg.height,
            width=msg.width,
            fields=[bad_x, *(f for f in msg.fields if f.name != "x")],
            is_bigendian=False,
            point_step=msg.point_step,
            row_step=msg.row_step,
            data=np.frombuffer(msg.data, np.uint8),
            is_dense=True,
        )
        with pytest.raises(CloudFormatError, match=message):
            from_msg(bad)


def test_zero_count_is_rejected() -> None:
    msg = with_fields(xyz_message(), *XYZI[:3], ("intensity", 12, 7, 0))
    with pytest.raises(CloudFormatError, match=r"'intensity' has count 0, expected at least 1"):
        from_msg(msg)


def test_overlapping_fields_are_rejected() -> None:
    msg = with_fields(xyz_message(), ("x", 0, 7, 1), ("y", 2, 7, 1), ("z", 8, 7, 1))
    with pytest.raises(CloudFormatError, match=r"fields 'x' and 'y' overlap"):
        from_msg(msg)
    msg = with_fields(xyz_message(), ("x", 0, 7, 2), ("y", 4, 7, 1), ("z", 8, 7, 1))
    with pytest.raises(CloudFormatError, match=r"fields 'x' and 'y' overlap"):
        from_msg(msg)


@pytest.mark.parametrize("missing", ["x", "y", "z"])
def test_missing_coordinate_is_named(missing: str) -> None:
    msg = with_fields(xyz_message(), *(f for f in XYZI if f[0] != missing))
    with pytest.raises(CloudFormatError, match=rf"missing field\(s\) {missing};"):
        from_msg(msg)


@pytest.mark.parametrize("code", [0, 9, 255])
def test_unknown_datatype_is_rejected(code: int) -> None:
    msg = with_fields(xyz_message(), *XYZI[:3], ("intensity", 12, code, 1))
    with pytest.raises(
        CloudFormatError, match=rf"'intensity' has unknown datatype code {code}; expected one of INT8=1"
    ):
        from_msg(msg)


def test_duplicate_field_is_rejected() -> None:
    msg = with_fields(xyz_message(), *XYZI[:3], ("x", 12, 7, 1))
    with pytest.raises(CloudFormatError, match=r"field 'x' appears twice"):
        from_msg(msg)


def test_non_message_is_rejected() -> None:
    with pytest.raises(CloudFormatError, match="not a PointCloud2 message"):
        from_msg(np.zeros(3))


def test_empty_cloud_converts() -> None:
    msg = xyz_message(0)
    assert msg.width == 0
    points = from_msg(msg)
    assert points.shape == (0,)
    assert points.dtype.names == ("x", "y", "z", "intensity")


def test_nan_points_are_kept_not_filtered() -> None:
    points = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    points["z"][1] = np.nan
    msg = to_msg(points)
    assert not msg.is_dense
    back = from_msg(msg)
    assert len(back) == 3
    assert np.isnan(back["z"][1])


# -- to_msg -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_type", [np.bool_, np.complex64, "U3", np.int64, np.uint64, np.float16])
def test_types_a_pointfield_cannot_express_are_rejected(bad_type: Any) -> None:
    points = np.zeros(2, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("extra", bad_type)])
    with pytest.raises(CloudFormatError, match=r"field 'extra' has type .* which a PointField cannot express"):
        to_msg(points)


def test_to_msg_rejects_unstructured_and_wrong_shapes() -> None:
    with pytest.raises(CloudFormatError, match="expected a structured point array"):
        to_msg(np.zeros((3, 3), np.float32))
    with pytest.raises(CloudFormatError, match=r"shape \(2, 2, 2\); expected 1-D"):
        to_msg(np.zeros((2, 2, 2), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")]))
    with pytest.raises(CloudFormatError, match=r"lack field\(s\) z"):
        to_msg(np.zeros(2, dtype=[("x", "f4"), ("y", "f4")]))


def test_to_msg_converts_big_endian_arrays() -> None:
    points = np.zeros(3, dtype=[("x", ">f4"), ("y", ">f8"), ("z", ">f4"), ("ring", ">u2")])
    points["x"], points["ring"] = [1.5, -2.0, 3.25], [1, 2, 65535]
    msg = to_msg(points)
    assert not msg.is_bigendian
    back = from_msg(msg)
    for name in ("x", "y", "z", "ring"):
        np.testing.assert_array_equal(back[name], points[name])


def test_stamp_forms_agree() -> None:
    forms: list[Any] = [
        1_700_000_000_250_000_000,
        (1_700_000_000, 250_000_000),
        Time(sec=1_700_000_000, nanosec=250_000_000),
    ]
    points = as_structured(np.zeros((1, 3), np.float32))
    for stamp in forms:
        msg = to_msg(points, frame_id="lidar", stamp=stamp)
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 250_000_000)
    header = Header(stamp=Time(sec=3, nanosec=4), frame_id="base")
    msg = to_msg(points, header=header)
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("base", 3, 4)
    with pytest.raises(CloudFormatError, match="either header or frame_id/stamp"):
        to_msg(points, frame_id="x", header=header)
    with pytest.raises(CloudFormatError, match="nanosec in"):
        to_msg(points, stamp=(1, 2_000_000_000))
    with pytest.raises(CloudFormatError, match="expected None, integer nanoseconds"):
        to_msg(points, stamp=1.5)


def test_fields_to_dtype_builds_subarrays_and_padding() -> None:
    fields = [
        PointField(name="x", offset=0, datatype=8, count=1),
        PointField(name="rgb", offset=12, datatype=2, count=3),
    ]
    fields += [
        PointField(name="y", offset=16, datatype=7, count=1),
        PointField(name="z", offset=20, datatype=7, count=1),
    ]
    dtype = fields_to_dtype(fields, 32)
    assert dtype.itemsize == 32
    assert dtype["x"] == np.float64
    assert dtype["rgb"].shape == (3,)
    assert dtype["rgb"].base == np.uint8
    assert dtype.fields["rgb"][1] == 12  # type: ignore[index]
    assert fields_to_dtype(fields, 32, is_bigendian=True)["y"] == np.dtype(">f4")


# -- helpers ------------------------------------------------------------------------------------------------------


def test_xyz_array_and_finite_mask_on_float64_organized_cloud() -> None:
    points = np.zeros((2, 3), dtype=[("x", "<f8"), ("intensity", "<u1"), ("y", "<f8"), ("z", "<f8")])
    points["x"] = [[1e-3, 2, 3], [4, np.inf, 6]]
    points["y"][0, 1] = np.nan
    xyz = xyz_array(points)
    assert xyz.dtype == np.float32
    assert xyz.shape == (6, 3)
    np.testing.assert_array_equal(xyz[:, 0], np.array([1e-3, 2, 3, 4, np.inf, 6], dtype=np.float32))
    np.testing.assert_array_equal(finite_mask(points), [[True, False, True], [True, False, True]])


@pytest.mark.real_data
def test_as_structured_accepts_arrays_and_scans(real_data: Path) -> None:
    raw = np.fromfile(real_data / "kitti_odometry_00" / "000094.bin", dtype=np.float32).reshape(-1, 4)
    four = as_structured(raw)
    assert four.dtype.names == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(four["intensity"], raw[:, 3])
    three = as_structured(raw[:, :3].astype(np.float64))
    assert three.dtype.names == ("x", "y", "z")
    assert three["x"].dtype == np.float32
    assert as_structured(Scan(points=four)) is four
    np.testing.assert_array_equal(xyz_array(raw), raw[:, :3])
    for bad in (np.zeros((3, 5)), np.zeros(3), np.zeros((3, 3), dtype=bool), [[1, 2, 3]]):
        with pytest.raises(CloudFormatError):
            as_structured(bad)
    with pytest.raises(CloudFormatError, match=r"lack field\(s\) y, z"):
        as_structured(np.zeros(2, dtype=[("x", "f4")]))


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy", "list"])
def test_any_byte_container_is_accepted(kind: str) -> None:
    """Duck typing: any object with the PointCloud2 attributes, whatever holds its bytes."""
    points = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    points["y"] = [1.5, -2.5, 3.5]
    msg = to_msg(points)
    raw = bytes(msg.data)
    containers = {
        "bytes": raw,
        "bytearray": bytearray(raw),
        "memoryview": memoryview(raw),
        "numpy": np.frombuffer(raw, np.uint8),
        "list": list(raw),
    }
    fields = [SimpleNamespace(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in msg.fields]
    duck = SimpleNamespace(fields=fields, height=1, width=3, point_step=12, row_step=36, is_bigendian=False)
    duck.data = containers[kind]
    back = from_msg(duck)
    np.testing.assert_array_equal(back["y"], points["y"])
    assert back.flags.writeable == (kind in ("bytearray", "list")), "a view of immutable bytes must be read-only"
