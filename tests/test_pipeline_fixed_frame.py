"""Tracking in a fixed frame (odom): box transforms, and the Pipeline on a simulated drive with a moving ego car,
tracked with and without the sensor's pose."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perception_ws.boxes import Box3D, transform_box
from perception_ws.config import PipelineConfig
from perception_ws.errors import CalibrationError
from perception_ws.odometry import ScanOdometry
from perception_ws.pipeline import Pipeline, PipelineResult
from perception_ws.sim.motion.sequence import SequenceFrame, render_sequence
from perception_ws.sim.world.generator import SceneConfig, generate_scene

#: the labels segmenter (the simulated scans carry their KITTI-3 ids in ``label``) with the measured clustering
LABELLED = PipelineConfig().replace(
    **{
        "segmenter.kind": "labels",
        **{"detection.eps_m": 0.5, "detection.min_samples": 10},
        **{"detection.car_eps_m": 1.0, "detection.car_min_samples": 10},
    }
)
#: a track and a ground-truth actor are the same object when their centres are this close (metres)
MATCH_M = 2.0


def pose(yaw: float, translation: tuple[float, float, float]) -> np.ndarray:
    """A 4x4 rigid transform turning by ``yaw`` about z, then moving by ``translation``."""
    m = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:3, 3] = translation
    return m


@pytest.fixture(scope="module")
def frames() -> list[SequenceFrame]:
    # a small street, 2 s at 10 Hz; the ego drives at about 8 m/s (the default lidar: ~62k points a sweep)
    scene = generate_scene(3, SceneConfig(half_length=40.0, y_extent=30.0))
    return list(render_sequence(scene, 2.0, backend="open3d", seed=5))


def run(frames: list[SequenceFrame], world_to_fixed: np.ndarray | None) -> list[PipelineResult]:
    """The Pipeline over the drive, tracking in the sensor frame (None) or in the fixed frame
    ``world_to_fixed @ sensor_to_world``."""
    pipeline = Pipeline(LABELLED)
    return [
        pipeline.process(
            f.scan.points, f.time_s, None if world_to_fixed is None else world_to_fixed @ f.sensor_to_world
        )
        for f in frames
    ]


def velocity_errors(frames: list[SequenceFrame], results: list[PipelineResult]) -> np.ndarray:
    """|v_track - v_truth| (ground plane, m/s) of every reported track against the nearest actor within MATCH_M,
    both in the sensor frame (the truth: its ground velocity in sensor axes)."""
    errors = []
    for frame, result in zip(frames, results, strict=True):
        for box in result.tracks:
            distances = [np.linalg.norm(t.box_sensor.center[:2] - box.center[:2]) for t in frame.tracks]
            if distances and min(distances) < MATCH_M:
                truth = frame.tracks[int(np.argmin(distances))].box_sensor
                errors.append(np.linalg.norm(truth.velocity[:2] - box.velocity[:2]))
    return np.array(errors)


def test_transform_box_moves_the_box_and_comes_back() -> None:
    box = Box3D([12.0, -3.0, 0.8], [4.2, 1.8, 1.5], 2.9, label=1, name="Car", score=0.7, num_points=80, track_id=4)
    box.velocity = np.array([5.0, 1.0, 0.0])
    there = pose(1.2, (100.0, -40.0, 2.0))
    moved = transform_box(box, there)
    # the box itself moved: its corners are the pose applied to the old corners
    np.testing.assert_allclose(moved.corners(), box.corners() @ there[:3, :3].T + there[:3, 3], atol=1e-9)
    np.testing.assert_allclose(moved.velocity, there[:3, :3] @ box.velocity)
    assert -math.pi < moved.yaw <= math.pi
    assert moved.yaw == pytest.approx(2.9 + 1.2 - 2 * math.pi)
    assert (moved.label, moved.name, moved.score, moved.num_points, moved.track_id) == (1, "Car", 0.7, 80, 4)
    assert moved.size is not box.size
    assert np.array_equal(moved.size, box.size)
    back = transform_box(moved, np.linalg.inv(there))
    np.testing.assert_allclose(back.center, box.center, atol=1e-9)
    np.testing.assert_allclose(back.velocity, box.velocity, atol=1e-9)
    assert back.yaw == pytest.approx(box.yaw)


@pytest.mark.parametrize(("bad", "message"), [(np.eye(3), r"shape \(3, 3\)"), (np.full((4, 4), np.nan), "NaN or Inf")])
def test_transform_box_refuses_a_malformed_pose(bad: np.ndarray, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        transform_box(Box3D([1.0, 2.0, 0.0], [1.0, 1.0, 1.0], 0.0), bad)


def test_tracking_in_the_fixed_frame_gives_ground_velocities(frames: list[SequenceFrame]) -> None:
    fixed, sensor = run(frames, np.eye(4)), run(frames, None)
    ego_speed = float(np.median([np.linalg.norm(f.ego.velocity[:2]) for f in frames]))
    fixed_errors, sensor_errors = velocity_errors(frames, fixed), velocity_errors(frames, sensor)
    print(
        f"ego {ego_speed:.1f} m/s; median |v_track - v_truth|: fixed frame {np.median(fixed_errors):.3f} m/s "
        f"({len(fixed_errors)} track-frames), sensor frame {np.median(sensor_errors):.3f} m/s ({len(sensor_errors)})"
    )
    assert ego_speed > 5.0
    assert len(fixed_errors) >= 200
    assert len(sensor_errors) >= 200
    # measured (scene 3): 0.161 m/s in the fixed frame; 8.07 m/s in the sensor frame, where the parked cars move
    assert np.median(fixed_errors) < 0.5
    assert np.median(sensor_errors) > 0.6 * ego_speed
    for with_pose, without in zip(fixed, sensor, strict=True):
        assert not with_pose.tracker_reset
        # detections stay in the sensor frame, untouched by the pose
        assert len(with_pose.detections) == len(without.detections)
        for a, b in zip(with_pose.detections, without.detections, strict=True):
            np.testing.assert_array_equal(a.center, b.center)
            assert a.yaw == b.yaw
        # the published tracks are the matched confirmed live tracks, both back in the sensor frame
        live = {info.box.track_id: info.box for info in with_pose.live_tracks}
        for box in with_pose.tracks:
            np.testing.assert_allclose(live[box.track_id].center, box.center)
            np.testing.assert_allclose(live[box.track_id].velocity, box.velocity)


def test_which_fixed_frame_does_not_matter(frames: list[SequenceFrame]) -> None:
    # the tracker is the same in any upright frame: a turned odom frame whose origin lies kilometres away gives
    # the same sensor-frame tracks, velocities and accelerations (a wrong rotation on the way back would break
    # them; so would measurement noise taken from the frame's origin instead of the sensor's position)
    plain = run(frames[:12], np.eye(4))
    turned = run(frames[:12], pose(2.5, (5000.0, -3000.0, 1.0)))
    assert sum(len(r.tracks) for r in plain) >= 50
    for a, b in zip(plain, turned, strict=True):
        assert [t.track_id for t in a.tracks] == [t.track_id for t in b.tracks]
        assert [t.state for t in a.live_tracks] == [t.state for t in b.live_tracks]
        for x, y in zip(a.live_tracks, b.live_tracks, strict=True):
            np.testing.assert_allclose(x.box.center, y.box.center, atol=1e-6)
            np.testing.assert_allclose(x.box.velocity, y.box.velocity, atol=1e-6)
            np.testing.assert_allclose(x.acceleration, y.acceleration, atol=1e-5)
            assert math.cos(x.box.yaw - y.box.yaw) == pytest.approx(1.0)


def test_the_tracker_is_reset_when_the_pose_comes_or_goes(frames: list[SequenceFrame]) -> None:
    pipeline = Pipeline(LABELLED)
    results = [pipeline.process(f.scan.points, f.time_s, f.sensor_to_world) for f in frames[:4]]
    assert not any(r.tracker_reset for r in results)
    assert results[-1].tracks
    last_id = max(t.box.track_id for t in results[-1].live_tracks)
    # no pose: the fixed-frame tracks cannot continue in the sensor frame; they start over (ids keep counting up)
    without = pipeline.process(frames[4].scan.points, frames[4].time_s)
    assert without.tracker_reset
    assert without.tracks == []
    assert all(t.age == 1 and t.box.track_id > last_id for t in without.live_tracks)
    assert not pipeline.process(frames[5].scan.points, frames[5].time_s).tracker_reset
    # and back to the fixed frame
    again = pipeline.process(frames[6].scan.points, frames[6].time_s, frames[6].sensor_to_world)
    assert again.tracker_reset
    assert all(t.age == 1 for t in again.live_tracks)


def test_a_pose_that_is_not_rigid_is_refused(frames: list[SequenceFrame]) -> None:
    scaled = frames[0].sensor_to_world.copy()
    scaled[:3, :3] *= 2.0
    with pytest.raises(CalibrationError, match="fixed_from_sensor: not a rotation"):
        Pipeline(LABELLED).process(frames[0].scan.points, frames[0].time_s, scaled)


def test_lidar_odometry_follows_the_simulated_drive(frames: list[SequenceFrame]) -> None:
    odometry = ScanOdometry()
    steps = [odometry.update(f.scan.xyz) for f in frames]
    start = np.linalg.inv(frames[0].sensor_to_world)
    truth = [start @ f.sensor_to_world for f in frames]  # the sensor in the frame of the first scan
    assert not steps[0].aligned
    assert all(s.aligned and s.fitness > 0.8 for s in steps[1:])
    travelled = float(np.linalg.norm(truth[-1][:3, 3]))
    position_error = max(float(np.linalg.norm(s.pose[:3, 3] - t[:3, 3])) for s, t in zip(steps, truth, strict=True))
    heading_error = max(
        abs(math.atan2(*(s.pose[:3, :3].T @ t[:3, :3])[[1, 0], 0])) for s, t in zip(steps, truth, strict=True)
    )
    print(
        f"drove {travelled:.1f} m; odometry off by at most {position_error:.3f} m, "
        f"{math.degrees(heading_error):.2f} deg"
    )
    assert travelled > 10.0
    assert position_error < 0.02 * travelled
    assert math.degrees(heading_error) < 0.5


def test_tracking_on_lidar_odometry_gives_ground_velocities(frames: list[SequenceFrame]) -> None:
    # no pose from outside: the pipeline finds the motion in the scans and tracks over the ground with it
    pipeline = Pipeline(LABELLED.replace(**{"tracking.odometry": "lidar"}))
    results = [pipeline.process(f.scan.points, f.time_s) for f in frames]
    assert all("odometry" in r.timings_ms and not r.tracker_reset for r in results)
    with_truth, on_odometry = velocity_errors(frames, run(frames, np.eye(4))), velocity_errors(frames, results)
    print(
        f"median velocity error: {np.median(on_odometry):.3f} m/s on odometry, "
        f"{np.median(with_truth):.3f} m/s on the true pose"
    )
    assert len(on_odometry) >= 200
    assert np.median(on_odometry) < 0.5
