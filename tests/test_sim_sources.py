"""The simulator node's backends over real DDS on loopback: CARLA (a stand-in session feeding buffers packed in
CARLA's documented binary layouts, as tests/test_sim_carla.py does), a missing CARLA server, and recorded datasets
(GTA-LiDAR-layout .npy frames made from the real SqueezeSeg frames; a `perception sim generate` folder)."""

from __future__ import annotations

import itertools
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from perception_ws.cloud import from_msg
from perception_ws.errors import DatasetError, SimulatorError
from perception_ws.io import open_dataset
from perception_ws.io.simdata import load_camera, read_frame_meta
from perception_ws.labels import KITTI3
from perception_ws.msg import Detection3DArray
from perception_ws.nodes.conversions import detection_boxes
from perception_ws.nodes.qos import output_qos, sensor_input_qos
from perception_ws.nodes.sim_node import SimNode
from perception_ws.nodes.tf_topics import TF_TOPIC, TFMessage, tf_qos
from perception_ws.schema import ConfigError
from perception_ws.sim.dataset import GenerateConfig, generate_dataset
from perception_ws.sim.stream_config import SimConfig
from perception_ws.sim.world.scene import EgoPose
from tests.helpers.carla import CAR_ACTOR, StandInSession
from tests.helpers.ros import Spinner, simulate_until

CAR = KITTI3.id_of("car")


class Listener:
    """Every message of the simulator's topics, by stamp (clock: in arrival order)."""

    def __init__(self, context: Context, config: SimConfig) -> None:
        self.node = rclpy.create_node(f"listener_{uuid.uuid4().hex[:8]}", context=context)
        self.got: dict[str, dict[tuple[int, int], Any]] = {k: {} for k in ("points", "boxes", "image", "info", "tf")}
        self.clock: list[tuple[int, int]] = []
        topics, n = config.topics, self.node
        n.create_subscription(PointCloud2, topics.points, self._keep("points"), sensor_input_qos(10))
        n.create_subscription(Detection3DArray, topics.boxes, self._keep("boxes"), output_qos(20))
        n.create_subscription(Image, topics.image, self._keep("image"), sensor_input_qos(10))
        n.create_subscription(CameraInfo, topics.camera_info, self._keep("info"), sensor_input_qos(10))
        n.create_subscription(TFMessage, TF_TOPIC, self._keep("tf"), tf_qos())
        n.create_subscription(
            Clock, "/clock", lambda m: self.clock.append((m.clock.sec, m.clock.nanosec)), output_qos(20)
        )

    def _keep(self, key: str) -> Any:
        def callback(msg: Any) -> None:
            header = msg.transforms[0].header if key == "tf" else msg.header
            self.got[key][(header.stamp.sec, header.stamp.nanosec)] = msg

        return callback

    def complete(self, keys: tuple[str, ...] = ("points", "boxes", "tf")) -> list[tuple[int, int]]:
        """Stamps every one of ``keys`` arrived for."""
        return sorted(set.intersection(*(set(self.got[k]) for k in keys)))


def _config(**changes: Any) -> SimConfig:
    suffix = uuid.uuid4().hex[:8]
    topics = {f"topics.{t}": f"{t}_{suffix}" for t in ("points", "boxes", "markers", "image", "camera_info")}
    return SimConfig().replace(**{"clock.mode": "sim", **topics, **changes})


def _seconds(stamp: tuple[int, int]) -> float:
    return stamp[0] + stamp[1] / 1e9


