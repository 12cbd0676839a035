"""The perception node over real DDS on loopback: real KITTI scans in, labelled clouds, detections, tracks,
markers and diagnostics out; its parameters; latest-only processing; its entry point."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from perception_ws.cloud import from_msg, to_msg
from perception_ws.config import ConfigError, PerceptionConfig, descriptions, flatten, to_params_document
from perception_ws.io import load
from perception_ws.labels import KITTI3
from perception_ws.msg import Detection3DArray, Track, TrackArray
from perception_ws.nodes.latest import LatestSlot
from perception_ws.nodes.perception_node import PerceptionNode
from perception_ws.nodes.qos import output_qos, sensor_input_qos
from tests.helpers.data import LABELLED, REPO, with_label_field
from tests.helpers.ros import WAIT_S, Spinner, wait_for, wait_until

CAR = KITTI3.id_of("car")


class Outputs:
    """Subscribes to every output of a perception node and keeps the messages by input stamp."""

    def __init__(self, node: Node, config: PerceptionConfig) -> None:
        self.by_stamp: dict[str, dict[tuple[int, int], Any]] = {
            "cloud": {},
            "detections": {},
            "tracks": {},
            "markers": {},
        }
        self.diagnostics: list[DiagnosticArray] = []
        topics, qos = config.topics, output_qos(10)
        for key, kind, topic in (
            ("cloud", PointCloud2, topics.labelled_cloud),
            ("detections", Detection3DArray, topics.detections),
            ("tracks", TrackArray, topics.tracks),
            ("markers", MarkerArray, topics.markers),
        ):
            node.create_subscription(kind, topic, self._keeper(key), qos)
        node.create_subscription(DiagnosticArray, topics.diagnostics, self.diagnostics.append, qos)

    def _keeper(self, key: str) -> Callable[[Any], None]:
        def keep(msg: Any) -> None:
            stamp = msg.markers[0].header.stamp if key == "markers" else msg.header.stamp
            self.by_stamp[key][(stamp.sec, stamp.nanosec)] = msg

        return keep

    def complete(self, stamp: tuple[int, int]) -> bool:
        return all(stamp in messages for messages in self.by_stamp.values())


def start_node_process(env: dict[str, str], params: dict[str, Any], tmp_path: Path) -> subprocess.Popen[str]:
    """The node as users start it: ``python -m perception_ws.nodes.perception_node --ros-args --params-file``."""
    path = tmp_path / "perception.yaml"
    path.write_text(yaml.safe_dump(params))
    return subprocess.Popen(
        [sys.executable, "-m", "perception_ws.nodes.perception_node", "--ros-args", "--params-file", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.real_data
@pytest.mark.dds
def test_real_kitti_scans_come_back_labelled_with_detections(
    real_data: Path, local_env: dict[str, str], ros_context: Context, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    config = PerceptionConfig().replace(**LABELLED, **{"topics.input": f"kitti_{suffix}"})
    process = start_node_process(local_env, to_params_document(config), tmp_path)
    node = rclpy.create_node("kitti_player", context=ros_context)
    outputs = Outputs(node, config)
    publisher = node.create_publisher(PointCloud2, config.topics.input, sensor_input_qos(2))
    scans = [load(real_data / "kitti_object" / "velodyne" / f"00000{i}.bin") for i in range(3)]
    scans.append(load(real_data / "semantickitti" / "000000.bin"))
    try:
        with Spinner(ros_context, node):
            wait_for(lambda: publisher.get_subscription_count() > 0 or process.poll() is not None, "the node")
            for index, scan in enumerate(scans):
                sent = to_msg(with_label_field(scan), frame_id="velodyne", stamp=(1_700_000_000 + index, 250_000_000))
                stamp = (sent.header.stamp.sec, sent.header.stamp.nanosec)
                deadline = time.monotonic() + WAIT_S
                while not outputs.complete(stamp) and time.monotonic() < deadline and process.poll() is None:
                    publisher.publish(sent)  # best effort: publish again until the results are in
                    wait_until(lambda s=stamp: outputs.complete(s), timeout_s=1.0)  # type: ignore[misc]
                assert outputs.complete(stamp), f"no results for scan {scan.name} within {WAIT_S} s"
                check_results(scan, sent, {key: got[stamp] for key, got in outputs.by_stamp.items()})
            wait_for(lambda: any(_processed(d) >= len(scans) for d in outputs.diagnostics), "diagnostics")
    finally:
        node.destroy_node()
        process.send_signal(signal.SIGINT)
        log, _ = process.communicate(timeout=WAIT_S)
    assert process.returncode == 0, log
    assert "listening on /kitti_" in log
    status = outputs.diagnostics[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.hardware_id == "hdl64e"
    assert float(values["processing_ms_p50"]) > 0
    assert int(values["frames_rejected"]) == 0
    assert int(values["frames_failed"]) == 0


def check_results(scan: Any, sent: PointCloud2, results: dict[str, Any]) -> None:
    for key in ("cloud", "detections", "tracks"):
        assert results[key].header == sent.header, key
    assert all(marker.header == sent.header for marker in results["markers"].markers)
    cloud = from_msg(results["cloud"])
    assert cloud.dtype.names == ("x", "y", "z", "intensity", "instance", "label")
    for name in ("x", "y", "z", "intensity"):
        assert np.array_equal(cloud[name], scan.points[name])
    assert np.array_equal(cloud["label"], scan.labels)
    detections = results["detections"].detections
    assert cloud["instance"].max() == len(detections)
    xyz = scan.xyz
    for k, detection in enumerate(detections, start=1):
        assert detection.header == sent.header
        assert detection.class_name == KITTI3.names[detection.class_id]
        members = cloud["instance"] == k
        assert np.all(cloud["label"][members] == detection.class_id)
        centre = np.array([detection.center.x, detection.center.y, detection.center.z])
        assert np.linalg.norm(xyz[members].mean(axis=0)[:2] - centre[:2]) < max(detection.size.x, detection.size.y)
    cars = [d for d in detections if d.class_id == CAR]
    if scan.boxes:  # kitti_object: every car with >= 50 points is found, inside its ground-truth box
        truth = [box for box in scan.boxes if box.label == CAR and box.num_points >= 50]
        for box in truth:
            assert any(box.contains(np.array([[d.center.x, d.center.y, d.center.z]]), margin=0.5)[0] for d in cars)
        assert len(cars) >= len(truth)
    else:  # semantickitti: every car of >= 100 points comes back as one instance made of its points
        ids, counts = np.unique(scan.instances[scan.labels == CAR], return_counts=True)
        for car in ids[(counts >= 100) & (ids != 0)]:
            found, overlap = np.unique(cloud["instance"][scan.instances == car], return_counts=True)
            overlap[found == 0] = 0
            assert overlap.max() >= 0.6 * np.count_nonzero(scan.instances == car)
            assert detections[found[np.argmax(overlap)] - 1].class_id == CAR
    markers = results["markers"].markers
    assert markers[0].action == Marker.DELETEALL
    boxes = [m for m in markers if m.ns == "boxes"]
    assert len(boxes) == len(detections)
    assert all(m.type == Marker.LINE_LIST and len(m.points) == 24 for m in boxes)
    assert [m.text.split()[0] for m in markers if m.ns == "labels"] == [d.class_name for d in detections]
    tracks = results["tracks"].tracks  # every detection either updated a track or started one
    assert len(tracks) >= len(detections)
    assert [t.track_id for t in tracks] == sorted(t.track_id for t in tracks)
    assert all(t.header == sent.header and 1 <= t.hits <= t.age for t in tracks)
    # A busy node may get a scan twice (the loop above publishes again until its results are in): the repeat
    # confirms that scan's tracks, and the next, unrelated scan reports them LOST. A lost track has missed.
    assert {t.state for t in tracks} <= {Track.STATE_TENTATIVE, Track.STATE_CONFIRMED, Track.STATE_LOST}
    assert all(t.hits < t.age for t in tracks if t.state == Track.STATE_LOST)


def _processed(diagnostics: DiagnosticArray) -> int:
    values = {kv.key: kv.value for kv in diagnostics.status[0].values}
    return int(values.get("frames_processed", 0))


@pytest.mark.dds
def test_parameters_mirror_the_schema_and_are_fixed_once_running(ros_context: Context) -> None:
    args = ["--ros-args", "-p", "sensor.width:=1024", "-p", "detection.classes:=[car]", "-p", "sensor.fov_deg:=90"]
    node = PerceptionNode(context=ros_context, defaults=PerceptionConfig().replace(**LABELLED), cli_args=args)
    try:
        declared = set(node._parameters) - {"use_sim_time", "start_type_description_service"}
        assert declared == set(flatten(node.config)) == set(descriptions(PerceptionConfig))
        assert node.config.sensor.width == 1024
        assert node.config.sensor.fov_deg == 90.0
        assert node.config.detection.classes == ("car",)
        assert node.config.segmenter.kind == "labels"
        assert node.describe_parameter("sensor.width").description == descriptions(PerceptionConfig)["sensor.width"]
        result = node.set_parameters([Parameter("sensor.width", value=512)])[0]
        assert not result.successful
        assert "read-only" in result.reason
        assert node.set_parameters([Parameter("use_sim_time", value=True)])[0].successful
    finally:
        node.destroy_node()
    with pytest.raises(ConfigError, match=r"sensor\.width = 'wide'.*expected an integer"):
        PerceptionNode(context=ros_context, cli_args=["--ros-args", "-p", "sensor.width:=wide"])


@pytest.mark.real_data
@pytest.mark.dds
def test_frames_arriving_while_busy_replace_the_waiting_one(real_data: Path, ros_context: Context) -> None:
    suffix = uuid.uuid4().hex[:8]
    defaults = PerceptionConfig().replace(**LABELLED, **{"topics.labelled_cloud": f"labelled_{suffix}"})
    node = PerceptionNode(context=ros_context, defaults=defaults)
    listener = rclpy.create_node("listener", context=ros_context)
    stamps: list[int] = []
    listener.create_subscription(
        PointCloud2, defaults.topics.labelled_cloud, lambda m: stamps.append(m.header.stamp.sec), output_qos(20)
    )
    points = with_label_field(load(real_data / "semantickitti" / "000000.bin"))
    messages = [to_msg(points, frame_id="velodyne", stamp=(sec, 0)) for sec in range(1, 11)]
    try:
        with Spinner(ros_context, listener):
            wait_for(lambda: node.cloud_pub.get_subscription_count() > 0, "discovery")
            for msg in messages:  # through the subscription callback, faster than the worker can keep up
                node.on_cloud(msg)
            wait_for(lambda: node.stats.processed + node.frames_dropped == 10, "the worker")
            wait_for(lambda: len(stamps) == node.stats.processed, "the labelled clouds")
    finally:
        listener.destroy_node()
        node.destroy_node()
    assert node.frames_dropped >= 5  # each frame takes tens of ms; the callbacks took well under one
    # the worker always took the newest frame: increasing stamps, ending with the last one
    assert stamps[-1] == 10
    assert stamps == sorted(set(stamps))
    assert len(stamps) == 10 - node.frames_dropped
    assert node.stats.received == 10
    assert node.frames_rejected() == 0


def test_latest_slot_keeps_only_the_newest_item() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take(timeout_s=0.01) is None
    assert [slot.put(i) for i in range(4)] == [False, True, True, True]
    assert slot.dropped == 3
    assert slot.take() == 3
    assert slot.take(timeout_s=0.01) is None
    got: list[int | None] = []
    worker = threading.Thread(target=lambda: got.append(slot.take()))
    worker.start()
    slot.put(7)
    worker.join(timeout=5.0)
    assert got == [7]
    slot.put(8)
    slot.close()
    assert slot.take() is None  # closed: the worker stops even with an item waiting


@pytest.mark.dds
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sensor": {"widht": 1024}}, "unknown key 'sensor.widht'; did you mean 'sensor.width'"),
        ({"segmenter": {"weights": "/nonexistent/w.pt"}}, "/nonexistent/w.pt: no such weights file"),
    ],
)
def test_the_entry_point_exits_with_one_line_on_a_bad_start(
    local_env: dict[str, str], tmp_path: Path, params: dict[str, Any], message: str
) -> None:
    process = start_node_process(local_env, {"perception_node": {"ros__parameters": params}}, tmp_path)
    log, _ = process.communicate(timeout=WAIT_S)
    assert process.returncode == 1
    assert message in log
    assert "Traceback" not in log
