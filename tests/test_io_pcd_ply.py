"""PCD and PLY files: the real PCDs against Open3D's independent readers, round trips, malformed files."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path
from typing import Any

import numpy as np
import open3d as o3d
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perception_ws.errors import CloudFormatError, DatasetError
from perception_ws.io import load, open_dataset
from perception_ws.io.atomic import atomic_file
from perception_ws.io.pcd import read_pcd, read_pcd_header, write_pcd
from perception_ws.io.ply import read_ply, write_ply
from perception_ws.io.registry import find_reader
from perception_ws.kernels.lzf import lzf_compress, lzf_compress_reference, lzf_decompress, lzf_decompress_reference

ENCODINGS = ["ascii", "binary", "binary_compressed"]
PLY_ENCODINGS = ["ascii", "binary_little_endian", "binary_big_endian"]
VLP16_FIELDS = ("x", "y", "z", "intensity", "return_type", "channel", "azimuth", "elevation", "distance", "time_stamp")


def vlp16_pcd(real_data: Path) -> Path:
    return next((real_data / "vlp16").glob("*.pcd"))


def open3d_fields(path: Path) -> dict[str, np.ndarray]:
    """Every per-point attribute of a PCD/PLY as Open3D's tensor reader sees it (positions split into x, y, z)."""
    cloud = o3d.t.io.read_point_cloud(path)
    fields = {key: cloud.point[key].numpy() for key in cloud.point}
    positions = fields.pop("positions")
    fields.update(x=positions[:, 0], y=positions[:, 1], z=positions[:, 2])
    return {
        key: value.reshape(len(positions), -1).squeeze(1) if value.ndim > 1 else value for key, value in fields.items()
    }


def assert_fields_equal(a: np.ndarray, b: np.ndarray, bitwise: bool = True) -> None:
    assert a.shape == b.shape
    assert a.dtype.names == b.dtype.names
    for name in a.dtype.names or ():
        assert a.dtype[name].base.newbyteorder("=") == b.dtype[name].base.newbyteorder("="), name
        assert a.dtype[name].shape == b.dtype[name].shape, name
        if bitwise:
            assert np.ascontiguousarray(a[name]).tobytes() == np.ascontiguousarray(b[name]).tobytes(), name
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# -- the real PCD files -------------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_vlp16_pcd_matches_open3d_on_every_field(real_data: Path) -> None:
    path = vlp16_pcd(real_data)
    points = read_pcd(path)
    assert points.dtype.names == VLP16_FIELDS
    assert [points.dtype[n].str for n in VLP16_FIELDS] == [
        "<f4",
        "<f4",
        "<f4",
        "|u1",
        "|u1",
        "<u2",
        "<f4",
        "<f4",
        "<f4",
        "<u4",
    ]
    assert points.shape == (14831,)
    reference = open3d_fields(path)
    assert set(reference) == set(VLP16_FIELDS)
    for name in VLP16_FIELDS:
        assert reference[name].dtype == points.dtype[name], name
        np.testing.assert_array_equal(points[name], reference[name], err_msg=name)


@pytest.mark.real_data
@pytest.mark.parametrize("folder", ["vlp32", "kitti_sequence_pcd"])
def test_real_xyz_pcds_match_open3d(real_data: Path, folder: str) -> None:
    path = sorted((real_data / folder).glob("*.pcd"))[0]
    points = read_pcd(path)
    header = read_pcd_header(path)
    assert header.version == "0.7"
    assert header.data == "binary"
    assert header.viewpoint == (0, 0, 0, 1, 0, 0, 0)
    assert len(points) == header.points == header.width
    reference = np.asarray(o3d.io.read_point_cloud(path).points)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1)
    np.testing.assert_array_equal(xyz.astype(np.float64), reference)


