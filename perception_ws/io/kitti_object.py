"""KITTI object-benchmark labels (``label_2/NNNNNN.txt``): parse them, turn them into LiDAR-frame
boxes, and turn boxes into per-point labels.

A label line is ``type truncated occluded alpha left top right bottom h w l x y z rotation_y
[score]``: the 2D box in pixels of image 2, the 3D size in metres (height, width, length), the
*bottom centre* of the 3D box in the rectified camera frame (x right, y down, z forward) and the yaw
``rotation_y`` about the camera's y axis (0 = the object's length along camera +x).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.calib.kitti import KittiCalib
from perception_ws.errors import DatasetError
from perception_ws.labels import kitti_object_class

#: the label type of image regions the annotators skipped; it carries no 3D box.
DONT_CARE = "DontCare"
_FIELDS = 15


@dataclass(frozen=True)
class KittiObject:
    """One line of a label_2 file."""

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox: tuple[float, float, float, float]  # left, top, right, bottom (pixels, image 2)
    dimensions: tuple[float, float, float]  # height, width, length (metres)
    location: tuple[float, float, float]  # bottom centre, rectified camera frame (metres)
    rotation_y: float
    score: float = 1.0


def read_kitti_labels(path: Path) -> list[KittiObject]:
    """Every object of a label_2 file (DontCare regions included; callers filter)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read KITTI label file ({exc})") from None
    objects = []
    for number, line in enumerate(lines, start=1):
        words = line.split()
        if not words:
            continue
        if len(words) not in (_FIELDS, _FIELDS + 1):
            raise DatasetError(
                f"{path}: line {number} has {len(words)} fields, expected {_FIELDS} "
                "(type truncated occluded alpha left top right bottom h w l x y z rotation_y) or 16 with a score"
            )
        try:
            v = [float(w) for w in words[1:]]
        except ValueError:
            raise DatasetError(f"{path}: line {number} has a non-numeric field: {line.strip()[:80]!r}") from None
        objects.append(
            KittiObject(
                type=words[0],
                truncated=v[0],
                occluded=int(v[1]),
                alpha=v[2],
                bbox=(v[3], v[4], v[5], v[6]),
                dimensions=(v[7], v[8], v[9]),
                location=(v[10], v[11], v[12]),
                rotation_y=v[13],
                score=v[14] if len(v) > 14 else 1.0,
            )
        )
    return objects


def object_to_box(obj: KittiObject, calib: KittiCalib) -> Box3D:
    """A label's 3D box in the LiDAR frame (label = KITTI-3 class, name = the KITTI type).

    The centre is the bottom centre lifted by h/2 (camera y points down) and carried into the LiDAR
    frame; the heading is the camera-frame direction of the object's length, (cos ry, 0, -sin ry),
    rotated into the LiDAR frame, so the small tilt between the two frames is accounted for.
    """
    h, w, length = obj.dimensions
    x, y, z = obj.location
    centre = calib.cam_to_velo(np.array([[x, y - h / 2.0, z]]))[0]
    heading_cam = np.array([np.cos(obj.rotation_y), 0.0, -np.sin(obj.rotation_y)])
    heading = calib.cam_to_velo(heading_cam[None, :])[0] - calib.cam_to_velo(np.zeros((1, 3)))[0]
    return Box3D(
        center=centre,
        size=np.array([length, w, h]),
        yaw=float(np.arctan2(heading[1], heading[0])),
        label=kitti_object_class(obj.type),
        name=obj.type,
        score=obj.score,
    )


def boxes_from_labels(objects: list[KittiObject], calib: KittiCalib) -> list[Box3D]:
    """The 3D boxes of every object except DontCare regions, in file order."""
    return [object_to_box(o, calib) for o in objects if o.type != DONT_CARE]


def dont_care_regions(objects: list[KittiObject]) -> list[tuple[float, float, float, float]]:
    """The image-2 rectangles (left, top, right, bottom) of the DontCare lines, in file order."""
    return [o.bbox for o in objects if o.type == DONT_CARE]


def label_points_in_boxes(xyz: np.ndarray, boxes: list[Box3D]) -> tuple[np.ndarray, np.ndarray]:
    """Per-point ``(labels, instances)`` from boxes (docs/algorithms.md §7: a point inside a box takes its class).

    ``instances`` is the box's index + 1 (0: in no box), ``labels`` the box's ``label``. A point
    inside several boxes goes to the smallest of them (by volume): a box nested in or overlapping a
    larger one is the more specific object, e.g. a pedestrian beside a truck. Also sets each box's
    ``num_points`` to the number of points it contains (overlaps counted in every box).
    """
    labels = np.zeros(len(xyz), dtype=np.int32)
    instances = np.zeros(len(xyz), dtype=np.int32)
    volumes = [float(np.prod(b.size)) for b in boxes]
    # largest first, so that smaller boxes overwrite larger ones where they overlap
    for index in sorted(range(len(boxes)), key=lambda i: -volumes[i]):
        box = boxes[index]
        inside = box.contains(xyz)
        box.num_points = int(inside.sum())
        labels[inside] = box.label
        instances[inside] = index + 1
    return labels, instances
