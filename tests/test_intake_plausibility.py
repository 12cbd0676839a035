"""Clouds whose layout parses but whose values cannot be measurements, the DDS size warning, and latencies
from bogus stamps: what the hostile probe found passing silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.calib.sensors import get_sensor
from perception_ws.cloud import to_msg
from perception_ws.io import load
from perception_ws.nodes.diagnostics import PLAUSIBLE_LATENCY_MS, NodeStats
from perception_ws.nodes.intake import RejectedFrameError, accept_cloud, transport_warning
from perception_ws.ros_env import local_dds_env, shm_segment_bytes

HDL64E = get_sensor("hdl64e")


def reason_of(msg: object, sensor: object = HDL64E) -> str:
    with pytest.raises(RejectedFrameError) as info:
        accept_cloud(msg, 10**6, 0.0, sensor)  # type: ignore[arg-type]
    return info.value.reason


@pytest.mark.real_data
def test_a_real_scan_passes_and_the_same_bytes_with_the_wrong_byte_order_do_not(real_data: Path) -> None:
    points = load(real_data / "semantickitti" / "000000.bin").points
    frame = accept_cloud(to_msg(points), 10**6, 0.0, HDL64E)
    assert frame.points.size == len(points)
    flipped = to_msg(points)
    flipped.is_bigendian = True  # a driver that says big-endian but sends little-endian floats
    assert reason_of(flipped) in ("implausible_coordinates", "denormal_coordinates")


def test_coordinates_beyond_reach_or_denormal_and_rings_the_sensor_lacks_are_rejected() -> None:
    points = np.zeros(50, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("ring", "u2")])
    points["x"] = np.linspace(2, 80, 50)
    accept_cloud(to_msg(points), 10**6, 0.0, HDL64E)
    far = points.copy()
    far["y"][3] = 5e3
    assert reason_of(to_msg(far)) == "implausible_coordinates"
    assert reason_of(to_msg(far), None) == "implausible_coordinates"  # the fusion node's intake: no sensor
    tiny = points.copy()
    tiny["z"][7] = 1e-40
    assert reason_of(to_msg(tiny)) == "denormal_coordinates"
    rings = points.copy()
    rings["ring"][0] = 64
    assert reason_of(to_msg(rings)) == "ring_out_of_range"
    assert reason_of(to_msg(rings), get_sensor("vlp16")) == "ring_out_of_range"
    accept_cloud(to_msg(rings), 10**6, 0.0, None)  # without a sensor the rings are not judged
    inf_and_zero = points.copy()
    inf_and_zero["x"][:5] = np.inf  # counted as non-finite points, not as far ones
    inf_and_zero["y"] = 0.0
    assert accept_cloud(to_msg(inf_and_zero), 10**6, 0.0, HDL64E).non_finite == 5


def test_the_local_profile_bounds_the_cloud_size_and_a_larger_max_points_is_warned_about() -> None:
    segment = shm_segment_bytes(local_dds_env())
    assert segment == 32 * 2**20  # config/fastdds_local.xml
    assert transport_warning(1_000_000, segment) is None  # the default max_points fits
    warning = transport_warning(2_000_000, segment)
    assert warning is not None
    assert "61.0 MiB exceeds the Fast DDS shared-memory segment (32.0 MiB" in warning
    assert transport_warning(10**9, None) is None  # no profile named: nothing known to compare with
    assert shm_segment_bytes({}) is None


def test_latencies_from_bogus_stamps_are_counted_not_averaged() -> None:
    stats = NodeStats()
    for latency in (40.0, 50.0, 60.0):
        stats.frame_processed(latency, 30.0, {})
    for bogus in (1.8e12, -5e6, float("nan"), PLAUSIBLE_LATENCY_MS[1] + 1):
        stats.frame_processed(bogus, 30.0, {})
    values = stats.report(0, {}, 0).values
    assert values["latency_ms_p50"] == "50.00"
    assert float(values["latency_ms_p99"]) <= 60.0
    assert values["latency_implausible"] == "4"
    assert values["frames_processed"] == "7"
    assert values["processing_ms_p50"] == "30.00"  # the node's own time is always measured