@pytest.mark.real_data
def test_folder_of_real_pcds_gives_twelve_scans_in_name_order(real_data: Path) -> None:
    folder = real_data / "kitti_sequence_pcd"
    dataset = open_dataset(folder)
    assert find_reader(folder).name == "pcd"
    assert len(dataset) == 12
    assert [dataset[i].name for i in range(12)] == [f"{i:010d}" for i in range(12)]
    last = dataset[11]
    assert last.sensor is None
    assert last.points.dtype.names == ("x", "y", "z", "intensity")
    reference = np.asarray(o3d.io.read_point_cloud(folder / "0000000011.pcd").points)
    np.testing.assert_array_equal(last.xyz.astype(np.float64), reference)


@pytest.mark.real_data
def test_single_real_pcd_loads_as_one_scan(real_data: Path) -> None:
    scan = load(next((real_data / "vlp32").glob("*.pcd")))
    assert scan.points.dtype.names == ("x", "y", "z")
    assert len(scan) == 26216
    assert scan.sensor is None


@pytest.mark.real_data
@pytest.mark.parametrize("data", ENCODINGS)
def test_real_vlp16_round_trips_in_every_encoding(real_data: Path, tmp_path: Path, data: Any) -> None:
    points = read_pcd(vlp16_pcd(real_data))
    out = tmp_path / f"vlp16_{data}.pcd"
    write_pcd(out, points, data=data)
    assert read_pcd_header(out).data == data
    assert_fields_equal(points, read_pcd(out))
    # Open3D decodes our file on its own (its own LZF decoder for binary_compressed)
    reference = open3d_fields(out)
    for name in VLP16_FIELDS:
        np.testing.assert_array_equal(points[name], reference[name], err_msg=name)
    assert list(tmp_path.iterdir()) == [out], "no temporary file may be left behind"


@pytest.mark.real_data
def test_open3d_binary_compressed_file_is_read(real_data: Path, tmp_path: Path) -> None:
    """Open3D's LZF compressor and field layout, read by ours."""
    source = o3d.t.io.read_point_cloud(vlp16_pcd(real_data))
    out = tmp_path / "open3d.pcd"
    assert o3d.t.io.write_point_cloud(out, source, compressed=True)
    assert read_pcd_header(out).data == "binary_compressed"
    points = read_pcd(out)
    reference = open3d_fields(out)
    assert set(points.dtype.names or ()) == set(reference)
    for name in reference:
        np.testing.assert_array_equal(points[name], reference[name], err_msg=name)


# -- random layouts -----------------------------------------------------------------------------------------------

PCD_TYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]


@st.composite
def random_pcd_clouds(draw: st.DrawFn) -> np.ndarray:
    names = [
        "x",
        "y",
        "z",
        *draw(st.lists(st.text(alphabet="abcdefgh_", min_size=2, max_size=6), max_size=3, unique=True)),
    ]
    fields = []
    for name in draw(st.permutations(names)):
        kind = draw(st.sampled_from(["f4", "f8"] if name in "xyz" else PCD_TYPES))
        count = 1 if name in "xyz" else draw(st.integers(1, 3))
        fields.append((name, "<" + kind) if count == 1 else (name, "<" + kind, (count,)))
    shape = draw(st.one_of(st.tuples(st.integers(0, 40)), st.tuples(st.integers(2, 4), st.integers(1, 6))))
    dtype = np.dtype(fields)
    n = int(np.prod(shape))
    raw = draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize))
    return np.frombuffer(raw, dtype=dtype, count=n).reshape(shape).copy()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=random_pcd_clouds(), data=st.sampled_from(ENCODINGS))
def test_random_layouts_round_trip_through_pcd(tmp_path: Path, points: np.ndarray, data: Any) -> None:
    out = tmp_path / "cloud.pcd"
    write_pcd(out, points, data=data)
    back = read_pcd(out)
    header = read_pcd_header(out)
    assert (header.height, header.width) == ((1, points.shape[0]) if points.ndim == 1 else points.shape)
    # text keeps every value but not the payload bits of NaNs; the binary encodings are bitwise
    assert_fields_equal(points, back, bitwise=data != "ascii")


