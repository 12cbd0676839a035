"""Detections as KITTI object-benchmark ``label_2`` lines (the results format: 15 fields and a score).

Two files per frame:

* camera frame (``label_2/``), where the scan has a KITTI calibration: location, size and ``rotation_y``
  in the rectified camera frame and the 2D box in image 2 (the projected 3D box clipped to the image);
  boxes wholly behind the camera or outside the image are left out, as in KITTI's own labels;
* sensor frame (``label_velo/``), for every scan: the same line with the 3D fields in the LiDAR frame,
  written in KITTI's camera axes (x right = -y, y down = -z, z forward = x, no offset) and the 2D box
  ``-1 -1 -1 -1``. :data:`SENSOR_AXES` is that convention as a calibration, so
  :func:`perception_ws.io.kitti_object.boxes_from_labels` reads either file back into LiDAR boxes.

Truncation and occlusion are ``-1`` (not known for a detection, as in KITTI result files); the type is
the KITTI name of the class (Car, Pedestrian, Cyclist), else the class set's own name.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.calib.kitti import KITTI_IMAGE_SIZE, KittiCalib
from perception_ws.io.atomic import atomic_file
from perception_ws.labels import KITTI3, KITTI_OBJECT_TO_KITTI3, SEMANTIC_KITTI_TO_KITTI3, ClassSet

_NO_CAMERA = np.hstack([np.eye(3), np.zeros((3, 1))])
#: the LiDAR frame in KITTI's camera axes: the "calibration" of the sensor-frame files.
SENSOR_AXES = KittiCalib(
    P0=_NO_CAMERA,
    P1=_NO_CAMERA,
    P2=_NO_CAMERA,
    P3=_NO_CAMERA,
    R0_rect=np.eye(3),
    Tr_velo_to_cam=np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]),
    source="LiDAR frame in KITTI camera axes",
)
_KITTI_TYPE = {k3: kitti for kitti, k3 in KITTI_OBJECT_TO_KITTI3.items()}
_NO_BOX_2D = (-1.0, -1.0, -1.0, -1.0)


def kitti_type(label: int, class_set: ClassSet) -> str:
    """The label_2 type of a class id: KITTI's name where the class is a KITTI-3 one, else the class name."""
    name = class_set.names[label] if 0 <= label < len(class_set) else "unknown"
    k3 = name if class_set.name == KITTI3.name else SEMANTIC_KITTI_TO_KITTI3.get(name, "")
    return _KITTI_TYPE.get(k3, name)


def kitti_line(box: Box3D, class_set: ClassSet, calib: KittiCalib, box_2d: tuple[float, ...] = _NO_BOX_2D) -> str:
    """One label_2 line of ``box`` (LiDAR frame) in the camera frame of ``calib`` (the inverse of object_to_box)."""
    length, width, height = (float(v) for v in box.size)
    bottom = calib.velo_to_cam(box.center[None, :])[0] + np.array([0.0, height / 2.0, 0.0])  # camera y is down
    heading = np.array([[math.cos(box.yaw), math.sin(box.yaw), 0.0]])
    heading_cam = calib.velo_to_cam(heading)[0] - calib.velo_to_cam(np.zeros((1, 3)))[0]
    rotation_y = math.atan2(-heading_cam[2], heading_cam[0])
    alpha = _wrap(rotation_y - math.atan2(bottom[0], bottom[2]))  # the observation angle
    left, top, right, bottom_px = box_2d
    return (
        f"{kitti_type(box.label, class_set)} -1 -1 {alpha:.4f} {left:.2f} {top:.2f} {right:.2f} {bottom_px:.2f} "
        f"{height:.4f} {width:.4f} {length:.4f} {bottom[0]:.4f} {bottom[1]:.4f} {bottom[2]:.4f} "
        f"{rotation_y:.4f} {box.score:.4f}"
    )


def image_box(box: Box3D, calib: KittiCalib, image_size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """(left, top, right, bottom) of the box's corners projected into image 2 and clipped; None if not seen."""
    uv, depth = calib.velo_to_image(box.corners(), cam=2)
    front = depth > 0
    if not front.any():
        return None
    width, height = image_size
    u, v = uv[front, 0], uv[front, 1]
    left, right = max(float(u.min()), 0.0), min(float(u.max()), width - 1.0)
    top, bottom = max(float(v.min()), 0.0), min(float(v.max()), height - 1.0)
    if left >= right or top >= bottom:
        return None
    return left, top, right, bottom


def write_sensor_lines(path: Path, boxes: list[Box3D], class_set: ClassSet) -> None:
    """The sensor-frame label file of one scan (every detection), atomically."""
    _write(path, [kitti_line(box, class_set, SENSOR_AXES) for box in boxes])


def write_camera_lines(
    path: Path, boxes: list[Box3D], class_set: ClassSet, calib: KittiCalib, image: np.ndarray | None
) -> None:
    """The camera-frame label_2 file of one scan (detections seen by camera 2), atomically."""
    size = (image.shape[1], image.shape[0]) if image is not None else KITTI_IMAGE_SIZE
    lines = []
    for box in boxes:
        box_2d = image_box(box, calib, size)
        if box_2d is not None:
            lines.append(kitti_line(box, class_set, calib, box_2d))
    _write(path, lines)


def _write(path: Path, lines: list[str]) -> None:
    with atomic_file(path) as handle:
        handle.write("".join(f"{line}\n" for line in lines).encode("ascii"))


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi
