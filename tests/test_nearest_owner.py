"""Labels back to hidden points: the bounded image search finds the nearest pixel owner in 3D, as the k-d tree
over every owner does (kernels/nearest_owner.py), on real scans of every row rule and on hand-made hard cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from perception_ws.calib.sensors import load_sensor
from perception_ws.io import load
from perception_ws.kernels.nearest_owner import nearest_owners, nearest_owners_reference
from perception_ws.projection import Projection, project


def _hidden(projection: Projection) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the points that lost their pixel, and those pixels (flat)."""
    seen = np.flatnonzero(projection.in_view)
    pixel = projection.rows[seen].astype(np.int64) * projection.width + projection.cols[seen]
    lost = projection.owner.reshape(-1)[pixel] != seen
    return seen[lost], pixel[lost]


def _check_same_as_the_tree(projection: Projection) -> int:
    """The fast path's owner is the tree's, or (equal distances) one exactly as near; returns the hidden count."""
    hidden, pixels = _hidden(projection)
    left, right = projection.fov
    fast = nearest_owners(projection.xyz, hidden, pixels, projection.owner, math.radians(left - right))
    tree = nearest_owners_reference(projection.xyz, hidden, projection.owner)
    flat = projection.owner.reshape(-1)
    xyz = projection.xyz.astype(np.float64)
    d_fast = np.linalg.norm(xyz[flat[fast]] - xyz[hidden], axis=1)
    d_tree = np.linalg.norm(xyz[flat[tree]] - xyz[hidden], axis=1)
    np.testing.assert_allclose(d_fast, d_tree, rtol=0, atol=1e-9)
    assert np.mean(fast == tree) > 0.999  # other owners only at equal distances (rounded coordinates)
    assert (flat[fast] >= 0).all()
    return len(hidden)


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("relative", "fov", "width", "row_source"),
    [
        ("semantickitti/000000.bin", 360.0, 2048, "auto"),  # motion-compensated, the full turn
        ("kitti_object/velodyne/000001.bin", 90.0, 512, "auto"),  # the front view: columns do not wrap
        ("kitti_odometry_00/000094.bin", 360.0, 2048, "order"),  # rows from the storage order
        ("kitti_sequence_pcd/0000000003.pcd", 360.0, 1024, "auto"),  # coarser columns: many hidden points
        ("vlp32/", 360.0, 1024, "auto"),  # another sensor
    ],
)
def test_real_scans_get_the_owner_the_k_d_tree_finds(
    real_data: Path, relative: str, fov: float, width: int, row_source: str
) -> None:
    path = real_data / relative
    if path.is_dir():
        path = next(iter(sorted(path.glob("*.pcd"))))
    scan = load(path)
    sensor = scan.sensor or ("vlp32c" if "vlp32" in relative else "hdl64e")
    projection = project(scan, load_sensor(sensor), fov_deg=fov, width=width, row_source=row_source)  # type: ignore[arg-type]
    assert _check_same_as_the_tree(projection) > 500


def _cloud_projection(points: np.ndarray, width: int = 256, fov: float = 360.0) -> Projection:
    cloud = np.zeros(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4")])
    for i, axis in enumerate("xyz"):
        cloud[axis] = points[:, i]
    return project(cloud, load_sensor("hdl64e"), fov_deg=fov, width=width, row_source="uniform")


def test_a_pole_in_front_of_a_wall_sends_hidden_wall_points_to_the_wall() -> None:
    """Wall points behind a pole several pixels wide: their own pixel and its 8 neighbours are pole pixels 8 m
    nearer, so the first bound is wide, and the search must walk out to the wall beside the pole."""
    rng = np.random.default_rng(3)
    wall = np.column_stack([np.full(20000, 20.0), rng.uniform(-6, 6, 20000), rng.uniform(-1.5, 2.0, 20000)])
    pole = np.column_stack([np.full(3000, 12.0) + rng.uniform(0, 0.3, 3000), rng.uniform(-0.4, 0.4, 3000)])
    pole = np.column_stack([pole, rng.uniform(-1.5, 2.0, 3000)])
    projection = _cloud_projection(np.vstack([wall, pole]), width=1024)
    hidden, _ = _hidden(projection)
    assert (hidden < len(wall)).sum() > 100  # wall points hidden behind the pole
    _check_same_as_the_tree(projection)


def test_points_around_the_sensor_axis_search_every_owner() -> None:
    """Points almost straight above the sensor: no azimuth bound exists (d >= the horizontal range)."""
    rng = np.random.default_rng(5)
    near_axis = np.column_stack([rng.normal(0, 0.05, 4000), rng.normal(0, 0.05, 4000), rng.uniform(1.0, 3.0, 4000)])
    around = np.column_stack([rng.uniform(-10, 10, 6000), rng.uniform(-10, 10, 6000), rng.uniform(-2, 0.5, 6000)])
    projection = _cloud_projection(np.vstack([near_axis, around]), width=64)
    assert len(_hidden(projection)[0]) > 1000
    _check_same_as_the_tree(projection)


def test_source_pixels_use_the_search() -> None:
    """Projection.source_pixels: an owner reads its own pixel; a hidden point the nearest owner's."""
    rng = np.random.default_rng(9)
    points = np.column_stack([rng.uniform(-30, 30, 30000), rng.uniform(-30, 30, 30000), rng.uniform(-2, 1, 30000)])
    projection = _cloud_projection(points, width=128)
    hidden, _ = _hidden(projection)
    expected = nearest_owners_reference(projection.xyz, hidden, projection.owner)
    source = projection.source_pixels
    np.testing.assert_array_equal(source[hidden], expected)
    owners = projection.owner.reshape(-1)
    owned = np.flatnonzero(owners >= 0)
    np.testing.assert_array_equal(source[owners[owned]], owned)


def test_a_point_with_no_owner_near_it_is_left_to_the_tree() -> None:
    """Points with a second one 20 m behind them in their pixel, and a pole filling every row a quarter turn away:
    no owner lies near the hidden points while every row may hold one, so their search would sweep a third of the
    image; past SEARCH_BUDGET pixels the tree answers them."""
    from perception_ws.kernels import nearest_owner

    heights = np.linspace(-4.5, 0.3, 64) + np.random.default_rng(1).uniform(0, 0.01, 64)  # uneven: no equal distances
    pole = np.column_stack([np.full(64, 10.0), np.zeros(64), heights])
    azimuth = np.radians(np.linspace(80.0, 100.0, 20))
    near = np.column_stack([10 * np.cos(azimuth), 10 * np.sin(azimuth), np.full(20, -1.0)])
    projection = _cloud_projection(np.vstack([pole, near, near * 3.0]), width=4096)
    hidden, pixels = _hidden(projection)
    far = hidden >= 64 + 20  # the points behind the 20 (a few pole points also share rows)
    assert far.sum() == 20
    low, high = nearest_owner._row_tan_bounds(projection.xyz, projection.owner)
    pitch = 2 * math.pi / projection.width
    raw = nearest_owner._nearest_owners(
        projection.xyz, hidden, pixels, projection.owner, low, high, pitch, True, nearest_owner.SEARCH_BUDGET
    )
    assert (raw[far] < 0).all()  # every one of them outgrew the budget
    _check_same_as_the_tree(projection)  # and the public call still gives the tree's owners