@pytest.mark.dds
def test_carla_backend_publishes_the_sessions_ticks(ros_context: Context) -> None:
    config = _config(backend="carla", **{"sensor.columns": 256})
    listener = Listener(ros_context, config)
    keys = ("points", "boxes", "tf", "image", "info")
    opened, closed = StandInSession.opened, StandInSession.closed
    with Spinner(ros_context, listener.node):
        sim = simulate_until(
            ros_context, config, lambda: len(listener.complete(keys)) >= 3, "three CARLA frames", 60, StandInSession
        )
    assert (StandInSession.opened - opened, StandInSession.closed - closed) == (1, 1)  # closed with the node
    assert sim.get_parameter("transforms.base_link_to_lidar").value[2] == pytest.approx(1.73)
    assert sim.get_parameter("transforms.lidar_to_camera").value[:3] == pytest.approx([0.27, 0.0, -0.08])
    stamps = listener.complete(keys)
    for stamp in stamps:
        points = from_msg(listener.got["points"][stamp])
        assert points.dtype.names == ("x", "y", "z", "intensity", "ring", "label", "instance")
        assert len(points) == 10
        car = points["instance"] == CAR_ACTOR
        assert car.sum() == 6
        assert np.all(points["label"][car] == CAR)
        assert np.all(points["label"][~car] == 0)
        assert np.all(points["ring"][car] == 0)
        assert np.all(points["ring"][~car] == 1)
        np.testing.assert_allclose(points["y"][:2], [0.5, 0.3], atol=1e-6)  # CARLA's y (right) is ROS's -y (left)
        (box,) = detection_boxes(listener.got["boxes"][stamp])
        assert (box.label, box.track_id) == (CAR, CAR_ACTOR)
        assert box.center == pytest.approx([10.25, 0.0, -1.73])
        tick = listener.got["tf"][stamp].transforms[0]
        assert (tick.header.frame_id, tick.child_frame_id) == ("odom", "base_link")
        picture = listener.got["image"][stamp]
        assert (picture.width, picture.height, picture.encoding) == (1242, 375, "rgb8")
        rgb = np.frombuffer(bytes(picture.data), np.uint8).reshape(375, 1242, 3)
        tick_number = rgb[0, 0, 0]  # red = the tick; the ego stands tick metres along x
        assert tick.transform.translation.x == pytest.approx(float(tick_number))
        assert rgb[0, 0, 2] == 200
        assert listener.got["info"][stamp].width == 1242
    # /clock and the stamps follow CARLA's ticks: 0.1 s of simulation time apart
    steps = {round(_seconds(b) - _seconds(a), 6) for a, b in itertools.pairwise(stamps)}
    assert steps <= {0.1, 0.2, 0.3}, steps
    assert set(stamps) <= set(listener.clock)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.dds
def test_carla_backend_without_a_server_says_where_it_looked(ros_context: Context) -> None:
    port = _free_port()
    config = _config(backend="carla", **{"carla.host": "127.0.0.1", "carla.port": port, "carla.connect_timeout_s": 0.5})
    started = time.monotonic()
    with pytest.raises(SimulatorError, match=rf"no CARLA server answered at 127\.0\.0\.1:{port} within 0\.5 s"):
        SimNode(context=ros_context, defaults=config)
    assert time.monotonic() - started < 20  # the short time-out, not CARLA's default


def test_dataset_backend_needs_a_path() -> None:
    with pytest.raises(ConfigError, match=r"backend 'dataset' needs dataset\.path"):
        SimConfig().replace(backend="dataset")


@pytest.fixture
def gta_folder(real_data: Path, tmp_path: Path) -> Path:
    """Two GTA-LiDAR-layout frames (x, y, z, range, label) made from the real SqueezeSeg frames."""
    root = tmp_path / "GTAV" / "1"
    root.mkdir(parents=True)
    for path in sorted((real_data / "kitti_squeezeseg").glob("*.npy"))[:2]:
        np.save(root / path.name, np.delete(np.load(path), 3, axis=2))
    return tmp_path / "GTAV"


@pytest.mark.dds
@pytest.mark.real_data
def test_dataset_backend_replays_gta_lidar_frames_once(ros_context: Context, gta_folder: Path) -> None:
    config = _config(backend="dataset", **{"dataset.path": str(gta_folder), "dataset.loop": False})
    listener = Listener(ros_context, config)
    with Spinner(ros_context, listener.node):
        sim = simulate_until(ros_context, config, lambda: len(listener.complete()) >= 2, "two GTA frames", 60)
    assert sim.published == 2
    assert sim.finished.is_set()
    # GTA-LiDAR stores no ego pose or mounting: both stay identity, and the start-up line says so
    assert "it stores no ego pose or mounting: odom -> base_link and base_link -> lidar are identity" in (
        sim.source.describe()
    )
    assert sim.get_parameter("transforms.base_link_to_lidar").value == [0, 0, 0, 0, 0, 0, 1]
    recorded = list(open_dataset(gta_folder))
    for stamp, scan in zip(listener.complete(), recorded, strict=True):
        points = from_msg(listener.got["points"][stamp])
        np.testing.assert_array_equal(points["x"], scan.points["x"])
        np.testing.assert_array_equal(points["ring"], scan.points["ring"])
        assert scan.labels is not None
        np.testing.assert_array_equal(points["label"], scan.labels)
        assert (points["label"] == CAR).sum() > 500
        assert not points["intensity"].any()
        assert detection_boxes(listener.got["boxes"][stamp]) == []  # nor boxes
        assert listener.got["tf"][stamp].transforms[0].transform.translation.x == 0.0
    assert listener.got["image"] == {}  # nor a camera


