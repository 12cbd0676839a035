"""The mounting height from unlabelled real scans, its confidence, and the simulator playing it.

Measured on the real samples (docs/algorithms.md §5): KITTI's Velodyne sits 1.73 m above the road; the
VLP-32C sample sees a level floor about 0.30 m below it on every side; the VLP-16 sample is cluttered, its
lowest returns 0.0-0.7 m below the sensor with no common plane.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perception_ws.adapt.mounting import DEFAULT_MOUNT_HEIGHT_M, MIN_GROUND_SHARE, mounting_height
from perception_ws.adapt.sensor_profile import SensorProfile, estimate_profile, summary
from perception_ws.io import open_dataset
from perception_ws.scan import Scan
from perception_ws.sim.simulated_sensor import simulated_sensor
from perception_ws.sim.stream import SimStream
from perception_ws.sim.stream_config import SimConfig

KITTI_HEIGHT_M = 1.73  # Geiger et al. 2013


def _scans(path: Path, frames: int) -> list[Scan]:
    dataset = open_dataset(path)
    return [dataset[i] for i in range(min(frames, len(dataset)))]


@pytest.mark.real_data
def test_kitti_height_on_every_kitti_sample(real_data: Path) -> None:
    for name in ("kitti_sequence_pcd", "kitti_object", "kitti_squeezeseg", "semantickitti"):
        mounting = mounting_height(_scans(real_data / name, 3))
        assert mounting.confident, name
        assert abs(mounting.height_m - KITTI_HEIGHT_M) < 0.05, name
        assert min(mounting.ground_share) >= MIN_GROUND_SHARE
        assert mounting.tilt_deg < 5.0


@pytest.mark.real_data
def test_vlp32c_floor_is_measured_and_the_simulator_mounts_there(real_data: Path, tmp_path: Path) -> None:
    profile = estimate_profile(_scans(real_data / "vlp32" / "1713492677464078412.pcd", 1))
    assert profile.mounting.confident
    assert abs(profile.mounting.height_m - 0.30) < 0.02
    profile.save(tmp_path)
    assert simulated_sensor(str(tmp_path)).mount_height_m == pytest.approx(profile.mounting.height_m)
    # the simulator node's stream plays the profiled sensor at that height (its vehicle -> LiDAR transform)
    stream = SimStream(SimConfig().replace(**{"sensor.model": str(tmp_path), "camera.enabled": False}))
    assert stream.lidar.sensor.height == 32
    assert stream.static_transforms()[0].translation[2] == pytest.approx(profile.mounting.height_m)


@pytest.mark.real_data
def test_vlp16_without_level_ground_falls_back_to_the_default(real_data: Path, tmp_path: Path) -> None:
    profile = estimate_profile(_scans(real_data / "vlp16" / "1673400472138016708.pcd", 1))
    mounting = profile.mounting
    assert not mounting.confident
    assert mounting.height_m == DEFAULT_MOUNT_HEIGHT_M
    assert mounting.ground_share[0] < MIN_GROUND_SHARE  # what was measured stays in the profile
    assert "no level ground" in mounting.note
    assert "warning: mounting height not measured" in summary(profile)
    profile.save(tmp_path)
    saved = (tmp_path / "profile.json").read_text(encoding="utf-8")
    assert '"confident": false' in saved
    assert simulated_sensor(str(tmp_path)).mount_height_m == DEFAULT_MOUNT_HEIGHT_M


@pytest.mark.real_data
@pytest.mark.parametrize(("written_height", "kept"), [(0.01, False), (1.716, True)])
def test_a_profile_from_before_the_confidence_still_loads(
    real_data: Path, tmp_path: Path, written_height: float, kept: bool
) -> None:
    """profile.json files written before the confidence existed (height, per scan, tilt only) still load, so an
    interrupted `perception adapt` resumes; an implausible height (the VLP-16's 0.01 m then) gives the default."""
    estimate_profile(_scans(real_data / "vlp32" / "1713492677464078412.pcd", 1)).save(tmp_path)
    data = json.loads((tmp_path / "profile.json").read_text(encoding="utf-8"))
    data["mounting"] = {"height_m": written_height, "per_scan_m": [written_height], "tilt_deg": 0.5}
    (tmp_path / "profile.json").write_text(json.dumps(data), encoding="utf-8")
    loaded = SensorProfile.load(tmp_path).mounting
    assert loaded.confident is kept
    assert loaded.height_m == (written_height if kept else DEFAULT_MOUNT_HEIGHT_M)
    assert "before the confidence was measured" in loaded.note
    assert simulated_sensor(str(tmp_path)).mount_height_m == loaded.height_m
