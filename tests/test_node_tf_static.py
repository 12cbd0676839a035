"""/tf_static and /tf over real DDS on loopback: the simulator node latches its mounting (one TFMessage, the
type hash of ROS 2's tf2_msgs), a late subscriber still gets it, and the fusion node with
``calibration.from_tf`` paints the simulator's clouds with it exactly as with the transform given as a
parameter; on a real KITTI frame, sets wait (not fail) until /tf_static connects the frames, and the log
says why; a mounting sent on /tf is read at the cloud's stamp. `perception record` records /tf_static by
default, latched before it started, and the replay latches it again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
import yaml
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.calib.tf_tree import FrameTransform, TransformTree, TransformUnavailableError
from perception_ws.cloud import from_msg
from perception_ws.config import FUSION_NODE_NAME, ConfigError, FusionConfig, section_key
from perception_ws.fusion import RGB_FIELD, paint_points, unpack_rgb
from perception_ws.nodes.fusion_node import TF_TRANSFORM, FusionNode
from perception_ws.nodes.qos import output_qos, sensor_input_qos
from perception_ws.nodes.replay import BagPlayer, open_replay_reader, plan_replay
from perception_ws.nodes.sim_node import SimNode
from perception_ws.nodes.tf_topics import (
    LISTENER_DEPTH,
    TF_STATIC_TOPIC,
    TF_TOPIC,
    TFMessage,
    add_tf_message,
    tf_message,
    tf_qos,
    tf_static_qos,
)
from perception_ws.sim.stream import sim_camera_extrinsic
from perception_ws.sim.stream_config import SimConfig
from tests.helpers.messages import frame_messages
from tests.helpers.ros import Spinner, simulate_until, wait_for, wait_until

REPO = Path(__file__).resolve().parents[1]
#: tf2_msgs/msg/TFMessage's type hash in ROS 2 Jazzy and Kilted (the same definition since Iron).
TF_MESSAGE_HASH = "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"


def small_sim(suffix: str) -> SimConfig:
    """A cheap simulator on topics of its own: a static scene, 512 columns, the camera at a quarter resolution."""
    keys = ("points", "boxes", "markers", "image", "camera_info")
    return SimConfig().replace(
        **{f"topics.{key}": f"{key}_{suffix}" for key in keys},
        **{"sensor.columns": 512, "camera.downscale": 4, "scene.motion": False, "clock.publish": False},
    )


@pytest.mark.dds
def test_a_late_subscriber_gets_the_mounting_latched_on_tf_static(ros_context: Context) -> None:
    sim = SimNode(context=ros_context, defaults=small_sim(uuid.uuid4().hex[:8]))
    listener = rclpy.create_node("tf_listener", context=ros_context)
    latched: list[TFMessage] = []
    volatile: list[TFMessage] = []
    try:
        with Spinner(ros_context, sim, listener):
            # both subscribe after the simulator published (in its constructor): only the latched one gets it
            listener.create_subscription(TFMessage, TF_STATIC_TOPIC, latched.append, tf_static_qos(LISTENER_DEPTH))
            late_qos = tf_static_qos(LISTENER_DEPTH)
            late_qos.durability = DurabilityPolicy.VOLATILE
            listener.create_subscription(TFMessage, TF_STATIC_TOPIC, volatile.append, late_qos)
            wait_for(lambda: bool(latched), "the latched /tf_static")
            wait_until(lambda: len(latched) > 1, timeout_s=1.0)  # nothing else comes
            (info,) = listener.get_publishers_info_by_topic(TF_STATIC_TOPIC)
    finally:
        sim.destroy_node()
        listener.destroy_node()
    assert len(latched) == 1
    assert not volatile
    (msg,) = latched
    assert [(t.header.frame_id, t.child_frame_id) for t in msg.transforms] == [
        ("base_link", "lidar"),
        ("lidar", "camera"),
    ]
    for transform in msg.transforms:
        t, q = transform.transform.translation, transform.transform.rotation
        name = f"transforms.{transform.header.frame_id}_to_{transform.child_frame_id}"
        assert [t.x, t.y, t.z, q.x, q.y, q.z, q.w] == sim.get_parameter(name).value  # the parameters stay
    assert msg.transforms[0].transform.translation.z == pytest.approx(1.73)  # hdl64e on KITTI's car
    assert info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert str(info.topic_type_hash) == TF_MESSAGE_HASH  # ROS 2's TFMessage: RViz and tf2 read it


@pytest.mark.dds
def test_fusion_from_tf_paints_the_simulator_clouds_like_the_parameter(ros_context: Context) -> None:
    suffix = uuid.uuid4().hex[:8]
    sim_config = small_sim(suffix)
    inputs = {
        "topics.image": sim_config.topics.image,
        "topics.camera_info": sim_config.topics.camera_info,
        "topics.cloud": sim_config.topics.points,
        "topics.detections": "",
        "topics.label_mask": "",
    }

    def fusion(name: str, **calibration: Any) -> FusionNode:
        outputs = {"topics.painted_cloud": f"painted_{name}_{suffix}", "topics.overlay": f"overlay_{name}_{suffix}"}
        config = FusionConfig().replace(**inputs, **outputs, **calibration)
        return FusionNode(context=ros_context, defaults=config, node_name=f"fusion_{name}")

    from_tf = fusion("tf", **{"calibration.from_tf": True})
    from_parameter = fusion("parameter", **{"calibration.extrinsic": sim_camera_extrinsic()})
    listener = rclpy.create_node("painted_listener", context=ros_context)
    painted: dict[str, dict[tuple[int, int], PointCloud2]] = {"tf": {}, "parameter": {}}
    for name, node in (("tf", from_tf), ("parameter", from_parameter)):
        keep = painted[name]
        listener.create_subscription(
            PointCloud2,
            node.config.topics.painted_cloud,
            lambda msg, keep=keep: keep.__setitem__((msg.header.stamp.sec, msg.header.stamp.nanosec), msg),
            output_qos(10),
        )

    def both() -> list[tuple[int, int]]:
        return sorted(set(painted["tf"]) & set(painted["parameter"]))

    try:
        with Spinner(ros_context, from_tf, from_parameter, listener):
            simulate_until(ros_context, sim_config, lambda: len(both()) >= 2, "two frames painted by both nodes", 60)
    finally:
        from_tf.destroy_node()
        from_parameter.destroy_node()
        listener.destroy_node()
    assert from_tf.extrinsic is None
    assert from_tf.transform_source == "/tf_static: camera <- lidar"
    assert from_tf.tf_tree is not None
    composed = from_tf.tf_tree.lookup("camera", "lidar").matrix
    assert np.allclose(composed, np.reshape(sim_camera_extrinsic(), (4, 4)), atol=1e-12)
    for stamp in both():
        tf_cloud, parameter_cloud = from_msg(painted["tf"][stamp]), from_msg(painted["parameter"][stamp])
        assert np.array_equal(tf_cloud, parameter_cloud)  # every field, the colours too
        assert np.count_nonzero(unpack_rgb(tf_cloud[RGB_FIELD]).any(axis=1)) > 1000  # the camera sees the street
    assert from_tf.stats.failed == 0
    assert not from_tf.issues.counts()


def _kitti_edge(extrinsic: np.ndarray, parent: str, child: str) -> FrameTransform:
    """The camera's pose in the LiDAR frame, as /tf_static carries it, from a LiDAR -> camera matrix."""
    pose = np.linalg.inv(extrinsic)
    qx, qy, qz, qw = (float(v) for v in Rotation.from_matrix(pose[:3, :3]).as_quat())
    x, y, z = (float(v) for v in pose[:3, 3])
    return FrameTransform(parent, child, (x, y, z), (qx, qy, qz, qw))


