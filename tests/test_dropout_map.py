"""The measured dropout map counts sensor dropout (holes), not rays that hit nothing (docs/algorithms.md §5).

Bounds come from measurements on the real samples (2026-12-07, docs/algorithms.md §5 has the numbers): the
HDL-64E map is 16.4 % empty but 5.5 % holes; a simulated VLP-16 sweep of the one-scan profile keeps 73 % of
its points under ``dropout: measured`` (38 % before holes were measured).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.adapt.sensor_profile import estimate_profile
from perception_ws.errors import DatasetError
from perception_ws.io import open_dataset
from perception_ws.io.kitti import POINT_DTYPE
from perception_ws.scan import Scan
from perception_ws.sim.dataset import make_lidar
from perception_ws.sim.realism.dropout_map import OLD_FORMAT_NOTE, DropoutMap, measure, measure_folder
from perception_ws.sim.realism.holes import expected_returns
from perception_ws.sim.realism.real_views import RangeView
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.world.generator import SceneConfig, generate_scene

ROWS, COLUMNS, SKY_ROWS = 16, 2048, 5  # 2048: left and right neighbours lie within 1 degree


def _view(ranges: np.ndarray, name: str = "synthetic") -> RangeView:
    empty_scan = Scan(points=np.zeros(0, dtype=POINT_DTYPE), name=name)
    return RangeView(name, ranges.astype(np.float32), np.ones(ranges.shape[1], dtype=bool), empty_scan)


def _street_with_sky(holes: list[tuple[int, int]]) -> np.ndarray:
    """Top rows sky (empty), the rest a surface 10 m away, with the given pixels lost."""
    ranges = np.full((ROWS, COLUMNS), 10.0)
    ranges[:SKY_ROWS] = 0.0
    for row, column in holes:
        ranges[row, column] = 0.0
    return ranges


def test_sky_is_not_expected_and_isolated_holes_are() -> None:
    holes = [(8, 40), (10, 100), (12, 200), (SKY_ROWS, 60)]  # the last on the sky's edge: left and right say so
    expected = expected_returns(_street_with_sky(holes), np.ones(COLUMNS, dtype=bool))
    assert not expected[: SKY_ROWS - 1].any()  # sky has no neighbours to expect a return by
    assert all(expected[row, column] for row, column in holes)
    # measured on 4 such frames: the sky rows are all empty, yet their holes are the surface rows' rate
    view = _view(_street_with_sky(holes))
    result = measure([view] * 4, "synthetic", sector_columns=16)
    assert result.holes is not None
    assert result.expected is not None
    assert np.all(result.empty[: SKY_ROWS - 1] == 1.0)
    assert np.all(result.holes[: SKY_ROWS - 1] == 0.0)  # no holes in most cells: the median is 0
    assert np.all(result.expected[: SKY_ROWS - 1] == 0)
    assert result.holes[8, 40 // 16] == pytest.approx(1 / 16)  # one pixel of a 16-column sector, every frame
    assert result.holes[8].sum() == pytest.approx(1 / 16)  # and nothing elsewhere in that row


def test_a_gap_between_near_and_far_objects_and_skipped_columns_are_not_holes() -> None:
    ranges = np.full((ROWS, COLUMNS), 10.0)
    ranges[:, 50] = 4.0  # a pole in front of a wall ...
    ranges[:, 51] = 0.0  # ... and the ray beside it found nothing in its left neighbour's range
    ranges[:, 52] = 25.0
    ranges[:, ::8] = 0.0  # a sensor firing coarser than the columns leaves whole columns empty
    expected = expected_returns(ranges, np.ones(COLUMNS, dtype=bool))
    assert not expected[:, 51].any()
    assert not expected[:, ::8].any()
    result = measure([_view(ranges)], "synthetic", sector_columns=16)
    assert result.holes is not None
    assert float(result.holes.max()) == 0.0
    assert float(result.empty.mean()) > 0.12


@pytest.mark.real_data
def test_hdl64e_holes_are_fewer_than_empty_pixels_and_the_shipped_map_is_current(real_data: Path) -> None:
    measured = measure_folder(real_data)
    assert measured.holes is not None
    assert np.all(measured.holes <= measured.empty)
    # measured: empty 0.164, holes 0.055 on the 24 HDL-64E frames
    assert float(measured.empty.mean()) > 0.12
    assert float(measured.holes.mean()) < 0.08
    shipped = DropoutMap.load()
    assert shipped.holes is not None
    np.testing.assert_allclose(shipped.holes, measured.holes, atol=1e-6)
    np.testing.assert_allclose(shipped.empty, measured.empty, atol=1e-6)


@pytest.mark.real_data
def test_the_vlp16_profile_keeps_most_points_of_a_simulated_sweep(real_data: Path, tmp_path: Path) -> None:
    scan = open_dataset(real_data / "vlp16" / "1673400472138016708.pcd")[0]
    profile = estimate_profile([scan])
    assert profile.dropout.holes is not None
    # measured: 55 % of the scan's pixels empty, 3 % holes; every cell's holes at most its empty share
    assert float(profile.dropout.empty.mean()) > 0.45
    assert float(profile.dropout.holes.mean()) < 0.08
    assert np.all(profile.dropout.holes <= profile.dropout.empty)
    folder = profile.save(tmp_path / "vlp16")
    scene = generate_scene(3, SceneConfig())
    caster = make_raycaster(scene.soup)
    plain = len(make_lidar(str(folder), 2048, "none", "off").scan(scene, caster, seed=1))
    kept = len(make_lidar(str(folder), 2048, "measured", "off").scan(scene, caster, seed=1))
    # measured 0.73 over 6 sweeps (the 4 lowest beams lie in the recording platform's shadow); 0.38 before
    assert 0.6 < kept / plain < 0.85


def test_an_old_map_without_holes_loads_and_drops_as_before(tmp_path: Path) -> None:
    empty = np.linspace(0.0, 0.5, 8 * 4, dtype=np.float32).reshape(8, 4)
    path = tmp_path / "old.npz"
    np.savez_compressed(
        path, empty=empty, samples=np.full((8, 4), 100, np.int32), meta=np.array('{"sensor": "x", "note": "then"}')
    )
    old = DropoutMap.load(path)
    assert old.holes is None
    assert old.note == f"then {OLD_FORMAT_NOTE}"
    np.testing.assert_array_equal(old.sensor_holes, empty)
    np.testing.assert_allclose(old.measured_dropout(np.full(8, -20.0)).probability, empty)
    old.save(tmp_path / "again.npz")  # saved again, still without holes
    assert DropoutMap.load(tmp_path / "again.npz").holes is None


def test_measured_dropout_is_holes_and_the_cars_shadow_in_one_place() -> None:
    empty = np.array([[0.9, 0.1], [0.9, 0.1]], dtype=np.float32)
    holes = np.array([[0.05, 0.02], [0.05, 0.02]], dtype=np.float32)
    samples = np.full((2, 2), 100)
    shadow = DropoutMap(empty, samples, "x", holes=holes, expected=samples)
    probability = shadow.measured_dropout([0.0, -20.0]).probability  # row 1 is low enough to see the car
    np.testing.assert_allclose(probability, [[0.05, 0.02], [0.9, 0.02]], atol=1e-7)


def test_bad_maps_are_refused_with_one_line() -> None:
    empty, samples = np.zeros((2, 2), np.float32), np.ones((2, 2))
    with pytest.raises(DatasetError, match="'holes' and 'expected' come together"):
        DropoutMap(empty, samples, "x", holes=empty)
    with pytest.raises(DatasetError, match="'holes' must be a 2-D array of frequencies"):
        DropoutMap(empty, samples, "x", holes=empty + 2, expected=samples)
    with pytest.raises(DatasetError, match="too few surfaces"):
        measure([_view(np.zeros((ROWS, COLUMNS)))], "synthetic")