def test_padding_fields_and_missing_optional_lines_v06(tmp_path: Path) -> None:
    """A v0.6 header (no VIEWPOINT, no COUNT) with a '_' padding field, in binary and ascii."""
    records = np.zeros(3, dtype=[("x", "<f4"), ("_", "V4"), ("y", "<f4"), ("z", "<f4")])
    records["x"], records["y"], records["z"] = [1, 2, 3], [4, 5, 6], [7, 8, np.nan]
    head = "VERSION .6\nFIELDS x _ y z\nSIZE 4 4 4 4\nTYPE F F F F\nWIDTH 3\nHEIGHT 1\nPOINTS 3\n"
    (tmp_path / "b.pcd").write_bytes((head + "DATA binary\n").encode() + records.tobytes())
    (tmp_path / "a.pcd").write_text(head + "DATA ascii\n1 0 4 7\n2 0 5 8\n3 0 6 nan\n")
    for name in ("a.pcd", "b.pcd"):
        points = read_pcd(tmp_path / name)
        assert points.dtype.names == ("x", "y", "z")
        np.testing.assert_array_equal(points["y"], [4, 5, 6])
        np.testing.assert_array_equal(points["z"], [7, 8, np.nan])
        assert read_pcd_header(tmp_path / name).viewpoint == (0, 0, 0, 1, 0, 0, 0)


def test_viewpoint_is_kept_not_applied(tmp_path: Path) -> None:
    points = np.zeros(2, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    points["x"] = [1, 2]
    write_pcd(tmp_path / "v.pcd", points, viewpoint=(1.5, 2, 3, 0.5, 0.5, 0.5, 0.5))
    assert read_pcd_header(tmp_path / "v.pcd").viewpoint == (1.5, 2, 3, 0.5, 0.5, 0.5, 0.5)
    np.testing.assert_array_equal(read_pcd(tmp_path / "v.pcd")["x"], [1, 2])


def test_organized_pcd_reads_with_its_shape_and_loads_flat(tmp_path: Path) -> None:
    points = np.zeros((4, 5), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("ring", "<u2")])
    points["ring"] = np.arange(4)[:, None]
    write_pcd(tmp_path / "o.pcd", points, data="binary_compressed")
    assert read_pcd(tmp_path / "o.pcd").shape == (4, 5)
    scan = load(tmp_path / "o.pcd")
    np.testing.assert_array_equal(scan.points["ring"], np.repeat(np.arange(4), 5))