class KittiFusion:
    """A fusion node with ``calibration.from_tf`` on topics of its own, and a player node that sends it real KITTI
    frames (image in 'camera_2', cloud in 'velodyne') and collects the painted clouds by stamp."""

    def __init__(self, ros_context: Context) -> None:
        suffix = uuid.uuid4().hex[:8]
        keys = ("image", "camera_info", "cloud", "painted_cloud", "overlay")
        config = FusionConfig().replace(
            **{f"topics.{key}": f"{key}_{suffix}" for key in keys},
            **{"topics.detections": "", "topics.label_mask": "", "calibration.from_tf": True},
        )
        self.fusion = FusionNode(context=ros_context, defaults=config)
        self.player = rclpy.create_node("kitti_tf_player", context=ros_context)
        self.got: dict[tuple[int, int], PointCloud2] = {}
        self.player.create_subscription(
            PointCloud2,
            config.topics.painted_cloud,
            lambda msg: self.got.__setitem__((msg.header.stamp.sec, msg.header.stamp.nanosec), msg),
            output_qos(5),
        )
        qos = sensor_input_qos(2)
        self.pubs = {
            "image": self.player.create_publisher(Image, config.topics.image, qos),
            "info": self.player.create_publisher(CameraInfo, config.topics.camera_info, qos),
            "cloud": self.player.create_publisher(PointCloud2, config.topics.cloud, qos),
        }

    def play_until(self, sent: dict[str, Any], done: Any, what: str) -> None:
        deadline = time.monotonic() + 20.0
        while not done() and time.monotonic() < deadline:
            for key in ("cloud", "info", "image"):  # best effort: again until answered
                self.pubs[key].publish(sent[key])
            wait_until(done, timeout_s=0.5)
        assert done(), f"timed out waiting for {what}"

    def spinning(self, ros_context: Context) -> Spinner:
        return Spinner(ros_context, self.fusion, self.player)

    def destroy(self) -> None:
        self.fusion.destroy_node()
        self.player.destroy_node()


