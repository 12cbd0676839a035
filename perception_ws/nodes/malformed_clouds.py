"""Malformed PointCloud2 messages, one maker per intake reject reason (perception_ws.nodes.intake).

For robustness checks of the intake: tests/test_fuzz_node.py (through the node's callback) and
benchmarks/bench_fuzz.py (over DDS to a live node) send them. Each maker builds a real rclpy message from a
small valid cloud and breaks it in one way.
"""

from __future__ import annotations

import array
from collections.abc import Callable

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from perception_ws.cloud import to_msg


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
    """Copies of ``msg``'s field descriptions, to break one without touching the message."""
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
