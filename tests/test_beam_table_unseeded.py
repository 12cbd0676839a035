"""Beam tables fitted from elevations alone (no ring field, no sensor named), against the published tables.

The real samples (docs/algorithms.md §5 has the numbers): the VLP-32C scan (x y z only), the VLP-16 scan with
its ``channel`` field taken away, and KITTI HDL-64E scans (two blocks of lasers 8 cm apart in height).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import recfunctions

from perception_ws.adapt.beam_table import estimate_beam_table
from perception_ws.calib.sensors import get_sensor
from perception_ws.errors import SensorError
from perception_ws.io import open_dataset
from perception_ws.scan import Scan

#: a fitted beam counts as the published one within this angle.
TOLERANCE_DEG = 0.05


def _scans(path: Path, frames: int) -> list[Scan]:
    dataset = open_dataset(path)
    return [dataset[i] for i in range(min(frames, len(dataset)))]


def _without_ring(scan: Scan) -> Scan:
    keep = [name for name in ("x", "y", "z", "intensity") if name in (scan.points.dtype.names or ())]
    return replace(scan, points=recfunctions.repack_fields(scan.points[keep]))


@pytest.mark.real_data
def test_vlp32c_every_beam_from_elevations_alone(real_data: Path) -> None:
    scans = _scans(real_data / "vlp32" / "1713492677464078412.pcd", 1)
    published = get_sensor("vlp32c").elevations_deg
    for beams in (32, None):  # the count given, and found from the data
        table = estimate_beam_table(scans, beams=beams)
        assert table.method == "elevations (histogram peaks)"
        assert table.sensor.height == 32
        assert np.abs(table.sensor.elevations_deg - published).max() < TOLERANCE_DEG


@pytest.mark.real_data
def test_vlp16_lit_beams_without_its_channel_field(real_data: Path) -> None:
    scan = _without_ring(_scans(real_data / "vlp16" / "1673400472138016708.pcd", 1)[0])
    published = get_sensor("vlp16").elevations_deg
    # -15 deg holds no return and -13 deg only 18, all 0.5-0.6 m away: the data shows 15 beams at most
    fifteen = estimate_beam_table([scan], beams=15)
    assert np.allclose(fifteen.sensor.elevations_deg, published[:15], atol=TOLERANCE_DEG)
    found = estimate_beam_table([scan])  # the 18 returns are too few to count as a beam on their own
    assert found.sensor.height == 14
    assert np.allclose(found.sensor.elevations_deg, published[:14], atol=TOLERANCE_DEG)
    with pytest.raises(SensorError, match="fewer than the 16 beams asked for"):
        estimate_beam_table([scan], beams=16)


@pytest.mark.real_data
def test_hdl64e_both_blocks_from_elevations_alone(real_data: Path) -> None:
    scans = _scans(real_data / "kitti_sequence_pcd", 3)
    shipped = get_sensor("hdl64e")  # fitted on other KITTI frames (scripts/fit_hdl64e.py)
    table = estimate_beam_table(scans)
    assert table.sensor.height == 64
    assert np.abs(table.sensor.elevations_deg - shipped.elevations_deg).max() < TOLERANCE_DEG
    # the two blocks' origins: 0.20-0.21 m (upper 32 lasers) and 0.12-0.13 m (lower) above the frame
    assert np.abs(table.sensor.beam_heights_m - shipped.beam_heights_m).max() < 0.01
