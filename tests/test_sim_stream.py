"""The simulated sensor stream without ROS: labelled frames with ground truth, time and stamps, the mounting,
and the simulator node's schema against config/perception.yaml."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from perception_ws.config import ConfigError, flatten, load_schema_config, section_key
from perception_ws.labels import KITTI3
from perception_ws.sim.source import CLOUD_DTYPE
from perception_ws.sim.stream import SimStream, scene_time, sim_camera_extrinsic, stamp_ns
from perception_ws.sim.stream_config import SIM_NODE_NAME, SimConfig

PARAMS_FILE = Path(__file__).resolve().parents[1] / "config" / "perception.yaml"
#: a small, quick stream: 64 x 512 rays, a coarse camera.
SMALL = {"sensor.columns": 512, "camera.downscale": 4}


@pytest.fixture(scope="module")
def stream() -> SimStream:
    return SimStream(SimConfig().replace(**SMALL, **{"clock.mode": "sim"}))


def test_frames_carry_labels_instances_and_boxes_that_agree(stream: SimStream) -> None:
    frame = stream.frame(0, 0.0)
    points = frame.points
    assert points.dtype == CLOUD_DTYPE
    assert 20_000 < len(points) <= 64 * 512
    assert set(np.unique(points["label"])) <= set(range(len(KITTI3)))
    assert set(np.unique(points["ring"])) == set(range(64))
    cars = [box for box in frame.boxes if box.label == KITTI3.id_of("car")]
    assert cars
    assert all(box.num_points >= 1 and box.track_id > 0 for box in frame.boxes)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1)
    for box in frame.boxes:  # an actor's points lie in its box, carry its class, and there are num_points of them
        own = points["instance"] == box.track_id
        assert own.sum() == box.num_points
        assert np.all(points["label"][own] == box.label)
        assert box.contains(xyz[own], margin=0.1).mean() > 0.98  # range noise moves a rare point a little out
    assert frame.camera is not None
    assert frame.camera.rgb.shape == (375, 1242, 3)
    assert np.array_equal(stream.frame(0, 0.0).points, points)  # deterministic for seed, index and time


def test_traffic_moves_with_scene_time_and_time_follows_the_clock_mode(stream: SimStream) -> None:
    later = stream.frame(5, 0.5)
    first = stream.frame(0, 0.0)
    moved = {b.track_id: b.center for b in later.boxes}
    shifts = [np.linalg.norm(moved[b.track_id] - b.center) for b in first.boxes if b.track_id in moved]
    assert max(shifts) > 2.0  # the ego drives ~3-5 m in 0.5 s: everything shifts in the LiDAR frame
    assert stream.scene_time(5, elapsed_s=99.0) == pytest.approx(0.5)  # sim: index / rate
    assert stream.scene_time(85, elapsed_s=0.0) == pytest.approx(0.5)  # wraps every scene.loop_s = 8 s
    assert stream.stamp_ns(3, wall_ns=123, start_ns=10**18) == 10**18 + 300_000_000
    wall = SimConfig().replace(**{"clock.mode": "wall"})
    assert scene_time(wall, 5, elapsed_s=2.25) == pytest.approx(2.25)  # wall: the time elapsed
    assert stamp_ns(wall, 3, wall_ns=123, start_ns=10**18) == 123
    assert scene_time(wall.replace(**{"scene.motion": False}), 5, elapsed_s=2.25) == 0.0


def test_static_transforms_describe_the_mount_and_the_camera(stream: SimStream) -> None:
    base, camera = stream.static_transforms()
    assert (base.parent, base.child) == ("base_link", "lidar")
    assert base.translation == pytest.approx((0, 0, 1.73))
    assert base.rotation == pytest.approx((0, 0, 0, 1))
    assert (camera.parent, camera.child) == ("lidar", "camera")
    # the camera's origin in the LiDAR frame goes to the optical centre; its z axis looks along the LiDAR's +x
    matrix = np.array(sim_camera_extrinsic()).reshape(4, 4)
    origin = np.append(camera.translation, 1.0)
    assert matrix @ origin == pytest.approx([0, 0, 0, 1], abs=1e-9)
    ahead = matrix @ np.array([*camera.translation, 1.0]) + matrix @ np.array([10.0, 0, 0, 0])
    assert ahead[:3] == pytest.approx([0, 0, 10.0], abs=1e-9)
    qx, qy, qz, qw = camera.rotation
    assert qx**2 + qy**2 + qz**2 + qw**2 == pytest.approx(1.0)


def test_params_file_lists_every_sim_key_with_its_default() -> None:
    assert load_schema_config(PARAMS_FILE, SimConfig, SIM_NODE_NAME) == SimConfig()
    section = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))[section_key(SIM_NODE_NAME)]["ros__parameters"]

    def leaves(mapping: dict, prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, value in mapping.items():
            out |= leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
        return out

    assert leaves(section) == set(flatten(SimConfig()))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clock.mode": "fast"}, r"clock\.mode = 'fast'; expected one of wall, sim"),
        ({"sensor.rate_hz": 0.0}, r"sensor\.rate_hz = 0\.0; expected > 0 and at most 100"),
        ({"frames.lidar": "/lidar"}, r"frames\.lidar = '/lidar'; expected a frame id"),
        ({"sensor.backend": "embree"}, r"sensor\.backend = 'embree'; expected one of auto, open3d, torch"),
        ({"scene.seeds": 1}, r"unknown key 'scene\.seeds'; did you mean 'scene\.seed'"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SimConfig().replace(**changes)
