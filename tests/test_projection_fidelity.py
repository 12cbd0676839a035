"""Fidelity of the projection on real scans: do its rows and columns reproduce the sensor's own?

* SqueezeSeg's KITTI frames store every return at its (ring, azimuth bin) pixel: re-projecting the
  points must land them in the same pixel (rows from the fitted HDL-64E table, not from the file).
* KITTI ``.bin`` scans store points ring by ring, so the storage order gives every point's ring
  (:func:`rings_from_scan_order`); the beam table must give the same rows. The KITTI object frames
  are raw scans. The odometry frames (and SemanticKITTI, which reuses them) were motion-compensated
  by their publishers: each point was moved by the car's motion during the sweep (up to ~0.9 m),
  which tilts elevations by up to ~0.7 deg, more than half the beam spacing. For those the test
  first estimates that motion (a constant-velocity twist, 12 parameters, linear least squares on
  the ring residuals), undoes it, and then compares.
* VLP-16: the ``channel`` field against the VLP-16 table; VLP-32C (x, y, z only): one laser per row.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from perception_ws.calib.sensors import SensorModel, get_sensor
from perception_ws.io import load
from perception_ws.projection import project, rings_from_scan_order

pytestmark = pytest.mark.real_data

REPO = Path(__file__).resolve().parents[1]
SHARE = 0.995


def _fit_script() -> ModuleType:
    """scripts/fit_hdl64e.py as a module (registered, so its dataclasses resolve their module)."""
    spec = importlib.util.spec_from_file_location("fit_hdl64e", REPO / "scripts" / "fit_hdl64e.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _squeezeseg_paths(real_data: Path) -> list[Path]:
    paths = sorted((real_data / "kitti_squeezeseg").glob("*.npy"))
    assert len(paths) == 4
    return paths


def _same_pixel_share(xyz: np.ndarray, rows: np.ndarray, cols: np.ndarray, sensor: SensorModel) -> float:
    proj = project(xyz, sensor, fov_deg=90.0, width=512, row_source="table")
    return float(np.mean((proj.rows == rows) & (proj.cols == cols)))


def test_squeezeseg_frames_reproject_into_their_own_pixels(real_data: Path) -> None:
    for path in _squeezeseg_paths(real_data):
        scan = load(path)
        assert scan.pixels is not None
        share = _same_pixel_share(scan.xyz, scan.pixels[:, 0], scan.pixels[:, 1], get_sensor("hdl64e"))
        print(f"{path.name}: same row and column for {share:.5f} of {len(scan)} pixels")
        assert share >= SHARE


def test_shipped_hdl64e_table_is_the_fit_of_the_squeezeseg_frames(real_data: Path) -> None:
    fits = _fit_script().fit_table([np.load(p) for p in _squeezeseg_paths(real_data)])
    hdl = get_sensor("hdl64e")
    np.testing.assert_allclose(hdl.elevations_deg, [f.elevation_deg for f in fits], atol=0.6e-4)
    np.testing.assert_allclose(hdl.beam_heights_m, [f.height_m for f in fits], atol=0.6e-4)


@pytest.mark.parametrize(("fit_on", "check_on"), [((0, 2), (1, 3)), ((1, 3), (0, 2))])
def test_hdl64e_fit_generalises_to_held_out_frames(
    real_data: Path, fit_on: tuple[int, int], check_on: tuple[int, int]
) -> None:
    frames = [np.load(p) for p in _squeezeseg_paths(real_data)]
    fits = _fit_script().fit_table([frames[i] for i in fit_on])
    model = SensorModel.from_table(
        "held-out", [f.elevation_deg for f in fits], 0.18, vertical_offsets_m=[f.height_m for f in fits]
    )
    for i in check_on:
        valid = frames[i][:, :, 4] > 0
        rows, cols = np.nonzero(valid)
        share = _same_pixel_share(frames[i][valid][:, :3], rows, cols, model)
        print(f"fit on frames {fit_on}, frame {i}: same row and column for {share:.5f}")
        assert share >= SHARE


def _ring_agreement(xyz: np.ndarray, rings: np.ndarray) -> tuple[float, float]:
    """(share over the full turn, share in the front 90 deg) of table rows equal to the given rings."""
    proj = project(xyz, "hdl64e", fov_deg=360.0, width=2048, row_source="table")
    front = np.abs(np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))) <= 45.0
    same = proj.rows == rings
    return float(same.mean()), float(same[front].mean())


def test_beam_table_rows_match_the_firing_order_of_raw_kitti_scans(real_data: Path) -> None:
    paths = sorted((real_data / "kitti_object" / "velodyne").glob("*.bin"))
    assert len(paths) == 3
    for path in paths:
        scan = load(path)
        rings = rings_from_scan_order(scan)
        assert rings.max() + 1 == 64, "a raw KITTI scan holds 64 rings, top ring first"
        full, front = _ring_agreement(scan.xyz, rings)
        print(f"{path.name}: table row == storage-order ring for {full:.5f} (360 deg), {front:.5f} (front 90 deg)")
        assert full >= SHARE
        assert front >= SHARE


def _undo_motion_compensation(xyz: np.ndarray, rings: np.ndarray, sensor: SensorModel) -> np.ndarray:
    """Estimate and remove a constant-velocity motion applied over the sweep (test-only analysis).

    Model: point p at sweep time s in [0, 1) (the sweep starts and ends behind the car) was moved by
    the small rotation w0 + s w1 and translation t0 + s t1. The residual of p on its ring's beam line,
    ``z - h - rho tan(e)``, is linear in those 12 numbers to first order; a least-squares fit with two
    rounds of outlier rejection gives them, and the inverse displacement is applied.
    """
    p = xyz.astype(np.float64)
    x, y, z = p.T
    rho = np.hypot(x, y)
    s = (np.arctan2(y, x) + np.pi) / (2.0 * np.pi)
    tan_e = np.tan(np.radians(sensor.elevations_deg))[rings]
    residual = z - sensor.beam_heights_m[rings] - rho * tan_e
    ux, uy, zero, one = x / rho, y / rho, np.zeros_like(x), np.ones_like(x)
    # d(residual) for a rotation w (dp = w x p) and a translation t (dp = t), per component
    d_rot = np.stack([y, -x, zero]) - tan_e * (ux * np.stack([zero, z, -y]) + uy * np.stack([-z, zero, x]))
    d_move = np.stack([-tan_e * ux, -tan_e * uy, one])
    jacobian = np.concatenate([d_rot, d_move, d_rot * s, d_move * s]).T
    keep = rho > 2.0
    for _ in range(3):
        theta, *_ = np.linalg.lstsq(jacobian[keep], -residual[keep], rcond=None)
        angular = np.abs(residual + jacobian @ theta) / rho
        keep = (rho > 2.0) & (angular < 5.0 * 1.4826 * np.median(angular[rho > 2.0]) + 1e-4)
    rotation = theta[0:3] + s[:, None] * theta[6:9]
    translation = theta[3:6] + s[:, None] * theta[9:12]
    return p + np.cross(rotation, p) + translation


@pytest.mark.parametrize(
    "name",
    [
        "kitti_odometry_00/000094.bin",
        "kitti_odometry_00/000095.bin",
        "kitti_odometry_00/000198.bin",
        "kitti_odometry_00/000199.bin",
        "semantickitti/000000.bin",
    ],
)
def test_beam_table_rows_match_the_firing_order_of_motion_compensated_kitti_scans(real_data: Path, name: str) -> None:
    scan = load(real_data / name)
    rings = rings_from_scan_order(scan)
    assert rings.max() + 1 == 64
    raw_full, raw_front = _ring_agreement(scan.xyz, rings)
    full, front = _ring_agreement(_undo_motion_compensation(scan.xyz, rings, get_sensor("hdl64e")), rings)
    print(
        f"{name}: table row == ring for {raw_full:.5f} / {raw_front:.5f} (360 / front) as published, "
        f"{full:.5f} / {front:.5f} once the motion compensation is undone"
    )
    assert full >= SHARE
    assert front >= SHARE


def test_vlp16_channel_rows_match_the_beam_table(real_data: Path) -> None:
    scan = load(next((real_data / "vlp16").glob("*.pcd")))
    by_channel = project(scan, "vlp16", fov_deg=360.0, width=1800)
    assert by_channel.row_source == "ring"  # the sample's `channel` field, bottom beam = 0
    by_table = project(scan, "vlp16", fov_deg=360.0, width=1800, row_source="table")
    both = by_channel.in_view & by_table.in_view
    share = float(np.mean(by_channel.rows[both] == by_table.rows[both]))
    print(f"vlp16: channel row == table row for {share:.5f} of {both.sum()} points")
    assert both.sum() == len(scan)
    assert share >= SHARE


def test_vlp32c_rows_each_hold_one_laser(real_data: Path) -> None:
    """Every row's elevations form a band within 0.05 deg of that row's table elevation, every row is
    occupied, and consecutive bands are at least 0.2 deg apart (more than half the VLP-32C's smallest
    beam spacing, 0.333 deg): no row mixes two lasers, no laser is split over two rows."""
    scan = load(next((real_data / "vlp32").glob("*.pcd")))
    sensor = get_sensor("vlp32c")
    proj = project(scan, sensor, fov_deg=360.0, width=1800)
    assert proj.row_source == "table"
    assert proj.in_view.all()
    xyz = scan.xyz.astype(np.float64)
    elevation = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    bands = np.array([[elevation[proj.rows == r].min(), elevation[proj.rows == r].max()] for r in range(32)])
    assert np.all(np.abs(bands - sensor.elevations_deg[:, None]) <= 0.05)
    gaps = bands[:-1, 0] - bands[1:, 1]  # bottom of row r minus top of row r + 1
    print(f"vlp32c: widest band {np.ptp(bands, axis=1).max():.4f} deg, narrowest gap {gaps.min():.4f} deg")
    assert gaps.min() >= 0.2
