"""Range-image projection: conventions, conflicts, invalid input, label transfer, fast path == reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perception_ws.calib.sensors import get_sensor, list_sensors
from perception_ws.errors import CloudFormatError, ProjectionError, SensorError
from perception_ws.io import load
from perception_ws.kernels.projection import _ATAN_COEFFICIENTS, fast_atan2
from perception_ws.projection import CHANNELS, Projection, normalize, project, rings_from_scan_order
from perception_ws.scan import Scan


def _points_at(azimuths_deg: list[float], ranges: list[float] | None = None, elevation_deg: float = -5.0) -> np.ndarray:
    phi = np.radians(azimuths_deg)
    r = np.ones(len(phi)) * 10.0 if ranges is None else np.asarray(ranges, dtype=np.float64)
    e = math.radians(elevation_deg)
    flat = r * np.cos(e)
    return np.column_stack([flat * np.cos(phi), flat * np.sin(phi), r * np.sin(e)])


def _same(a: Projection, b: Projection) -> None:
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_array_equal(a.cols, b.cols)
    np.testing.assert_array_equal(a.owner, b.owner)
    np.testing.assert_array_equal(a.image, b.image)


# -- conventions -------------------------------------------------------------------------------


def test_channels() -> None:
    assert CHANNELS == ("x", "y", "z", "intensity", "range", "mask")


def test_columns_run_clockwise_from_the_left_edge_of_the_front_view() -> None:
    step = 90.0 / 512
    proj = project(_points_at([44.99, 45.0, 0.5 * step, -0.5 * step, -44.99, 45.01, -45.01, 180.0]), "hdl64e")
    assert proj.cols.tolist() == [0, 0, 255, 256, 511, -1, -1, -1]
    assert proj.in_view.tolist() == [True] * 5 + [False] * 3


def test_full_turn_starts_behind_the_sensor() -> None:
    proj = project(_points_at([179.9, 0.01, -0.01, -179.9, 90.0, 89.99]), "vlp16", fov_deg=360.0, width=2048)
    # a column covers (left - (c + 1) step, left - c step]: azimuth 90 exactly closes column 511
    assert proj.cols.tolist() == [0, 1023, 1024, 2047, 511, 512]


def test_fov_as_edges_can_look_backwards() -> None:
    proj = project(_points_at([-140.5, 179.5, 140.5, 0.0]), "vlp16", fov_deg=(-135.0, -225.0), width=90)
    assert proj.cols.tolist() == [5, 45, 84, -1]
    assert proj.fov == (-135.0, -225.0)


def test_nearest_point_wins_a_pixel_and_ties_go_to_the_first() -> None:
    # one direction (vlp16: no beam-origin heights, so one pixel whatever the range)
    xyz = _points_at([10.0, 10.0, 10.0, 10.0], ranges=[20.0, 5.0, 7.0, 5.0])
    proj = project(xyz, "vlp16", fov_deg=90.0, width=512)
    assert len(set(zip(proj.rows.tolist(), proj.cols.tolist(), strict=True))) == 1
    row, col = proj.rows[0], proj.cols[0]
    assert proj.owner[row, col] == 1
    assert proj.image[row, col, 4] == pytest.approx(5.0, rel=1e-6)
    assert (proj.owner >= 0).sum() == 1


@pytest.mark.real_data
def test_image_channels_hold_the_winning_point(real_data: Path) -> None:
    scan = load(real_data / "semantickitti" / "000000.bin")
    proj = project(scan, fov_deg=360.0, width=2048)
    assert proj.sensor.name == "hdl64e"  # taken from the scan
    filled = proj.owner >= 0
    who = proj.owner[filled]
    np.testing.assert_array_equal(proj.image[filled][:, :4], np.column_stack([scan.xyz, scan.points["intensity"]])[who])
    np.testing.assert_allclose(
        proj.image[filled][:, 4], np.linalg.norm(scan.xyz[who].astype(np.float64), axis=1), rtol=1e-6
    )
    assert np.all(proj.image[filled][:, 5] == 1.0)
    assert np.all(proj.image[~filled] == 0.0)
    # every in-view point sits in a filled pixel and is no nearer than the pixel's winner
    seen = np.flatnonzero(proj.in_view)
    assert np.all(filled[proj.rows[seen], proj.cols[seen]])
    assert np.all(proj.image[proj.rows[seen], proj.cols[seen], 4] <= np.linalg.norm(scan.xyz[seen], axis=1) + 1e-5)


@pytest.mark.real_data
def test_rows_come_from_the_ring_field_through_the_ring_numbering(real_data: Path) -> None:
    scan = load(next((real_data / "vlp16").glob("*.pcd")))
    proj = project(scan, "vlp16", fov_deg=360.0, width=1800)
    assert proj.row_source == "ring"
    np.testing.assert_array_equal(proj.rows, 15 - scan.points["channel"].astype(np.int32))
    laser_ids = project(scan, get_sensor("vlp16").with_ring_numbering("laser_id"), fov_deg=360.0, width=1800)
    np.testing.assert_array_equal(laser_ids.rows, get_sensor("vlp16").laser_rows[scan.points["channel"]])


@pytest.mark.real_data
def test_uniform_rows_when_the_height_differs_from_the_beam_count(real_data: Path) -> None:
    scan = load(real_data / "semantickitti" / "000000.bin")
    proj = project(scan, fov_deg=360.0, width=1024, height=32)
    assert proj.row_source == "uniform"
    assert proj.image.shape == (32, 1024, 6)
    top, bottom = get_sensor("hdl64e").vertical_fov_deg
    xyz = scan.xyz.astype(np.float64)
    elevation = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    expected = np.clip(np.floor((top - elevation) / ((top - bottom) / 31) + 0.5), 0, 31)
    assert np.mean(proj.rows == expected) > 0.999  # rounding at bin edges (degrees here, radians inside)


@pytest.mark.real_data
def test_rings_from_scan_order_on_a_kitti_scan(real_data: Path) -> None:
    scan = load(real_data / "kitti_object" / "velodyne" / "000000.bin")
    rings = rings_from_scan_order(scan)
    assert rings[0] == 0
    assert rings[-1] == 63
    assert np.all(np.diff(rings) >= 0)
    proj = project(scan, fov_deg=360.0, width=2048, row_source="order")
    np.testing.assert_array_equal(proj.rows, rings)
    with pytest.raises(CloudFormatError, match="stored ring by ring"):
        project(np.random.default_rng(0).normal(size=(500, 3)), "hdl64e", row_source="order")


# -- invalid input -----------------------------------------------------------------------------


def test_nan_inf_and_zero_points_are_out_of_view() -> None:
    bad = np.array([[np.nan, 1, 1], [1, np.inf, 0], [0, 0, 0], [-np.inf, 0, 0]])
    xyz = np.vstack([_points_at([1.0]), bad, _points_at([2.0])])
    proj = project(xyz.astype(np.float32), "hdl64e")
    assert proj.in_view.tolist() == [True, False, False, False, False, True]
    assert proj.rows[1:5].tolist() == [-1] * 4
    assert proj.cols[1:5].tolist() == [-1] * 4
    assert (proj.owner >= 0).sum() == 2
    assert np.isfinite(proj.image).all()


def test_empty_cloud_gives_an_empty_image() -> None:
    proj = project(np.zeros((0, 4), dtype=np.float32), "hdl64e")
    assert proj.image.shape == (64, 512, 6)
    assert not proj.image.any()
    assert len(proj.rows) == 0
    assert np.all(proj.owner == -1)
    assert proj.labels_to_points(np.zeros((64, 512), dtype=np.int32)).shape == (0,)


def test_missing_intensity_leaves_the_channel_zero() -> None:
    proj = project(_points_at([0.0, 1.0]), "hdl64e")
    assert proj.image[..., 3].max() == 0.0
    assert proj.image[..., 5].sum() == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fov_deg": 0.0}, ProjectionError, r"fov_deg 0.0: expected a width in degrees in \[0.01, 360\]"),
        ({"fov_deg": 400}, ProjectionError, "fov_deg 400"),
        ({"fov_deg": (-45.0, 45.0)}, ProjectionError, "expected left > right"),
        ({"fov_deg": (10.0, float("nan"))}, ProjectionError, "fov_deg"),
        ({"fov_deg": "wide"}, ProjectionError, "fov_deg 'wide'"),
        ({"width": 0}, ProjectionError, "width 0: expected a positive integer"),
        ({"width": 2.5}, ProjectionError, "width 2.5"),
        ({"width": True}, ProjectionError, "width True"),
        ({"height": -1}, ProjectionError, "height -1"),
        ({"height": 32, "row_source": "table"}, ProjectionError, "height=32"),
        ({"row_source": "rings"}, ProjectionError, "row_source 'rings' is unknown"),
        ({"row_source": "ring"}, ProjectionError, "has no field ring / channel"),
        ({"backend": "cuda"}, ProjectionError, "backend 'cuda'"),
        ({"sensor": "hdl-65e"}, SensorError, "unknown sensor 'hdl-65e'; known sensors: hdl32e"),
        ({"sensor": None}, SensorError, "no sensor given"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs: dict, error: type[Exception], message: str) -> None:
    arguments = {"sensor": "hdl64e", **kwargs}
    with pytest.raises(error, match=message):
        project(_points_at([0.0]), **arguments)


def test_bad_points_raise_cloud_format_errors() -> None:
    with pytest.raises(CloudFormatError, match=r"shape \(4, 5\)"):
        project(np.zeros((4, 5)), "hdl64e")
    with pytest.raises(CloudFormatError, match="lack field"):
        project(np.zeros(3, dtype=[("x", "f4"), ("y", "f4")]), "hdl64e")


def test_ring_values_beyond_the_sensor_are_rejected() -> None:
    cloud = np.zeros(2, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("ring", "u2")])
    cloud["x"], cloud["ring"] = 5.0, [3, 40]
    with pytest.raises(SensorError, match=r"ring field 'ring' holds values 3..40 but vlp16 has 16 rings"):
        project(cloud, "vlp16")


# -- labels back to points ---------------------------------------------------------------------


@pytest.mark.real_data
def test_labels_flow_back_to_every_point(real_data: Path) -> None:
    scan = load(real_data / "semantickitti" / "000000.bin")
    assert scan.semantic is not None
    proj = project(scan, fov_deg=90.0, width=512)
    owner = proj.owner
    pixel_labels = np.where(owner >= 0, scan.semantic[np.maximum(owner, 0)], 0).astype(np.int32)
    labels = proj.labels_to_points(pixel_labels, fill=-1)
    assert np.all(labels[~proj.in_view] == -1)
    owners = owner[owner >= 0]
    np.testing.assert_array_equal(labels[owners], scan.semantic[owners])
    hidden = np.setdiff1d(np.flatnonzero(proj.in_view), owners)
    assert len(hidden) > 1000
    # a hidden point reads the pixel of the nearest owner in 3D: never farther than its own pixel's winner
    source = proj.source_pixels[hidden]
    chosen = owner.reshape(-1)[source]
    same_pixel = owner[proj.rows[hidden], proj.cols[hidden]]
    xyz = scan.xyz.astype(np.float64)
    d_chosen = np.linalg.norm(xyz[chosen] - xyz[hidden], axis=1)
    d_same = np.linalg.norm(xyz[same_pixel] - xyz[hidden], axis=1)
    assert np.all(d_chosen <= d_same + 1e-6)
    share = np.mean(labels[hidden] == scan.semantic[hidden])
    share_same = np.mean(scan.semantic[same_pixel] == scan.semantic[hidden])
    print(f"hidden points labelled right: {share:.4f} (nearest owner in 3D) vs {share_same:.4f} (pixel winner)")
    assert share > share_same
    assert share > 0.95


@pytest.mark.real_data
def test_pixel_values_follow_the_same_points_as_labels(real_data: Path) -> None:
    scan = load(real_data / "kitti_object" / "velodyne" / "000001.bin")
    proj = project(scan, fov_deg=90.0, width=512)
    probabilities = np.random.default_rng(1).random((64, 512, 4)).astype(np.float32)
    per_point = proj.pixel_values_to_points(probabilities, fill=np.nan)
    assert per_point.shape == (len(scan), 4)
    assert per_point.dtype == np.float32
    assert np.all(np.isnan(per_point[~proj.in_view]))
    labels = proj.labels_to_points(probabilities.argmax(axis=2), fill=-1)
    np.testing.assert_array_equal(per_point[proj.in_view].argmax(axis=1), labels[proj.in_view])
    small = proj.labels_to_points(probabilities.argmax(axis=2).astype(np.uint8), fill=-1)
    assert small.dtype == np.int16
    assert np.array_equal(small, labels)
    with pytest.raises(ProjectionError, match=r"expected an integer array of shape \(64, 512\)"):
        proj.labels_to_points(probabilities[..., 0])
    with pytest.raises(ProjectionError, match="pixel values of shape"):
        proj.pixel_values_to_points(probabilities[:32])


@pytest.mark.real_data
def test_normalize_per_channel(real_data: Path) -> None:
    image = project(load(real_data / "semantickitti" / "000000.bin"), fov_deg=90.0).image
    mean, std = [10.8, 0.0, -1.0, 0.25, 12.1], [11.5, 8.8, 0.8, 0.15, 12.3]
    out = normalize(image, mean, std)
    expected = (image[..., :5] - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    np.testing.assert_allclose(out[..., :5], expected, rtol=1e-6)
    np.testing.assert_array_equal(out[..., 5], image[..., 5])
    with pytest.raises(ProjectionError, match="stds positive"):
        normalize(image, mean, [1, 1, 0, 1, 1])
    with pytest.raises(ProjectionError, match="7 means"):
        normalize(image, [0] * 7, [1] * 7)


# -- fast path == reference --------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("path", "sensor", "kwargs"),
    [
        ("semantickitti/000000.bin", "hdl64e", {"fov_deg": 360.0, "width": 2048}),
        ("semantickitti/000000.bin", "hdl64e", {"fov_deg": 360.0, "width": 2048, "row_source": "order"}),
        ("kitti_object/velodyne/000002.bin", "hdl64e", {"fov_deg": 90.0, "width": 512}),
        ("kitti_sequence_pcd/0000000005.pcd", "hdl64e", {"fov_deg": (170.0, 10.0), "width": 700, "height": 48}),
        ("kitti_squeezeseg/2011_09_26_0001_0000000040.npy", "hdl64e", {"fov_deg": 90.0, "row_source": "table"}),
        ("vlp16/1673400472138016708.pcd", "vlp16", {"fov_deg": 360.0, "width": 1800}),
        ("vlp32/1713492677464078412.pcd", "vlp32c", {"fov_deg": 360.0, "width": 1800}),
    ],
)
def test_fast_path_equals_the_numpy_reference_on_real_scans(
    real_data: Path, path: str, sensor: str, kwargs: dict
) -> None:
    scan = load(real_data / path)
    _same(project(scan, sensor, **kwargs), project(scan, sensor, backend="numpy", **kwargs))


_coordinate = st.one_of(
    st.floats(-80.0, 80.0, width=32),
    st.sampled_from([0.0, -0.0, 1e-30, -1e-30, np.nan, np.inf, -np.inf]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    points=st.lists(st.tuples(_coordinate, _coordinate, _coordinate), min_size=0, max_size=300),
    sensor=st.sampled_from(list_sensors()),
    fov=st.one_of(st.sampled_from([90.0, 360.0, 1.0]), st.tuples(st.floats(-180, 180), st.floats(1, 360))),
    width=st.integers(1, 600),
)
def test_fast_path_equals_the_reference_on_random_clouds(
    points: list[tuple[float, float, float]], sensor: str, fov: float | tuple[float, float], width: int
) -> None:
    fov_deg = fov if isinstance(fov, float) else (fov[0], fov[0] - fov[1])
    xyz = np.array(points, dtype=np.float32).reshape(-1, 3)
    fast = project(xyz, sensor, fov_deg=fov_deg, width=width)
    _same(fast, project(xyz, sensor, fov_deg=fov_deg, width=width, backend="numpy"))


def test_fast_atan2_is_within_its_tolerance() -> None:
    rng = np.random.default_rng(7)
    samples = np.vstack([rng.normal(size=(20000, 2)), rng.normal(size=(2000, 2)) * 1e-20, [[0.0, -1.0], [-0.0, -1.0]]])
    exact = np.arctan2(samples[:, 0], samples[:, 1])
    approx = np.array([fast_atan2(y, x, _ATAN_COEFFICIENTS) for y, x in samples])
    assert np.abs(approx - exact).max() < 1e-7
    assert math.copysign(1.0, fast_atan2(-0.0, -1.0, _ATAN_COEFFICIENTS)) == -1.0  # atan2(-0, -1) = -pi


@pytest.mark.real_data
def test_projection_accepts_a_scan_and_plain_arrays_alike(real_data: Path) -> None:
    scan = load(real_data / "kitti_object" / "velodyne" / "000000.bin")
    as_array = np.column_stack([scan.xyz, scan.points["intensity"]])
    _same(project(scan), project(as_array, "hdl64e"))
    _same(project(Scan(points=scan.points, sensor="hdl64e")), project(scan.points, "hdl64e"))
