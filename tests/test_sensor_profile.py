"""The sensor profile from unlabelled real scans (docs/algorithms.md §5), and nuScenes .bin detection.

Tolerances come from measurements on the real samples (docs/algorithms.md §5 has the numbers): seeded by
the shipped HDL-64E table, the table refitted on the KITTI PCD sequence differs from it by 0.0004 deg in
the median and 0.012 deg at most; the VLP-16 channel fit matches the datasheet to 1e-4 deg.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.adapt.sensor_profile import SENSOR_YAML, SensorProfile, estimate_profile, main
from perception_ws.calib.sensors import get_sensor, load_sensor
from perception_ws.errors import DatasetError, SensorError
from perception_ws.io import load, open_dataset
from perception_ws.io.kitti import NUSCENES_DTYPE, POINT_DTYPE, read_velodyne_bin
from perception_ws.projection import project, rings_from_scan_order
from perception_ws.scan import Scan

KITTI_HEIGHT_M = 1.73  # the Velodyne's height above the road on the KITTI car (Geiger et al. 2013)


def _scans(path: Path, frames: int) -> list[Scan]:
    dataset = open_dataset(path)
    return [dataset[i] for i in range(min(frames, len(dataset)))]


def _vlp16(real: Path) -> list[Scan]:
    return _scans(real / "vlp16" / "1673400472138016708.pcd", 1)


def _vlp32(real: Path) -> list[Scan]:
    return _scans(real / "vlp32" / "1713492677464078412.pcd", 1)


@pytest.mark.real_data
def test_hdl64e_profile_from_the_kitti_pcd_sequence(real_data: Path) -> None:
    profile = estimate_profile(_scans(real_data / "kitti_sequence_pcd", 6), get_sensor("hdl64e"))
    error = np.abs(profile.sensor.elevations_deg - get_sensor("hdl64e").elevations_deg)
    assert profile.sensor.height == 64
    assert np.median(error) < 0.01
    assert error.max() < 0.05
    assert abs(profile.mounting.height_m - KITTI_HEIGHT_M) < 0.05
    assert profile.intensity.kind == "0..1"
    assert profile.intensity.scale == 1.0
    assert profile.dropout.rows == 64
    assert 0.0 < float(profile.dropout.empty.mean()) < 0.5
    assert profile.provenance["beam_table"] == "elevations (seeded by hdl64e)"


@pytest.mark.real_data
def test_vlp16_table_from_its_channel_field(real_data: Path) -> None:
    profile = estimate_profile(_vlp16(real_data))  # no sensor named: everything from the data
    shipped = get_sensor("vlp16")
    assert profile.sensor.height == 16
    assert np.abs(profile.sensor.elevations_deg - shipped.elevations_deg).max() < 0.01
    # channel 0 (the lowest beam) holds no return in this scan: its elevation is extended from the others
    assert profile.provenance["filled_beams"] == ["ring 0: interpolated"]
    assert profile.provenance["beam_table"] == "ring field 'channel'"
    assert profile.intensity.kind == "0..255"
    # the fitted table puts every return on the row the shipped table gives it
    scan = _vlp16(real_data)[0]
    rows = project(scan, profile.sensor, fov_deg=360.0, width=1800).rows
    assert np.array_equal(rows, project(scan, shipped, fov_deg=360.0, width=1800).rows)


@pytest.mark.real_data
def test_vlp32c_beams_from_elevations_and_no_intensity(real_data: Path) -> None:
    shipped = get_sensor("vlp32c")
    seeded = estimate_profile(_vlp32(real_data), shipped)
    assert seeded.sensor.height == 32
    assert np.median(np.abs(seeded.sensor.elevations_deg - shipped.elevations_deg)) < 0.01
    assert seeded.intensity.kind == "absent"
    assert seeded.intensity.scale == 0.0
    peaks = estimate_profile(_vlp32(real_data), beams=32)  # no datasheet: histogram peaks only
    assert peaks.sensor.height == 32
    assert peaks.provenance["beam_table"] == "elevations (histogram peaks)"
    assert np.abs(peaks.sensor.elevations_deg - shipped.elevations_deg).max() < 0.05


@pytest.mark.real_data
def test_profile_round_trip_and_sensor_yaml(real_data: Path, tmp_path: Path) -> None:
    profile = estimate_profile(_vlp16(real_data), source="vlp16")
    back = SensorProfile.load(profile.save(tmp_path))
    assert back.to_json() == profile.to_json()
    assert np.array_equal(back.dropout.empty, profile.dropout.empty)
    from_yaml = load_sensor(tmp_path / SENSOR_YAML)  # what the node's sensor.model parameter loads
    assert np.allclose(from_yaml.elevations_deg, profile.sensor.elevations_deg, atol=1e-4)
    assert np.array_equal(from_yaml.ring_to_row, profile.sensor.ring_to_row)


@pytest.mark.real_data
def test_command_writes_the_three_files(real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = real_data / "vlp16" / "1673400472138016708.pcd"
    assert main(["--target", str(target), "--sensor", "vlp16", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"profile.json", "sensor.yaml", "dropout.npz"}
    assert "16 beams" in capsys.readouterr().out
    assert main(["--target", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2


@pytest.mark.real_data
def test_the_field_of_view_the_scans_hold_and_the_node_view_it_suggests(real_data: Path, tmp_path: Path) -> None:
    import json

    from perception_ws.adapt.report import _view

    full = estimate_profile(_scans(real_data / "kitti_sequence_pcd", 3), get_sensor("hdl64e"))
    assert full.coverage.fov_deg == 360.0
    front = estimate_profile(_vlp32(real_data), get_sensor("vlp32c"))  # its driver kept the front half-turn
    assert front.coverage.fov_deg == 190.0
    assert "within +-91.5 deg of +x" in front.coverage.note
    assert SensorProfile.load(front.save(tmp_path / "profile")).coverage == front.coverage
    # what `perception adapt` reports for the node: that sector, at the sensor's own column pitch
    assert _view(tmp_path) == {"sensor.fov_deg": 190.0, "sensor.width": 950}
    full.save(tmp_path / "full" / "profile")
    assert _view(tmp_path / "full") == {}
    # a profile saved before the field of view was measured loads as the whole turn
    saved = json.loads((tmp_path / "profile" / "profile.json").read_text())
    del saved["coverage"]
    (tmp_path / "profile" / "profile.json").write_text(json.dumps(saved))
    assert SensorProfile.load(tmp_path / "profile").coverage.fov_deg == 360.0


@pytest.mark.real_data
def test_bad_input_fails_with_one_line(real_data: Path) -> None:
    with pytest.raises(DatasetError, match="holds no scans"):
        estimate_profile([])
    empty = Scan(points=np.zeros(0, dtype=POINT_DTYPE), name="empty")
    with pytest.raises(DatasetError, match="hold no points"):
        estimate_profile([empty])
    with pytest.raises(SensorError, match=r"16 rings\) but sensor hdl64e has 64 beams"):
        estimate_profile(_vlp16(real_data), get_sensor("hdl64e"))
    with pytest.raises(SensorError, match="32 beams asked for but sensor vlp16 has 16"):
        estimate_profile(_vlp32(real_data), get_sensor("vlp16"), beams=32)


# -- nuScenes .bin ------------------------------------------------------------------------------


def _as_nuscenes(kitti_bin: Path, out: Path) -> np.ndarray:
    """A real KITTI scan rewritten in nuScenes' layout: intensity 0..255 and an integral ring column."""
    points = read_velodyne_bin(kitti_bin)
    five = np.zeros(len(points), dtype=NUSCENES_DTYPE)
    for name in ("x", "y", "z"):
        five[name] = points[name]
    five["intensity"] = np.round(points["intensity"] * 255.0)
    five["ring"] = rings_from_scan_order(points)
    five.tofile(out)
    return five