@pytest.fixture(scope="module")
def generated_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `perception sim generate` folder: one scene, two frames (two ego poses), with the camera."""
    folder = tmp_path_factory.mktemp("generated") / "sim"
    generate_dataset(folder, GenerateConfig(scenes=1, frames=2, columns=256, camera=True), progress=False)
    return folder


def _stored_pose(folder: Path, name: str) -> EgoPose:
    return EgoPose(**read_frame_meta(folder / "frames" / f"{name}.npz")["pose"])


@pytest.mark.dds
def test_dataset_backend_replays_a_generated_folder_with_its_camera(
    ros_context: Context, generated_folder: Path
) -> None:
    folder = generated_folder
    config = _config(backend="dataset", **{"dataset.path": str(folder), "sensor.rate_hz": 20.0})
    listener = Listener(ros_context, config)
    keys = ("points", "boxes", "image", "info")
    with Spinner(ros_context, listener.node):
        sim = simulate_until(ros_context, config, lambda: len(listener.complete(keys)) >= 3, "three frames", 60)
    assert sim.published >= 3
    assert not sim.finished.is_set()
    recorded = list(open_dataset(folder))
    for stamp in listener.complete(keys):
        points = from_msg(listener.got["points"][stamp])
        (scan,) = [s for s in recorded if np.array_equal(s.points["instance"], points["instance"])]
        np.testing.assert_array_equal(points["label"], scan.points["label"])
        np.testing.assert_allclose(points["x"], scan.points["x"])
        truth = detection_boxes(listener.got["boxes"][stamp])
        assert sorted(b.track_id for b in truth) == sorted(
            b.track_id for b in scan.boxes if b.label > 0 and b.num_points > 0
        )
        assert scan.image is not None
        assert (listener.got["image"][stamp].height, listener.got["image"][stamp].width) == scan.image.shape[:2]
        # /tf: the ego pose the frame stores (the ground point below the LiDAR in the scene)
        pose, moved = _stored_pose(folder, scan.name), listener.got["tf"][stamp].transforms[0].transform
        assert [moved.translation.x, moved.translation.y, moved.translation.z] == pytest.approx(
            [pose.x, pose.y, pose.ground_z], abs=1e-9
        )
        assert [moved.rotation.z, moved.rotation.w] == pytest.approx([np.sin(pose.yaw / 2), np.cos(pose.yaw / 2)])
    seen = {listener.got["tf"][stamp].transforms[0].transform.translation.x for stamp in listener.complete(keys)}
    assert len(seen) == 2  # both frames' poses went out, not one for all
    # /tf_static: the mounting the frames store (1.73 m up) and the recording's camera extrinsic
    assert sim.get_parameter("transforms.base_link_to_lidar").value == pytest.approx([0, 0, 1.73, 0, 0, 0, 1])
    assert recorded[0].calib is not None
    camera_in_lidar = np.linalg.inv(recorded[0].calib.extrinsic().matrix)
    assert sim.get_parameter("transforms.lidar_to_camera").value[:3] == pytest.approx(camera_in_lidar[:3, 3])


def test_dataset_backend_gives_a_generated_frames_camera_masks_and_placement(generated_folder: Path) -> None:
    from perception_ws.sim.dataset_source import DatasetSource

    source = DatasetSource(_config(backend="dataset", **{"dataset.path": str(generated_folder)}))
    assert "ego pose and mounting from its frames" in source.describe()
    for index, name in enumerate(["s00000_f000", "s00000_f001"]):
        frame = source.next_frame(index, 0.0)
        stored = load_camera(generated_folder / "frames" / f"{name}.npz")
        assert frame.camera is not None
        assert stored is not None
        assert frame.camera.frame_id == "camera"
        for mask in ("label", "semantic", "instance"):  # the masks the frame stores, not zeros
            np.testing.assert_array_equal(getattr(frame.camera, mask), getattr(stored, mask))
        assert frame.camera.instance.any()
        np.testing.assert_array_equal(frame.camera.camera.K, stored.camera.K)
        pose = _stored_pose(generated_folder, name)
        assert frame.vehicle.translation == pytest.approx((pose.x, pose.y, pose.ground_z))


def test_a_missing_or_empty_recording_is_refused(tmp_path: Path) -> None:
    from perception_ws.sim.dataset_source import DatasetSource

    with pytest.raises(DatasetError, match="none: no such file or folder"):
        DatasetSource(_config(backend="dataset", **{"dataset.path": str(tmp_path / "none")}))
    (tmp_path / "gta").mkdir()
    with pytest.raises(DatasetError, match="gta: no reader understands this path"):
        DatasetSource(_config(backend="dataset", **{"dataset.path": str(tmp_path / "gta")}))
