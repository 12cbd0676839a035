"""Detections and tracks as a MarkerArray that plain RViz draws: boxes, class and score, track ids.

The array starts with a DELETEALL marker, so markers of the previous scan vanish even when this one
has fewer objects; every marker carries the scan's header. Namespaces: ``boxes`` (LINE_LIST edges or
translucent CUBEs in the class colour), ``labels`` (class and score above each box), ``tracks``
(``#id`` and speed above each reported track) and ``velocities`` (an arrow per moving track).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from perception_ws.boxes import MOVING_SPEED, Box3D
from perception_ws.labels import ClassSet
from perception_ws.nodes.conversions import box_pose, class_name, point_msg

#: the 12 edges of a box as pairs of Box3D.corners() indices (bottom face, top face, uprights).
_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))
_LINE_WIDTH_M = 0.06
_TEXT_HEIGHT_M = 0.7
_WHITE = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)


def markers_msg(
    header: Any, detections: Sequence[Box3D], tracks: Sequence[Box3D], class_set: ClassSet, style: str = "line_list"
) -> MarkerArray:
    """DELETEALL, then boxes and labels of ``detections``, then ids and velocities of ``tracks``."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    colors: dict[int, ColorRGBA] = {}  # per class: building one costs a palette lookup
    for index, box in enumerate(detections):
        if box.label not in colors:
            colors[box.label] = _class_color(box.label, class_set)
        color = colors[box.label]
        markers.append(_cube(header, index, box, color) if style == "cube" else _edges(header, index, box, color))
        markers.append(_text(header, "labels", index, box, f"{class_name(box, class_set)} {box.score:.2f}"))
    for index, box in enumerate(tracks):
        markers.append(_text(header, "tracks", index, box, f"#{box.track_id} {box.speed:.1f} m/s", lift=_TEXT_HEIGHT_M))
        if box.speed >= MOVING_SPEED:  # no arrow on standing objects
            markers.append(_arrow(header, index, box))
    return MarkerArray(markers=markers)


def _edges(header: Any, index: int, box: Box3D, color: ColorRGBA) -> Marker:
    # one Point per corner, each listed once per edge it ends (3 times): the message serialises the same,
    # and 8 Points are built instead of 24
    corners = [Point(x=x, y=y, z=z) for x, y, z in box.corners().tolist()]
    points = [corners[i] for edge in _EDGES for i in edge]
    return Marker(
        header=header,
        ns="boxes",
        id=index,
        type=Marker.LINE_LIST,
        action=Marker.ADD,
        pose=Pose(orientation=Quaternion(w=1.0)),
        scale=Vector3(x=_LINE_WIDTH_M),
        color=color,
        points=points,
    )


def _cube(header: Any, index: int, box: Box3D, color: ColorRGBA) -> Marker:
    translucent = ColorRGBA(r=color.r, g=color.g, b=color.b, a=0.4)
    return Marker(
        header=header,
        ns="boxes",
        id=index,
        type=Marker.CUBE,
        action=Marker.ADD,
        pose=box_pose(box),
        scale=Vector3(x=float(box.size[0]), y=float(box.size[1]), z=float(box.size[2])),
        color=translucent,
    )


def _text(header: Any, ns: str, index: int, box: Box3D, text: str, lift: float = 0.0) -> Marker:
    top = box.center + np.array([0.0, 0.0, box.size[2] / 2.0 + 0.4 + lift])
    return Marker(
        header=header,
        ns=ns,
        id=index,
        type=Marker.TEXT_VIEW_FACING,
        action=Marker.ADD,
        pose=Pose(position=point_msg(top), orientation=Quaternion(w=1.0)),
        scale=Vector3(z=_TEXT_HEIGHT_M),
        color=_WHITE,
        text=text,
    )


def _arrow(header: Any, index: int, box: Box3D) -> Marker:
    start = box.center
    end = start + np.array([box.velocity[0], box.velocity[1], 0.0])  # one second ahead
    return Marker(
        header=header,
        ns="velocities",
        id=index,
        type=Marker.ARROW,
        action=Marker.ADD,
        pose=Pose(orientation=Quaternion(w=1.0)),
        scale=Vector3(x=0.15, y=0.3, z=0.3),  # shaft diameter, head diameter, head length
        color=_WHITE,
        points=[point_msg(start), point_msg(end)],
    )


def _class_color(label: int, class_set: ClassSet) -> ColorRGBA:
    r, g, b = (int(v) for v in class_set.colorize(np.array([label]))[0])
    return ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0)
