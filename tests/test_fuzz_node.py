"""Thousands of malformed PointCloud2 through the perception node's subscription callback.

The messages are real rclpy PointCloud2 objects handed to the real node's callback (``on_cloud``, what
the executor calls), not published over DDS: best-effort DDS would drop an unknown share of a burst of
thousands, and a message the middleware cannot even deserialize never reaches a node. The good frame
at the end goes the whole way: callback, worker, pipeline, and its labelled cloud over DDS to a listener.
Each reason must be counted exactly and logged exactly once, and the node must keep serving.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from sensor_msgs.msg import PointCloud2

from perception_ws.cloud import to_msg
from perception_ws.config import PerceptionConfig
from perception_ws.io import load
from perception_ws.nodes.intake import NON_FINITE_POINTS, REJECT_REASONS
from perception_ws.nodes.malformed_clouds import MAKERS
from perception_ws.nodes.perception_node import PerceptionNode
from perception_ws.nodes.qos import output_qos
from tests.helpers.data import with_label_field
from tests.helpers.ros import Spinner, wait_for

pytestmark = pytest.mark.real_data

#: malformed messages per intake reason (the 2-million-point cloud comes on top).
PER_REASON = 400


@pytest.mark.dds
def test_thousands_of_bad_clouds_are_counted_logged_once_and_do_not_stop_the_node(
    real_data: Path, ros_context: Context, capfd: pytest.CaptureFixture[str]
) -> None:
    assert set(MAKERS) == set(REJECT_REASONS)
    rng = np.random.default_rng(20240611)
    sent = Counter({reason: PER_REASON for reason in MAKERS})
    messages = [(reason, MAKERS[reason](rng)) for reason in MAKERS for _ in range(PER_REASON)]
    huge = np.zeros(2_000_000, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4")])
    messages.append(("too_many_points", to_msg(huge, frame_id="velodyne")))  # a real 2-million-point cloud
    sent["too_many_points"] += 1
    order = rng.permutation(len(messages))

    suffix = uuid.uuid4().hex[:8]
    defaults = PerceptionConfig().replace(
        **{"segmenter.kind": "labels", "topics.input": f"fuzz_{suffix}", "topics.labelled_cloud": f"out_{suffix}"}
    )
    node = PerceptionNode(context=ros_context, defaults=defaults)
    listener = rclpy.create_node("fuzz_listener", context=ros_context)
    stamps: list[int] = []
    listener.create_subscription(
        PointCloud2, defaults.topics.labelled_cloud, lambda m: stamps.append(m.header.stamp.sec), output_qos(10)
    )
    try:
        with Spinner(ros_context, listener):
            for index in order:
                node.on_cloud(messages[index][1])
            assert node.issues.counts() == dict(sent)
            # nothing bad reached the worker
            assert node.stats.processed == 0
            assert node.frames_dropped == 0

            # frames the intake accepts but that are still wrong: one at a time through the worker
            scan = load(real_data / "semantickitti" / "000000.bin")
            good = with_label_field(scan)
            partly_nan = good.copy()
            partly_nan["x"][::7] = np.nan
            wrong_labels = good.copy()
            wrong_labels["label"][:10] = 9
            for sec, points in enumerate([partly_nan, scan.points, wrong_labels, partly_nan], start=1):
                handled = node.stats.processed + node.stats.failed
                node.on_cloud(to_msg(points, frame_id="velodyne", stamp=(sec, 0)))
                wait_for(lambda h=handled: node.stats.processed + node.stats.failed > h, "the worker")  # type: ignore[misc]

            wait_for(lambda: node.cloud_pub.get_subscription_count() > 0, "discovery")
            node.on_cloud(to_msg(good, frame_id="velodyne", stamp=(100, 0)))
            wait_for(lambda: 100 in stamps, "the good frame's labelled cloud")
    finally:
        listener.destroy_node()
        node.destroy_node()

    counts = node.issues.counts()
    assert counts[NON_FINITE_POINTS] == 2
    assert counts["pipeline_CloudFormatError"] == 2  # no label field; label 9 outside kitti3
    assert node.stats.processed == 3
    assert node.stats.failed == 2
    assert node.frames_dropped == 0
    assert node.frames_rejected() == sum(sent.values()) == len(MAKERS) * PER_REASON + 1
    log = capfd.readouterr().err
    for reason in [*MAKERS, NON_FINITE_POINTS, "pipeline_CloudFormatError"]:
        lines = re.findall(rf"frame problem '{reason}': .*", log)
        assert len(lines) == 1, f"{reason}: logged {len(lines)} times"
    # the first of the two, and only it
    assert "no field 'label'" in log
    assert "ids 0..9" not in log
