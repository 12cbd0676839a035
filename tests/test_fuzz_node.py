"""Thousands of malformed PointCloud2 through the perception node's subscription callback.

The messages are real rclpy PointCloud2 objects handed to the real node's callback (``on_cloud``, what
the executor calls), not published over DDS: best-effort DDS would drop an unknown share of a burst of
thousands, and a message the middleware cannot even deserialize never reaches a node. The good frame
at the end goes the whole way: callback, worker, pipeline, and its labelled cloud over DDS to a listener.
Each reason must be counted exactly and logged exactly once, and the node must keep serving.
"""

from __future__ import annotations

import array
import re
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from sensor_msgs.msg import PointCloud2, PointField

from perception_ws.cloud import to_msg
from perception_ws.config import PerceptionConfig
from perception_ws.io import load
from perception_ws.nodes.intake import NON_FINITE_POINTS, REJECT_REASONS
from perception_ws.nodes.perception_node import PerceptionNode
from perception_ws.nodes.qos import output_qos
from tests.helpers.data import with_label_field
from tests.helpers.ros import Spinner, wait_for

pytestmark = pytest.mark.real_data

#: malformed messages per intake reason (the 2-million-point cloud comes on top).
PER_REASON = 400


def small_cloud(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """A few dozen finite points with intensity, ring and a label field (x y z intensity float32 + uint16 + uint8)."""
    n = int(rng.integers(1, 64)) if n is None else n
    points = np.zeros(
        n, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4"), ("ring", "u2"), ("label", "u1")]
    )
    for axis in ("x", "y", "z"):
        points[axis] = rng.uniform(-30, 30, n)
    return points


def fields_of(msg: PointCloud2) -> list[PointField]:
    return [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in msg.fields]


def _missing_xyz(rng: np.random.Generator) -> PointCloud2:
    msg = to_msg(small_cloud(rng))
    fields = fields_of(msg)
    victim = int(rng.integers(0, 3))
    if rng.random() < 0.5:
        del fields[victim]
    else:
        fields[victim].name = str(rng.choice(["X", "xx", "", "range"]))  # renamed, or an empty name
    msg.fields = fields
    return msg


def _bad_xyz_type(rng: np.random.Generator) -> PointCloud2:
    msg = to_msg(small_cloud(rng))
    fields = fields_of(msg)
    fields[int(rng.integers(0, 3))].datatype = int(rng.choice([1, 2, 3, 4, 5, 6]))  # an integer coordinate
    msg.fields = fields
    return msg


def _bad_layout(rng: np.random.Generator) -> PointCloud2:
    msg = to_msg(small_cloud(rng))
    fields = fields_of(msg)
    kind = int(rng.integers(0, 6))
    if kind == 0:  # a datatype code PointField does not define
        fields[int(rng.integers(0, len(fields)))].datatype = int(rng.choice([0, *range(9, 256)]))
    elif kind == 1:  # count 0
        fields[int(rng.integers(0, len(fields)))].count = 0
    elif kind == 2:  # a field lying past the end of the point
        fields[int(rng.integers(0, len(fields)))].offset = msg.point_step + int(rng.integers(0, 8))
    elif kind == 3:  # two fields sharing bytes
        fields[1].offset = int(rng.integers(0, 3))
    elif kind == 4:  # a duplicate name
        fields.append(PointField(name="x", offset=0, datatype=7, count=1))
    else:  # rows shorter than their points (data long enough, so it is not a truncation)
        msg.height, msg.width = 2, msg.width // 2 + 1
        msg.row_step = msg.width * msg.point_step - int(rng.integers(1, msg.point_step))
        msg.data = array.array("B", bytes(msg.width * msg.point_step * 2))
        msg.fields = fields
        return msg
    msg.fields = fields
    return msg


def _truncated(rng: np.random.Generator) -> PointCloud2:
    msg = to_msg(small_cloud(rng, int(rng.integers(2, 64))))
    if rng.random() < 0.5:
        msg.data = msg.data[: int(rng.integers(0, len(msg.data)))]  # cut short
    else:
        msg.point_step += 4  # a wrong step: the same bytes claim to hold more
        msg.row_step = msg.point_step * msg.width
    return msg


def _empty(rng: np.random.Generator) -> PointCloud2:
    msg = to_msg(small_cloud(rng, 0))
    if rng.random() < 0.5:
        msg.height = 0
    return msg


def _no_finite_points(rng: np.random.Generator) -> PointCloud2:
    points = small_cloud(rng)
    for axis in ("x", "y", "z"):
        broken = rng.random(len(points)) < 0.5
        points[axis][broken] = rng.choice([np.nan, np.inf, -np.inf])
    points["x"][np.isfinite(points["x"]) & np.isfinite(points["y"]) & np.isfinite(points["z"])] = np.nan
    return to_msg(points)


def _too_many_points(rng: np.random.Generator) -> PointCloud2:
    msg = to_msg(small_cloud(rng, 4))
    msg.width = int(rng.integers(1_000_001, 2**32 - 1))  # claims more points than it holds
    return msg


def _implausible_coordinates(rng: np.random.Generator) -> PointCloud2:
    points = small_cloud(rng)
    far = rng.random(len(points)) < 0.3
    far[int(rng.integers(0, len(points)))] = True
    axis = str(rng.choice(["x", "y", "z"]))
    points[axis][far] = rng.choice([-1.0, 1.0], int(far.sum())) * 10.0 ** rng.uniform(4, 30, int(far.sum()))
    return to_msg(points)


def _denormal_coordinates(rng: np.random.Generator) -> PointCloud2:
    points = small_cloud(rng)
    points[str(rng.choice(["x", "y", "z"]))][int(rng.integers(0, len(points)))] = 10.0 ** rng.uniform(-44.5, -38.5)
    return to_msg(points)


def _ring_out_of_range(rng: np.random.Generator) -> PointCloud2:
    points = small_cloud(rng)
    points["ring"] = rng.integers(0, 64, len(points))
    points["ring"][int(rng.integers(0, len(points)))] = int(rng.integers(64, 2**16))  # the HDL-64E has 64 rings
    return to_msg(points)


MAKERS: dict[str, Callable[[np.random.Generator], PointCloud2]] = {
    "missing_xyz": _missing_xyz,
    "bad_xyz_type": _bad_xyz_type,
    "bad_layout": _bad_layout,
    "truncated": _truncated,
    "empty": _empty,
    "no_finite_points": _no_finite_points,
    "too_many_points": _too_many_points,
    "implausible_coordinates": _implausible_coordinates,
    "denormal_coordinates": _denormal_coordinates,
    "ring_out_of_range": _ring_out_of_range,
}


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
