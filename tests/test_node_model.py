"""The perception node with the shipped trained network, over real DDS on loopback: real KITTI scans in,
labelled clouds and detections out, and the car points it finds are the ground truth's car points."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from sensor_msgs.msg import PointCloud2

from perception_ws.cloud import from_msg, to_msg
from perception_ws.config import PerceptionConfig
from perception_ws.io import load
from perception_ws.labels import KITTI3
from perception_ws.models.network_segmenter import NetworkSegmenter
from perception_ws.msg import Detection3DArray
from perception_ws.nodes.perception_node import PerceptionNode
from perception_ws.nodes.qos import output_qos, sensor_input_qos
from perception_ws.scan import Scan
from tests.helpers.ros import WAIT_S, Spinner, wait_until

pytestmark = pytest.mark.real_data

CAR = KITTI3.id_of("car")
#: car IoU the node must reach on each scan. The shipped weights score about 0.35-0.8 on these scans
#: (trained on simulated scans only); labelling the same number of points as car at random would give
#: about the car share of the scan, a few percent.
MIN_CAR_IOU = 0.2


def car_iou(truth: np.ndarray, labels: np.ndarray) -> float:
    t, p = truth.reshape(-1) == CAR, labels.reshape(-1) == CAR
    return float((t & p).sum() / max((t | p).sum(), 1))


@pytest.mark.dds
def test_real_scans_come_back_labelled_by_the_shipped_model(real_data: Path, ros_context: Context) -> None:
    suffix = uuid.uuid4().hex[:8]
    config = PerceptionConfig().replace(
        **{"topics.input": f"real_{suffix}", "topics.labelled_cloud": f"labelled_{suffix}"},
        **{"topics.detections": f"detections_{suffix}", "topics.diagnostics": f"diagnostics_{suffix}"},
        **{"output.diagnostics_period_s": 0.2},
    )
    assert config.segmenter.kind == "model"
    assert config.segmenter.weights == ""  # the shipped default weights
    node = PerceptionNode(context=ros_context, defaults=config)
    assert isinstance(node.pipeline.segmenter, NetworkSegmenter)
    player = rclpy.create_node("real_player", context=ros_context)
    got: dict[str, dict[tuple[int, int], Any]] = {"cloud": {}, "detections": {}}

    def keep(key: str) -> Any:
        def callback(msg: Any) -> None:
            got[key][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

        return callback

    player.create_subscription(PointCloud2, config.topics.labelled_cloud, keep("cloud"), output_qos(5))
    player.create_subscription(Detection3DArray, config.topics.detections, keep("detections"), output_qos(5))
    diagnostics: list[dict[str, str]] = []
    player.create_subscription(
        DiagnosticArray,
        config.topics.diagnostics,
        lambda msg: diagnostics.append({kv.key: kv.value for kv in msg.status[0].values}),
        output_qos(5),
    )
    publisher = player.create_publisher(PointCloud2, config.topics.input, sensor_input_qos(2))
    # a frame of KITTI raw as released with SqueezeSeg (front 90 degrees, labels from 3D boxes) and a full
    # SemanticKITTI sweep (point-wise labels)
    scans = [load(real_data / "kitti_squeezeseg" / "2011_09_26_0001_0000000030.npy")]
    scans.append(load(real_data / "semantickitti" / "000000.bin"))
    try:
        with Spinner(ros_context, node, player):
            assert wait_until(lambda: publisher.get_subscription_count() > 0, WAIT_S), "the node never subscribed"
            for index, scan in enumerate(scans):
                sent = to_msg(scan.points, frame_id="velodyne", stamp=(1_700_000_100 + index, 500_000_000))
                stamp = (sent.header.stamp.sec, sent.header.stamp.nanosec)
                deadline = time.monotonic() + WAIT_S
                while not all(stamp in g for g in got.values()) and time.monotonic() < deadline:
                    publisher.publish(sent)  # best effort: again until the results are in
                    wait_until(lambda s=stamp: all(s in g for g in got.values()), timeout_s=2.0)  # type: ignore[misc]
                assert all(stamp in g for g in got.values()), f"no results for {scan.name} within {WAIT_S} s"
                check_model_results(scan, sent, got["cloud"][stamp], got["detections"][stamp])
            done = len(scans)
            assert wait_until(lambda: any(int(d.get("frames_processed", 0)) >= done for d in diagnostics), WAIT_S)
            check_stage_times(next(d for d in diagnostics if int(d["frames_processed"]) >= done))
    finally:
        node.destroy_node()
        player.destroy_node()
    assert node.stats.failed == 0, node.issues.counts()
    assert not node.issues.counts(), node.issues.counts()


def check_model_results(scan: Scan, sent: PointCloud2, cloud_msg: Any, detections_msg: Any) -> None:
    assert cloud_msg.header == sent.header
    assert detections_msg.header == sent.header
    cloud = from_msg(cloud_msg)
    sent_fields = tuple(f.name for f in sent.fields)
    assert cloud.dtype.names == (*sent_fields, "instance", "label")  # the input's fields kept, two added
    for name in sent_fields:
        assert np.array_equal(cloud[name], scan.points[name])
    labels = cloud["label"].reshape(-1)
    assert set(np.unique(labels)) <= set(KITTI3.ids)
    assert scan.labels is not None
    iou = car_iou(scan.labels, labels)
    assert iou > MIN_CAR_IOU, f"{scan.name}: car IoU {iou:.3f}"
    detections = detections_msg.detections
    assert cloud["instance"].max() == len(detections) >= 1
    truth_car = scan.labels.reshape(-1) == CAR
    instances = cloud["instance"].reshape(-1)
    # the detected cars are made of real car points: most of the points of some car detection are labelled car
    shares = [truth_car[instances == k].mean() for k, d in enumerate(detections, start=1) if d.class_id == CAR]
    assert shares, (scan.name, shares)
    assert max(shares) > 0.5, (scan.name, shares)


def check_stage_times(values: dict[str, str]) -> None:
    """The diagnostics name where the scans' time went: every stage of the pipeline and the node's serialisation,
    the network and its CRF apart, each a plausible time that fits inside the stage it is part of."""
    stages = ["projection", "segmentation", "network", "crf", "back_projection", "detection", "ground", "clustering"]
    stages += ["boxes", "instances", "tracking", "total", "serialisation"]
    ms = {(name, stat): float(values[f"stage_{name}_ms_{stat}"]) for name in stages for stat in ("mean", "p50", "p99")}
    for name in stages:
        assert 0.0 <= ms[name, "p50"] <= ms[name, "p99"] < 60_000.0, (name, values)
    for name in ("projection", "network", "crf", "back_projection", "ground", "serialisation"):
        assert ms[name, "mean"] > 0.0, (name, values)  # real work on a real scan takes time
    # the parts are inside their stage (rounded to 0.01 ms in the message)
    assert ms["network", "mean"] + ms["crf", "mean"] <= ms["segmentation", "mean"] + 0.02
    assert ms["ground", "mean"] + ms["clustering", "mean"] + ms["boxes", "mean"] <= ms["detection", "mean"] + 0.03
    assert ms["segmentation", "mean"] + ms["detection", "mean"] <= ms["total", "mean"] + 0.02