def test_write_rejects_what_pcd_cannot_store(tmp_path: Path) -> None:
    for dtype in ([("x", "f4"), ("y", "f4"), ("z", "f2")], [("x", "f4"), ("y", "f4"), ("z", "f4"), ("ok", "?")]):
        with pytest.raises(CloudFormatError, match=r"write_pcd: field '(z|ok)' has type"):
            write_pcd(tmp_path / "bad.pcd", np.zeros(2, dtype=dtype))
    with pytest.raises(CloudFormatError, match="cannot be written to a PCD header"):
        write_pcd(tmp_path / "bad.pcd", np.zeros(2, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("a b", "f4")]))
    with pytest.raises(CloudFormatError, match="data='compressed'"):
        write_pcd(tmp_path / "bad.pcd", np.zeros((2, 3), np.float32), data="compressed")  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "keep.pcd"
    target.write_bytes(b"old")

    def interrupted_write() -> None:
        with atomic_file(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        interrupted_write()
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


# -- malformed PCD files ------------------------------------------------------------------------------------------

GOOD_HEAD = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\nPOINTS 2\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GOOD_HEAD, "header ends without a DATA line"),
        (GOOD_HEAD.replace("SIZE 4 4 4", "SIZE 4 4") + "DATA ascii\n", "SIZE has 2 entries but FIELDS names 3"),
        (GOOD_HEAD.replace("TYPE F F F", "TYPE F F F2") + "DATA ascii\n", "TYPE F2"),
        (GOOD_HEAD.replace("SIZE 4 4 4", "SIZE 4 4 2") + "DATA ascii\n", "'z' has TYPE F SIZE 2"),
        (GOOD_HEAD.replace("POINTS 2", "POINTS 3") + "DATA ascii\n", "POINTS 3 does not equal WIDTH 2 x HEIGHT 1"),
        (GOOD_HEAD.replace("WIDTH 2", "WIDTH two") + "DATA ascii\n", "WIDTH 'two' is not a list of integers"),
        (GOOD_HEAD.replace("FIELDS x y z", "FIELDS x y x") + "DATA ascii\n", "field.s. x appear more than once"),
        (GOOD_HEAD.replace("COUNT 1 1 1", "COUNT 1 0 1") + "DATA ascii\n", "'y' has COUNT 0"),
        (GOOD_HEAD.replace("VERSION 0.7", "VERSION 0.5") + "DATA ascii\n", "VERSION '0.5' is not supported"),
        (GOOD_HEAD + "DATA lzma\n", "DATA 'lzma'"),
        (GOOD_HEAD + "DATA ascii\n1 2 3\n", "text data is truncated: 1 rows, expected 2"),
        (GOOD_HEAD + "DATA ascii\n1 2 3\n4 five 6\n", "text data does not match the header"),
        (GOOD_HEAD + "DATA ascii\n1 2 3 4\n4 5 6 7\n", "text data does not match the header"),
        (GOOD_HEAD.replace("FIELDS x y z\n", "") + "DATA ascii\n", "header lacks the FIELDS line"),
    ],
)
def test_malformed_headers_and_text_name_the_problem_and_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.pcd"
    path.write_text(content)
    with pytest.raises(CloudFormatError, match=message) as info:
        read_pcd(path)
    assert str(path) in str(info.value)


def test_truncated_and_corrupt_binary_data(tmp_path: Path) -> None:
    points = np.zeros(50, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    points["x"] = np.arange(50)
    for data in ("binary", "binary_compressed"):
        good = tmp_path / f"{data}.pcd"
        write_pcd(good, points, data=data)
        cut = tmp_path / f"cut_{data}.pcd"
        cut.write_bytes(good.read_bytes()[:-7])
        with pytest.raises(CloudFormatError, match=rf"{cut}: {data} data is truncated"):
            read_pcd(cut)
    header_end = read_pcd_header(tmp_path / "binary_compressed.pcd").data_offset
    raw = bytearray((tmp_path / "binary_compressed.pcd").read_bytes())
    raw[header_end + 4 : header_end + 8] = struct.pack("<I", 12345)
    (tmp_path / "size.pcd").write_bytes(raw)
    with pytest.raises(CloudFormatError, match="decompresses to 12345 bytes, expected 50 points x 12 bytes = 600"):
        read_pcd(tmp_path / "size.pcd")
    head = raw[: header_end + 8]
    garbage = bytes([0xFF, 0xFF, 0xFF]) * 10  # back-references before the start of the output
    (tmp_path / "garbage.pcd").write_bytes(bytes(head[:header_end]) + struct.pack("<II", len(garbage), 600) + garbage)
    with pytest.raises(CloudFormatError, match=r"garbage\.pcd: LZF data is corrupt"):
        read_pcd(tmp_path / "garbage.pcd")


def test_missing_and_non_pcd_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        read_pcd(tmp_path / "none.pcd")
    (tmp_path / "noise.pcd").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CloudFormatError, match=r"noise\.pcd: not a PCD file"):
        read_pcd(tmp_path / "noise.pcd")
    with pytest.raises(CloudFormatError, match=r"noise\.pcd"):
        open_dataset(tmp_path / "noise.pcd")  # a malformed single file fails at open, not at the first frame


