"""The realism report: real HDL-64E scans against simulated sweeps on the four statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perception_ws.sim.dataset import SimulatedScans
from perception_ws.sim.realism.compare import FACTOR, Report, compare, json_text, render_report
from perception_ws.sim.realism.real_views import RangeView, real_views, scan_view

pytestmark = pytest.mark.real_data

NAMES = ["row occupancy", "range histogram", "points per car", "intensity histogram"]
#: the real HDL-64E sweeps among the shared samples (full turns, and SqueezeSeg's front views)
HDL64E_SOURCES = ("kitti_odometry_00", "kitti_object", "semantickitti", "kitti_squeezeseg")


@pytest.fixture(scope="module")
def real(real_data: Path) -> list[RangeView]:
    views: list[RangeView] = []
    for source in HDL64E_SOURCES:
        views += real_views(real_data / source)[0]
    return views


def _sim(intensity: str = "model", scenes: int = 2) -> list[RangeView]:
    scans = SimulatedScans(seed=3, scenes=scenes, frames_per_scene=1, intensity=intensity)
    return [scan_view(scan) for scan in scans]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def report(real: list[RangeView]) -> Report:
    return compare(real, _sim())


def test_the_real_sources_are_hdl64e_sweeps_full_turn_or_front_view(real: list[RangeView]) -> None:
    assert len(real) == 12
    front = [v for v in real if v.name.startswith("kitti_squeezeseg/")]
    assert len(front) == 4
    assert all(int(v.seen.sum()) == 512 for v in front)
    assert all(v.seen.all() for v in real if v not in front)
    for view in real:  # every real sweep fills most of its seen pixels, as an HDL-64E does
        assert 0.7 < view.valid[:, view.seen].mean() < 0.95, view.name


def test_the_report_has_the_four_statistics_judged_within_a_factor_of_two(report: Report) -> None:
    assert [v.name for v in report.verdicts] == NAMES
    assert report.sim.frames == 2
    assert report.real.frames == 12
    for verdict in report.verdicts:
        assert verdict.passed == (verdict.factor <= FACTOR)
        assert np.isfinite(verdict.factor), verdict.name
        assert verdict.factor >= 1.0, verdict.name
        assert any(verdict.judged), verdict.name
    # the recording car's shadow (bottom rings) and the sky (top rings) are both simulated
    assert report.verdicts[0].passed, report.table()
    # cars on both sides
    assert len(report.real.cars) >= 20
    assert len(report.sim.cars) >= 10


def test_table_json_and_picture(report: Report, tmp_path: Path) -> None:
    table = report.table()
    for name in NAMES:
        assert name in table
    data = json.loads(json_text(report))
    assert [s["name"] for s in data["statistics"]] == NAMES
    assert data["real"]["frames"] == 12
    assert data["passed"] == report.passed
    png = render_report(report, tmp_path / "report.png")
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape == (950, 1400, 3)
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50  # four drawn panels, not a blank page


def test_real_scans_against_themselves_agree_exactly(real: list[RangeView]) -> None:
    same = compare(real, real)
    assert same.passed
    assert [v.factor for v in same.verdicts] == [1.0] * 4


def test_sweeps_without_intensity_fail_the_intensity_statistic(real: list[RangeView]) -> None:
    verdict = compare(real, _sim(intensity="off", scenes=1)).verdicts[3]
    assert not verdict.passed
    assert verdict.factor == float("inf")
