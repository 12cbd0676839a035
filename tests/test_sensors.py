"""Sensor models: built-in beam tables, name lookup, user YAML validation, ring numbering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.calib.sensors import SensorModel, get_sensor, list_sensors, load_sensor
from perception_ws.errors import SensorError

BUILT_IN = ["hdl32e", "hdl64e", "os1-128", "os1-64", "vlp16", "vlp32c", "vls128"]


def test_list_sensors_names_every_built_in_table() -> None:
    assert list_sensors() == BUILT_IN


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_tables_are_consistent(name: str) -> None:
    sensor = get_sensor(name)
    assert sensor.name == name
    assert sensor.source, "every built-in table cites its source document"
    assert np.all(np.diff(sensor.elevations_deg) < 0), "rows run from the highest beam down"
    assert sorted(sensor.laser_rows.tolist()) == list(range(sensor.height))
    assert sorted(sensor.ring_to_row.tolist()) == list(range(sensor.height))
    assert sensor.beam_heights_m.shape == sensor.elevations_deg.shape
    assert not sensor.elevations_deg.flags.writeable


def test_datasheet_facts() -> None:
    vlp16 = get_sensor("vlp16")
    np.testing.assert_array_equal(vlp16.elevations_deg, np.arange(15, -16, -2))
    # VLP-16 laser ids interleave: id 0 fires at -15 deg, id 1 at +1 deg
    assert vlp16.elevations_deg[vlp16.laser_rows[0]] == -15
    assert vlp16.elevations_deg[vlp16.laser_rows[1]] == 1
    assert (get_sensor("hdl32e").height, get_sensor("vlp32c").height, get_sensor("vls128").height) == (32, 32, 128)
    assert get_sensor("hdl32e").vertical_fov_deg == (10.67, -30.67)
    assert get_sensor("vlp32c").vertical_fov_deg == (15.0, -25.0)
    assert get_sensor("vls128").vertical_fov_deg == (15.0, -25.0)
    assert get_sensor("os1-64").vertical_fov_deg == (16.6, -16.6)
    assert get_sensor("os1-128").vertical_fov_deg == (22.5, -22.5)
    assert get_sensor("os1-64").columns_per_turn == 1024


def test_hdl64e_has_two_laser_blocks_at_different_heights() -> None:
    hdl = get_sensor("hdl64e")
    assert hdl.height == 64
    assert hdl.has_beam_heights
    upper, lower = hdl.beam_heights_m[:32], hdl.beam_heights_m[32:]
    assert upper.min() - lower.max() > 0.05, "the upper block's origins sit several cm above the lower block's"
    assert not get_sensor("vlp16").has_beam_heights


@pytest.mark.parametrize("spelling", ["OS1-64", "os1_64", "Os1 64", "os164"])
def test_get_sensor_ignores_case_and_separators(spelling: str) -> None:
    assert get_sensor(spelling).name == "os1-64"
    assert get_sensor("HDL-64E") is get_sensor("hdl64e")


def test_unknown_sensor_lists_the_known_ones() -> None:
    with pytest.raises(SensorError, match="unknown sensor 'hdl-128'") as err:
        get_sensor("hdl-128")
    for name in BUILT_IN:
        assert name in str(err.value)


def test_ring_numbering_maps_field_values_to_rows() -> None:
    vlp16 = get_sensor("vlp16")
    assert vlp16.ring_numbering == "bottom_up"
    assert vlp16.ring_to_row[0] == 15
    assert vlp16.ring_to_row[15] == 0
    by_laser = vlp16.with_ring_numbering("laser_id")
    assert by_laser.ring_to_row[1] == vlp16.laser_rows[1] == 7  # laser 1 (+1 deg) is row 7 of 16
    assert vlp16.with_ring_numbering("top_down").ring_to_row[0] == 0
    with pytest.raises(SensorError, match="ring numbering 'sideways'"):
        vlp16.with_ring_numbering("sideways")


def test_user_yaml_sensor(tmp_path: Path) -> None:
    path = tmp_path / "my_lidar.yaml"
    path.write_text("elevations_deg: [-10, 10, 0]\ncolumns_per_turn: 900\nring_numbering: laser_id\n")
    sensor = load_sensor(path)
    assert sensor.name == "my_lidar"
    np.testing.assert_array_equal(sensor.elevations_deg, [10, 0, -10])
    assert sensor.azimuth_resolution_deg == pytest.approx(0.4)
    assert sensor.ring_to_row.tolist() == [2, 0, 1]
    assert load_sensor("vlp16") is get_sensor("vlp16")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("azimuth_resolution_deg: 0.2\n", "missing key.*'elevations_deg'"),
        ("elevation_deg: [1, 2]\nazimuth_resolution_deg: 0.2\n", "unknown key.*'elevation_deg'"),
        ("elevations_deg: [1, x]\nazimuth_resolution_deg: 0.2\n", "'elevations_deg' must hold numbers"),
        ("elevations_deg: 5\nazimuth_resolution_deg: 0.2\n", "'elevations_deg' must be a list"),
        ("elevations_deg: [1, 1, 0]\nazimuth_resolution_deg: 0.2\n", "more than once"),
        ("elevations_deg: [1, 95]\nazimuth_resolution_deg: 0.2\n", "between -90 and 90"),
        ("elevations_deg: [1, 0]\n", "exactly one of 'azimuth_resolution_deg' or 'columns_per_turn'"),
        ("elevations_deg: [1, 0]\nazimuth_resolution_deg: -1\n", "'azimuth_resolution_deg' must be a positive"),
        ("elevations_deg: [1, 0]\ncolumns_per_turn: 10.5\n", "'columns_per_turn' must be a positive integer"),
        ("elevations_deg: [1, 0]\ncolumns_per_turn: 10\nvertical_offsets_m: [0.1]\n", "'vertical_offsets_m' has 1"),
        ("elevations_deg: [1, 0]\ncolumns_per_turn: 10\nring_numbering: up\n", "'ring_numbering' is 'up'"),
        ("elevations_deg: [1, 0]\ncolumns_per_turn: 10\nrate_hz: fast\n", "'rate_hz' must be a number"),
        ("- just\n- a list\n", "expected a mapping"),
        ("elevations_deg: [1, 0\n", "not valid YAML"),
    ],
)
def test_bad_user_yaml_names_the_bad_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SensorError, match=message) as err:
        load_sensor(path)
    assert str(path) in str(err.value)


def test_missing_sensor_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match="cannot read sensor file"):
        load_sensor(tmp_path / "absent.yaml")


def test_from_table_sorts_laser_ids_into_rows() -> None:
    sensor = SensorModel.from_table("t", [-1.0, 3.0, 1.0], 1.0, vertical_offsets_m=[0.1, 0.3, 0.2])
    np.testing.assert_array_equal(sensor.elevations_deg, [3.0, 1.0, -1.0])
    np.testing.assert_array_equal(sensor.beam_heights_m, [0.3, 0.2, 0.1])
    assert sensor.laser_rows.tolist() == [2, 0, 1]