@pytest.mark.real_data
@pytest.mark.dds
def test_real_frame_waits_for_tf_static_and_says_why(real_data: Path, ros_context: Context) -> None:
    kitti = KittiFusion(ros_context)
    fusion, got = kitti.fusion, kitti.got
    tf_pub = kitti.player.create_publisher(TFMessage, TF_STATIC_TOPIC, tf_static_qos())
    # each step a new stamp (the pairing passes a stamp once)
    steps = [frame_messages(real_data, "000001", 1_700_000_200 + step) for step in range(3)]
    extrinsic = steps[0]["scan"].calib.extrinsic().matrix
    try:
        with kitti.spinning(ros_context):
            wait_for(lambda: all(p.get_subscription_count() > 0 for p in kitti.pubs.values()), "the fusion node")
            kitti.play_until(steps[0], lambda: fusion.frames_waiting >= 1, "a set waiting for /tf_static")
            assert fusion.wait_reason == "no transform names frame 'camera_2' nor 'velodyne' (frames seen: none yet)"
            # a mounting to the wrong camera, and an edge that is not a rotation: still waiting, now saying so
            wrong = _kitti_edge(extrinsic, "velodyne", "camera_3")
            broken = FrameTransform("velodyne", "imu", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 3.0))
            tf_pub.publish(tf_message(Time(sec=1_700_000_200), [wrong, broken]))
            expected_reason = "no transform names frame 'camera_2' (frames seen: camera_3, velodyne)"
            kitti.play_until(steps[1], lambda: fusion.wait_reason == expected_reason, "the reason to name the frame")
            assert fusion.issues.counts() == {TF_TRANSFORM: 1}  # the broken edge, logged once
            # waiting is not failing
            assert not got
            assert fusion.stats.failed == 0
            assert fusion.frames_waiting >= 2
            tf_pub.publish(tf_message(Time(sec=1_700_000_200), [_kitti_edge(extrinsic, "velodyne", "camera_2")]))
            stamp = (steps[2]["cloud"].header.stamp.sec, steps[2]["cloud"].header.stamp.nanosec)
            kitti.play_until(steps[2], lambda: stamp in got, "the painted cloud once /tf_static connects the frames")
    finally:
        kitti.destroy()
    assert fusion.transform_source == "/tf_static: camera_2 <- velodyne"
    assert fusion.wait_reason == ""
    assert fusion.tf_tree is not None
    from_tf = fusion.tf_tree.lookup("camera_2", "velodyne")
    assert np.allclose(from_tf.matrix, extrinsic, atol=1e-6)  # KITTI's matrix, through a quaternion and back
    scan, camera = steps[2]["scan"], PinholeCamera.from_camera_info(steps[2]["info"])
    expected, visible = paint_points(scan.xyz, scan.image, camera, from_tf, occlusion=fusion.occlusion)
    assert visible.sum() > 10_000
    assert np.array_equal(unpack_rgb(from_msg(got[stamp])[RGB_FIELD]), expected)
    assert fusion.stats.failed == 0


