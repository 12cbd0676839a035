"""The transform tree (perception_ws/calib/tf_tree.py) against hand-worked numbers, and its errors.

The camera is an optical frame (z forward, x right, y down) looking along the parent's +x: its pose's
rotation has the columns x_cam = (0, -1, 0), y_cam = (0, 0, -1), z_cam = (1, 0, 0) in the parent frame,
the quaternion (x y z w) = (-0.5, 0.5, -0.5, 0.5) (roll -90 deg, yaw -90 deg: the usual camera_link ->
optical frame rotation). A point p of the parent is R^T (p - t) in the camera.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from perception_ws.calib.camera import Extrinsic
from perception_ws.calib.tf_tree import TransformTree, TransformUnavailableError
from perception_ws.errors import CalibrationError

OPTICAL = (-0.5, 0.5, -0.5, 0.5)
IDENTITY = (0.0, 0.0, 0.0, 1.0)
YAW_90 = (0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5))  # +90 deg about z: x -> y, y -> -x


def test_lidar_to_camera_one_edge() -> None:
    tree = TransformTree()
    tree.add("base_link", "lidar", (0.0, 0.0, 1.73), IDENTITY)
    tree.add("lidar", "camera", (0.5, 0.0, -0.1), OPTICAL)
    to_camera = tree.lookup("camera", "lidar")
    assert to_camera.source == "/tf_static: camera <- lidar"
    # 10 m ahead of the LiDAR: 9.5 m ahead of the camera, 0.1 m above it (y down); 2 m to the left: behind it
    points = np.array([[10.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    assert np.allclose(to_camera.apply(points), [[0.0, -0.1, 9.5], [-2.0, -0.1, -0.5]], atol=1e-12)
    assert np.allclose(tree.lookup("lidar", "camera").apply([[0.0, -0.1, 9.5]]), [[10.0, 0.0, 0.0]], atol=1e-12)
    # up to the root: the camera's origin is 0.5 m ahead of the LiDAR and 1.63 m above base_link
    assert np.allclose(tree.lookup("base_link", "camera").translation, [0.5, 0.0, 1.63], atol=1e-12)
    assert tree.frames == ["base_link", "camera", "lidar"]


def test_camera_from_base_link_to_lidar() -> None:
    tree = TransformTree()
    tree.add("base_link", "lidar", (0.0, 0.0, 1.8), YAW_90)  # the LiDAR turned 90 deg left
    tree.add("base_link", "camera", (1.0, 0.0, 1.5), OPTICAL)
    to_camera = tree.lookup("camera", "lidar")
    assert to_camera.source == "/tf_static: camera <- base_link <- lidar"
    # the LiDAR's -y is the car's +x: (0, -10, 0) is (10, 0, 1.8) on base_link, (9, 0, 0.3) from the camera
    assert np.allclose(to_camera.apply([[0.0, -10.0, 0.0]]), [[0.0, -0.3, 9.0]], atol=1e-12)
    assert np.allclose(tree.lookup("lidar", "camera").apply([[0.0, -0.3, 9.0]]), [[0.0, -10.0, 0.0]], atol=1e-12)
    assert np.allclose(to_camera.matrix @ tree.lookup("lidar", "camera").matrix, np.eye(4), atol=1e-12)


def test_a_later_edge_for_the_same_child_replaces_the_first() -> None:
    tree = TransformTree()
    tree.add("lidar", "camera", (0.5, 0.0, -0.1), OPTICAL)
    tree.add("lidar", "camera", (1.5, 0.0, -0.1), OPTICAL)  # re-published mounting
    assert np.allclose(tree.lookup("camera", "lidar").apply([[10.0, 0.0, 0.0]]), [[0.0, -0.1, 8.5]], atol=1e-12)
    same = tree.lookup("camera", "camera")
    assert np.array_equal(same.matrix, np.eye(4))
    assert isinstance(same, Extrinsic)
    # a quaternion slightly off unit length (printed with few digits) is normalised, as tf2 does
    tree.add("lidar", "camera", (0.5, 0.0, -0.1), (-0.5001, 0.5, -0.5, 0.5))
    assert np.allclose(tree.lookup("camera", "lidar").apply([[10.0, 0.0, 0.0]]), [[0.0, -0.1, 9.5]], atol=1e-3)


def test_missing_or_ill_formed_chains_say_what_is_wrong() -> None:
    tree = TransformTree()
    with pytest.raises(TransformUnavailableError, match=r"no transform names frame 'camera' nor 'lidar' "):
        tree.lookup("camera", "lidar")
    tree.add("base_link", "lidar", (0.0, 0.0, 1.8), IDENTITY)
    tree.add("odom", "camera", (0.0, 0.0, 1.5), OPTICAL)
    with pytest.raises(TransformUnavailableError, match=r"frames seen: base_link, camera, lidar, odom"):
        tree.lookup("camera_2", "lidar")
    with pytest.raises(TransformUnavailableError, match=r"separate trees \(roots 'odom' and 'base_link'\)"):
        tree.lookup("camera", "lidar")
    with pytest.raises(CalibrationError, match=r"would close a loop \(base_link -> lidar -> base_link\)"):
        tree.add("lidar", "base_link", (0.0, 0.0, 0.0), IDENTITY)
    with pytest.raises(CalibrationError, match=r"has length 2; expected a unit quaternion"):
        tree.add("lidar", "camera", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 2.0))
    with pytest.raises(CalibrationError, match="non-finite"):
        tree.add("lidar", "camera", (np.nan, 0.0, 0.0), IDENTITY)
    with pytest.raises(CalibrationError, match="empty frame id"):
        tree.add("", "camera", (0.0, 0.0, 0.0), IDENTITY)
    with pytest.raises(CalibrationError, match="its own parent"):
        tree.add("camera", "camera", (0.0, 0.0, 0.0), IDENTITY)
    with pytest.raises(CalibrationError, match="expected 3 and 4"):
        tree.add("lidar", "camera", (0.0, 0.0), IDENTITY)
    # the bad edges left the tree as it was: still two separate trees
    assert tree.frames == ["base_link", "camera", "lidar", "odom"]
    tree.add("base_link", "odom", (0.0, 0.0, 0.0), IDENTITY)  # now connected
    assert tree.lookup("camera", "lidar").source == "/tf_static: camera <- odom <- base_link <- lidar"


def test_edges_added_while_another_thread_looks_up() -> None:
    tree = TransformTree()
    tree.add("lidar", "camera", (0.5, 0.0, -0.1), OPTICAL)
    errors: list[BaseException] = []

    def look() -> None:
        try:
            for _ in range(2000):
                tree.lookup("camera", "lidar")
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    reader = threading.Thread(target=look)
    reader.start()
    for i in range(2000):
        tree.add("lidar", "camera", (0.5 + (i % 2), 0.0, -0.1), OPTICAL)
    reader.join()
    assert not errors


def _yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2)))


def test_timed_edges_interpolate_between_samples_and_chain_with_static_ones() -> None:
    tree = TransformTree()
    tree.add("base_link", "lidar", (0.0, 0.0, 1.73), IDENTITY)  # static mount
    # odometry at 10 Hz: 1 m forward per sample, turning 0.1 rad per sample
    for k in range(5):
        tree.add(
            "odom", "base_link", (float(k), 0.0, 0.0), _yaw_quaternion(0.1 * k), stamp_ns=1_000_000_000 + k * 10**8
        )
    half = tree.lookup("odom", "lidar", stamp_ns=1_250_000_000)  # halfway between samples 2 and 3
    assert half.source == "/tf at 1.250 s: odom <- base_link <- lidar"
    assert np.allclose(half.translation, [2.5, 0.0, 1.73], atol=1e-12)
    yaw = np.arctan2(half.matrix[1, 0], half.matrix[0, 0])
    assert yaw == pytest.approx(0.25, abs=1e-12)  # slerp of 0.2 and 0.3 rad about z
    assert np.allclose(tree.lookup("odom", "lidar", stamp_ns=1_300_000_000).translation, [3.0, 0.0, 1.73])
    assert np.allclose(tree.lookup("odom", "lidar").translation, [4.0, 0.0, 1.73])  # no stamp: the newest
    # the inverse direction composes the same samples
    back = tree.lookup("lidar", "odom", stamp_ns=1_250_000_000)
    assert np.allclose(back.matrix @ half.matrix, np.eye(4), atol=1e-12)
    # a static chain stays named after /tf_static
    assert tree.lookup("base_link", "lidar", stamp_ns=5).source == "/tf_static: base_link <- lidar"


def test_timed_edges_hold_briefly_then_refuse_to_extrapolate() -> None:
    tree = TransformTree()
    tree.add("odom", "base_link", (0.0, 0.0, 0.0), IDENTITY, stamp_ns=1_000_000_000)
    tree.add("odom", "base_link", (1.0, 0.0, 0.0), IDENTITY, stamp_ns=1_100_000_000)
    assert np.allclose(tree.lookup("odom", "base_link", stamp_ns=1_140_000_000).translation, [1.0, 0, 0])
    with pytest.raises(
        TransformUnavailableError, match=r"'odom' -> 'base_link' at 1\.200 s: 0\.100 s after the newest"
    ):
        tree.lookup("odom", "base_link", stamp_ns=1_200_000_000)
    with pytest.raises(TransformUnavailableError, match=r"before the oldest sample"):
        tree.lookup("odom", "base_link", stamp_ns=900_000_000)
    # a sample between the two (arriving late) is put in order
    tree.add("odom", "base_link", (0.2, 0.0, 0.0), IDENTITY, stamp_ns=1_050_000_000)
    assert np.allclose(tree.lookup("odom", "base_link", stamp_ns=1_025_000_000).translation, [0.1, 0, 0])


def test_timed_edges_keep_ten_seconds_and_restart_when_time_jumps_back() -> None:
    tree = TransformTree()
    for k in range(300):  # 30 s at 10 Hz
        tree.add("odom", "base_link", (float(k), 0.0, 0.0), IDENTITY, stamp_ns=k * 10**8)
    assert np.allclose(tree.lookup("odom", "base_link", stamp_ns=200 * 10**8).translation, [200.0, 0, 0])
    with pytest.raises(TransformUnavailableError, match=r"before the oldest sample \(19\.900 s; 101 kept\)"):
        tree.lookup("odom", "base_link", stamp_ns=150 * 10**8)
    tree.add("odom", "base_link", (-1.0, 0.0, 0.0), IDENTITY, stamp_ns=0)  # the bag looped
    assert np.allclose(tree.lookup("odom", "base_link", stamp_ns=0).translation, [-1.0, 0, 0])
    with pytest.raises(TransformUnavailableError, match=r"after the newest sample \(0\.000 s; 1 kept\)"):
        tree.lookup("odom", "base_link", stamp_ns=29 * 10**9)
    # a static edge for the same child replaces the timed one (and the other way round)
    tree.add("odom", "base_link", (5.0, 0.0, 0.0), IDENTITY)
    assert np.allclose(tree.lookup("odom", "base_link", stamp_ns=123).translation, [5.0, 0, 0])
    with pytest.raises(CalibrationError, match=r"transform 'base_link' -> 'odom': would close a loop"):
        tree.add("base_link", "odom", (0.0, 0.0, 0.0), IDENTITY, stamp_ns=1)


def test_a_lookup_waits_for_a_sample_still_to_come() -> None:
    # odometry a little behind the scan: the lookup at the scan's stamp waits for the sample after it
    tree = TransformTree()
    tree.add("odom", "base_link", (0.0, 0.0, 0.0), IDENTITY, stamp_ns=1_000_000_000)
    later = threading.Timer(0.05, tree.add, ("odom", "base_link", (2.0, 0.0, 0.0), IDENTITY, 1_200_000_000))
    later.start()
    waited = tree.lookup("odom", "base_link", stamp_ns=1_100_000_000, timeout_s=10.0)
    later.join()
    assert np.allclose(waited.translation, [1.0, 0.0, 0.0])
    # a sample that never comes: the same error as without waiting, once the time is up
    with pytest.raises(TransformUnavailableError, match=r"0\.100 s after the newest sample"):
        tree.lookup("odom", "base_link", stamp_ns=1_300_000_000, timeout_s=0.05)