def test_folder_with_other_files_is_not_a_pcd_folder(tmp_path: Path) -> None:
    write_pcd(tmp_path / "a.pcd", np.zeros((2, 3), np.float32))
    assert find_reader(tmp_path).name == "pcd"
    (tmp_path / "notes.txt").write_text("not a cloud")
    with contextlib.suppress(DatasetError):  # no reader at all is the other acceptable outcome
        assert find_reader(tmp_path).name != "pcd"


# -- LZF codec ----------------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=1500), st.lists(st.sampled_from([b"\0", b"ab", b"xyz", b"\x07"]), max_size=600).map(b"".join)
    )
)
def test_lzf_codecs_agree_with_the_reference(data: bytes) -> None:
    packed = lzf_compress(data)
    assert lzf_decompress_reference(packed, len(data)) == data
    assert lzf_decompress(packed, len(data)).tobytes() == data
    assert lzf_decompress(lzf_compress_reference(data), len(data)).tobytes() == data


@pytest.mark.real_data
def test_lzf_compressor_finds_back_references(real_data: Path) -> None:
    points = read_pcd(vlp16_pcd(real_data))
    planar = np.concatenate([np.ascontiguousarray(points[n]).view(np.uint8).reshape(-1) for n in VLP16_FIELDS])
    packed = lzf_compress(planar)
    assert len(packed) < 0.75 * len(planar)  # literal-only LZF would be 1/32 larger than its input
    assert lzf_decompress(packed, len(planar)).tobytes() == planar.tobytes()
    assert len(lzf_compress(bytes(100_000))) < 1500  # a run of zeros: back-references of 264 bytes


@pytest.mark.parametrize(
    ("stream", "message"),
    [(b"\x05ab", "truncated"), (b"\x00a\x40", "truncated"), (b"\x00a\x20\x05", "before the start")],
)
def test_corrupt_lzf_streams_raise(stream: bytes, message: str) -> None:
    with pytest.raises(CloudFormatError, match=message):
        lzf_decompress(stream, 10)
    with pytest.raises(CloudFormatError, match=message):
        lzf_decompress_reference(stream, 10)


# -- PLY ----------------------------------------------------------------------------------------------------------

PLY_TYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "f4", "f8"]


@st.composite
def random_ply_clouds(draw: st.DrawFn) -> np.ndarray:
    names = [
        "x",
        "y",
        "z",
        *draw(st.lists(st.text(alphabet="rgbnal_", min_size=2, max_size=6), max_size=4, unique=True)),
    ]
    fields = [(name, "<" + draw(st.sampled_from(PLY_TYPES))) for name in draw(st.permutations(names))]
    dtype = np.dtype(fields)
    n = draw(st.integers(0, 40))
    raw = draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize))
    return np.frombuffer(raw, dtype=dtype, count=n).copy()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=random_ply_clouds(), encoding=st.sampled_from(PLY_ENCODINGS))
def test_random_layouts_round_trip_through_ply(tmp_path: Path, points: np.ndarray, encoding: Any) -> None:
    out = tmp_path / "cloud.ply"
    write_ply(out, points, encoding=encoding)
    assert out.read_bytes().startswith(f"ply\nformat {encoding} 1.0\n".encode())
    assert_fields_equal(points, read_ply(out), bitwise=encoding != "ascii")


@pytest.mark.real_data
@pytest.mark.parametrize("write_ascii", [False, True])
def test_open3d_ply_is_read(real_data: Path, tmp_path: Path, write_ascii: bool) -> None:
    xyz = read_pcd(next((real_data / "vlp32").glob("*.pcd")))[:5000]
    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(np.stack([xyz["x"], xyz["y"], xyz["z"]], axis=-1).astype(np.float64))
    cloud.colors = o3d.utility.Vector3dVector(np.random.default_rng(0).random((5000, 3)))
    out = tmp_path / "open3d.ply"
    assert o3d.io.write_point_cloud(out, cloud, write_ascii=write_ascii)
    points = read_ply(out)
    assert points.dtype.names == ("x", "y", "z", "red", "green", "blue")
    got = np.stack([points["x"], points["y"], points["z"]], axis=-1)
    if write_ascii:  # Open3D writes text with 6 significant digits
        np.testing.assert_allclose(got, np.asarray(cloud.points), rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, np.asarray(cloud.points))
    np.testing.assert_array_equal(points["red"], np.round(np.asarray(cloud.colors)[:, 0] * 255))
    assert load(out).points.dtype.names == points.dtype.names