@pytest.mark.real_data
@pytest.mark.dds
def test_a_mounting_sent_on_tf_is_read_at_the_clouds_stamp(real_data: Path, ros_context: Context) -> None:
    # some drivers publish the sensor mounting on /tf, stamped, again and again: read at the cloud's stamp
    kitti = KittiFusion(ros_context)
    tf_pub = kitti.player.create_publisher(TFMessage, TF_TOPIC, tf_qos())
    sent = frame_messages(real_data, "000001", 1_700_000_400)
    extrinsic = sent["scan"].calib.extrinsic().matrix
    edge = _kitti_edge(extrinsic, "velodyne", "camera_2")
    stamp = (sent["cloud"].header.stamp.sec, sent["cloud"].header.stamp.nanosec)
    try:
        with kitti.spinning(ros_context):
            wait_for(lambda: all(p.get_subscription_count() > 0 for p in kitti.pubs.values()), "the fusion node")
            tree = kitti.fusion.tf_tree
            assert tree is not None

            def bracketed() -> bool:  # samples before and after the cloud's stamp are in (a set is paired once)
                try:
                    return tree.lookup("camera_2", "velodyne", stamp[0] * 1_000_000_000 + stamp[1]) is not None
                except TransformUnavailableError:
                    return False

            for sec in (1_700_000_399, 1_700_000_401):
                tf_pub.publish(tf_message(Time(sec=sec), [edge]))
            wait_for(bracketed, "both /tf samples")
            kitti.play_until(sent, lambda: stamp in kitti.got, "the painted cloud")
    finally:
        kitti.destroy()
    assert kitti.fusion.transform_source == f"/tf at {stamp[0] + stamp[1] / 1e9:.3f} s: camera_2 <- velodyne"
    scan, camera = sent["scan"], PinholeCamera.from_camera_info(sent["info"])
    expected, _ = paint_points(scan.xyz, scan.image, camera, Extrinsic(extrinsic), occlusion=kitti.fusion.occlusion)
    painted = unpack_rgb(from_msg(kitti.got[stamp])[RGB_FIELD])
    assert (painted == expected).all(axis=1).mean() > 0.999  # the same matrix, through a quaternion and back
    assert kitti.fusion.stats.failed == 0
    assert not kitti.fusion.issues.counts()