@pytest.mark.real_data
def test_nuscenes_bin_is_read_as_five_floats(real_data: Path, tmp_path: Path) -> None:
    written = _as_nuscenes(real_data / "kitti_odometry_00" / "000094.bin", tmp_path / "nuscenes.bin")
    scan = load(tmp_path / "nuscenes.bin")
    assert scan.points.dtype == NUSCENES_DTYPE
    assert len(scan.points) == len(written)
    assert np.array_equal(scan.points["ring"], written["ring"])
    assert np.array_equal(scan.points["x"], written["x"])
    assert scan.sensor is None  # its ring field, not KITTI's sensor, gives the rows


@pytest.mark.real_data
def test_real_kitti_bins_still_read_as_four_floats(real_data: Path) -> None:
    files = sorted(real_data.glob("*/*.bin")) + sorted(real_data.glob("*/velodyne/*.bin"))
    assert len(files) >= 8
    for path in files:
        points = read_velodyne_bin(path)
        assert points.dtype == POINT_DTYPE
        assert len(points) * 16 == path.stat().st_size


def test_a_bin_that_fits_both_layouts_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    five = np.zeros(400, dtype=NUSCENES_DTYPE)  # 400 points: 8000 bytes, a multiple of 16 and of 20
    for name in ("x", "y", "z"):
        five[name] = rng.uniform(0.5, 20.0, len(five))  # all positive: no negative "reflectance" either way
    five["intensity"] = rng.integers(0, 255, len(five))
    five["ring"] = rng.integers(0, 32, len(five))
    path = tmp_path / "both.bin"
    five.tofile(path)
    with pytest.raises(DatasetError, match=r"both\.bin: ambiguous \.bin layout"):
        read_velodyne_bin(path)
