"""markers_msg on the real KITTI object boxes: what RViz is sent, field by field; edge markers list each corner
Point once per edge that ends there, and serialise to the same bytes as with a separate Point per line end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Point
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from perception_ws.boxes import Box3D
from perception_ws.io import open_dataset
from perception_ws.labels import KITTI3
from perception_ws.nodes.markers import _EDGES, markers_msg

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def real_boxes(real_data: Path) -> list[Box3D]:
    boxes = [box for scan in open_dataset(real_data / "kitti_object") for box in scan.boxes if 0 < box.label < 4]
    assert len({box.label for box in boxes}) >= 2  # more than one class colour
    for index, box in enumerate(boxes):
        box.score = 0.5 + 0.01 * index
    return boxes


def xyz_of(points: list) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in points])


@pytest.mark.parametrize("style", ["line_list", "cube"])
def test_detection_markers_of_real_boxes(real_boxes: list[Box3D], style: str) -> None:
    header = Header(frame_id="velodyne")
    header.stamp.sec = 7
    msg = markers_msg(header, real_boxes, [], KITTI3, style)
    assert msg.markers[0].action == Marker.DELETEALL
    assert all(marker.header == header for marker in msg.markers)
    boxes = [m for m in msg.markers if m.ns == "boxes"]
    labels = [m for m in msg.markers if m.ns == "labels"]
    assert len(boxes) == len(labels) == len(real_boxes)
    assert len(msg.markers) == 1 + 2 * len(real_boxes)
    edge_order = [i for edge in _EDGES for i in edge]
    for index, (box, marker, label) in enumerate(zip(real_boxes, boxes, labels, strict=True)):
        assert marker.id == label.id == index
        rgb = KITTI3.colorize(np.array([box.label]))[0] / 255.0
        np.testing.assert_array_equal([marker.color.r, marker.color.g, marker.color.b], rgb)
        if style == "line_list":
            assert marker.type == Marker.LINE_LIST
            assert marker.color.a == 1.0
            np.testing.assert_array_equal(xyz_of(marker.points), box.corners()[edge_order])
        else:
            assert marker.type == Marker.CUBE
            assert marker.color.a == pytest.approx(0.4)
            np.testing.assert_array_equal([marker.scale.x, marker.scale.y, marker.scale.z], box.size)
        assert label.text == f"{KITTI3.names[box.label]} {box.score:.2f}"
        assert label.pose.position.z == pytest.approx(box.center[2] + box.size[2] / 2 + 0.4)
    # on the wire: the same message as with 24 separate Points per edge marker (compared decoded: CDR's
    # alignment padding is not initialised, so two serialisations may differ there), corners back exactly
    wire = serialize_message(msg)
    for marker in boxes:
        marker.points = [Point(x=p.x, y=p.y, z=p.z) for p in marker.points]
    again = serialize_message(msg)
    back = deserialize_message(wire, MarkerArray)
    assert len(again) == len(wire)
    assert deserialize_message(again, MarkerArray) == back
    for box, marker in zip(real_boxes, back.markers[1::2], strict=True):
        expected = box.corners()[edge_order] if style == "line_list" else np.zeros((0, 3))
        np.testing.assert_array_equal(xyz_of(marker.points).reshape(-1, 3), expected)


def test_track_markers_show_ids_and_arrows_for_moving_tracks(real_boxes: list[Box3D]) -> None:
    tracks = real_boxes[:3]
    for track_id, (box, speed) in enumerate(zip(tracks, (0.0, 0.4, 3.0), strict=True), start=11):
        box.track_id = track_id
        box.velocity = np.array([speed * 0.6, speed * 0.8, 0.0])
    msg = markers_msg(Header(frame_id="velodyne"), [], tracks, KITTI3)
    assert [m.text for m in msg.markers if m.ns == "tracks"] == ["#11 0.0 m/s", "#12 0.4 m/s", "#13 3.0 m/s"]
    arrows = [m for m in msg.markers if m.ns == "velocities"]
    # only the track faster than 0.5 m/s
    assert len(arrows) == 1
    assert arrows[0].id == 2
    np.testing.assert_allclose(
        xyz_of(arrows[0].points), [tracks[2].center, tracks[2].center + np.array([1.8, 2.4, 0.0])]
    )