@pytest.mark.dds
def test_record_keeps_tf_static_and_replay_latches_it_again(
    local_env: dict[str, str], ros_context: Context, tmp_path: Path
) -> None:
    node = rclpy.create_node("mounting", context=ros_context)
    mounting = [
        FrameTransform("base_link", "lidar", (0.0, 0.0, 1.73), (0.0, 0.0, 0.0, 1.0)),
        FrameTransform("lidar", "camera", (0.27, 0.0, -0.08), (0.5, -0.5, 0.5, -0.5)),
    ]
    sent = tf_message(Time(sec=1_700_000_300), mounting)
    publisher = node.create_publisher(TFMessage, TF_STATIC_TOPIC, tf_static_qos())
    publisher.publish(sent)  # before the recorder exists: it gets it only as a latched message
    out = tmp_path / "static.mcap"
    child = subprocess.Popen(
        [sys.executable, "-m", "perception_ws.cli", "record", "--out", str(out)],  # the default topics
        env=local_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: publisher.get_subscription_count() > 0 or child.poll() is not None, "the recorder", 30)
        assert publisher.wait_for_all_acked(Duration(seconds=20))
        time.sleep(0.5)  # acknowledged means received; give the callback its moment to write
        child.send_signal(signal.SIGINT)
        output, _ = child.communicate(timeout=20)
    finally:
        child.kill()
        node.destroy_node()
    assert child.returncode == 0, output
    with AnyReader([out]) as reader:
        (connection,) = [c for c in reader.connections if c.topic == TF_STATIC_TOPIC]
        assert connection.msgtype == "tf2_msgs/msg/TFMessage"
        (recorded,) = [bytes(raw) for c, _, raw in reader.messages() if c.topic == TF_STATIC_TOPIC]
    assert deserialize_message(recorded, TFMessage) == sent

    player_node = rclpy.create_node("replay", context=ros_context)
    listener = rclpy.create_node("late_listener", context=ros_context)
    got: list[TFMessage] = []
    reader = open_replay_reader(out)
    try:
        plan = plan_replay(reader, [TF_STATIC_TOPIC])
        assert plan.topics[TF_STATIC_TOPIC].transient_local  # latched, though the bag stores no QoS
        player = BagPlayer(player_node, reader, plan)
        assert player.play_once() == 1
        with Spinner(ros_context, listener):
            listener.create_subscription(TFMessage, TF_STATIC_TOPIC, got.append, tf_static_qos(LISTENER_DEPTH))
            wait_for(lambda: bool(got), "the replayed /tf_static at a subscriber that joined after it")
    finally:
        reader.close()
        player_node.destroy_node()
        listener.destroy_node()
    assert got == [sent]


def test_one_source_of_the_transform_and_rviz_shows_the_tree() -> None:
    with pytest.raises(ConfigError, match=r"calibration\.extrinsic and calibration\.from_tf are set together"):
        FusionConfig().replace(**{"calibration.from_tf": True, "calibration.extrinsic": sim_camera_extrinsic()})
    shipped = yaml.safe_load((REPO / "config" / "perception.yaml").read_text(encoding="utf-8"))
    fusion = shipped[section_key(FUSION_NODE_NAME)]["ros__parameters"]
    assert fusion["calibration"]["from_tf"] is False  # a file or matrix by default
    rviz = yaml.safe_load((REPO / "launch" / "perception.rviz").read_text(encoding="utf-8"))
    (tf_display,) = [d for d in rviz["Visualization Manager"]["Displays"] if d["Class"] == "rviz_default_plugins/TF"]
    assert tf_display["Enabled"]
    assert tf_display["Show Names"]


def test_a_bad_transform_in_a_message_is_named_and_the_good_ones_still_count() -> None:
    good = FrameTransform("odom", "base_link", (1.0, 2.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    unit_less = FrameTransform("base_link", "lidar", (0.0, 0.0, 1.7), (0.0, 0.0, 0.0, 0.5))
    msg = tf_message(Time(sec=1_700_000_000), [good, unit_less])
    bad_stamp = tf_message(Time(sec=1_700_000_001, nanosec=1_500_000_000), [good])  # nanosec past a second
    tree = TransformTree()
    problems = add_tf_message(tree, msg, timed=True) + add_tf_message(tree, bad_stamp, timed=True)
    assert len(problems) == 2
    assert problems[0].startswith("transform 'base_link' -> 'lidar': quaternion")
    assert "has length 0.5" in problems[0]
    assert problems[1].startswith("transform 'odom' -> 'base_link': stamp")
    assert "out of range" in problems[1]
    assert np.allclose(tree.lookup("odom", "base_link", 1_700_000_000_000_000_000).translation, [1.0, 2.0, 0.0])