@pytest.mark.real_data
def test_open3d_reads_our_binary_ply(real_data: Path, tmp_path: Path) -> None:
    points = read_pcd(vlp16_pcd(real_data))
    write_ply(tmp_path / "ours.ply", points, encoding="binary_big_endian")
    reference = np.asarray(o3d.io.read_point_cloud(tmp_path / "ours.ply").points)
    np.testing.assert_array_equal(np.stack([points["x"], points["y"], points["z"]], axis=-1), reference)


def test_ply_elements_around_the_vertices(tmp_path: Path) -> None:
    vertices = np.array([(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)], dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    faces = struct.pack("<BiiiBiii", 3, 0, 1, 0, 3, 1, 0, 1)
    head = "ply\nformat binary_little_endian 1.0\ncomment c\nobj_info o\n"
    camera = "element camera 1\nproperty float view_x\nproperty double view_y\n"
    vertex = "element vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
    face = "element face 2\nproperty list uchar int vertex_indices\n"
    (tmp_path / "after.ply").write_bytes(f"{head}{vertex}{face}end_header\n".encode() + vertices.tobytes() + faces)
    (tmp_path / "before.ply").write_bytes(
        f"{head}{camera}{vertex}end_header\n".encode() + bytes(12) + vertices.tobytes()
    )
    for name in ("after.ply", "before.ply"):
        np.testing.assert_array_equal(read_ply(tmp_path / name)["z"], [3, 6])
    text = "ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int vertex_indices\n" + vertex
    (tmp_path / "text.ply").write_text(text + "end_header\n3 0 1 1\n1 2 3\n4 5 6\n")
    np.testing.assert_array_equal(read_ply(tmp_path / "text.ply")["y"], [2, 5])
    (tmp_path / "list_first.ply").write_bytes(f"{head}{face}{vertex}end_header\n".encode() + faces + vertices.tobytes())
    with pytest.raises(CloudFormatError, match="list element 'face' before the vertices"):
        read_ply(tmp_path / "list_first.ply")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PLY\nformat ascii 1.0\nend_header\n", "not a PLY file"),
        (b"ply\nformat ascii 1.0\nelement face 0\nend_header\n", "no vertex element"),
        (b"ply\nformat binary_middle_endian 1.0\nend_header\n", "line 2 .*format 'binary_middle_endian 1.0'"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float128 x\nend_header\n", "property type 'float128'"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty list uchar int x\nend_header\n", "'x' is a list"),
        (b"ply\nformat ascii 1.0\nproperty float x\nend_header\n", "property before any element"),
        (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nend_header\n1\n", "text data is truncated"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nend_header\n\0\0", "truncated"),
        (b"ply\nelement vertex 0\nproperty float x\nend_header\n", "no format line"),
    ],
)
def test_malformed_ply_names_the_problem_and_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(CloudFormatError, match=message) as info:
        read_ply(path)
    assert str(path) in str(info.value)


def test_ply_write_rejects_unstorable_fields(tmp_path: Path) -> None:
    for dtype in ([("x", "f4"), ("y", "f4"), ("z", "f4"), ("n", "i8")], [("x", "f4"), ("y", "f4"), ("z", "f4", (2,))]):
        with pytest.raises(CloudFormatError, match="PLY properties are scalars"):
            write_ply(tmp_path / "bad.ply", np.zeros(2, dtype=dtype))
    assert not list(tmp_path.iterdir())
