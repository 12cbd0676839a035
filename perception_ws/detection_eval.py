"""What scoring detections as boxes needs beyond the matching (:mod:`perception_ws.detection_metrics`): each
source's ground truth as a :class:`FrameTruth`, and the node's own detection stage run on given labels.

Sources with boxes (:data:`BOX_SOURCES`, by reader name):

- ``kitti``: a KITTI object frame's label_2 boxes (Car, Pedestrian, Cyclist scored; Van, Truck, Person_sitting
  neighbours; Misc, Tram ... count against a detection like background). The boxes exist only inside the
  camera's view, so that view (image 2's frustum, from the frame's calibration) is both the scope and the
  camera view; DontCare regions are the label file's rectangles, tested on the detection centre's pixel.
- ``sim``: the simulator's actor boxes (KITTI-3 classes, the points each actor got), every direction in scope;
  the camera view is the front 90 degrees.

Torch-free: the detector is :class:`~perception_ws.pipeline.Pipeline` with the ``labels`` segmenter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.calib.kitti import KittiCalib
from perception_ws.config import PipelineConfig
from perception_ws.detection_metrics import FrameTruth
from perception_ws.errors import PerceptionError
from perception_ws.scan import Scan

if TYPE_CHECKING:
    from perception_ws.pipeline import PipelineResult

BoxSource = Literal["kitti", "sim"]
#: reader name (perception_ws.io registry) -> how its frames' boxes are scored.
BOX_SOURCES: dict[str, BoxSource] = {"kitti-object": "kitti", "sim": "sim"}
#: the simulator's "camera view" for false detections: the front 90 degrees, as KITTI's camera roughly sees.
SIM_CAMERA_HALF_ANGLE_DEG = 45.0
_LABEL_FIELD = "label"


def box_truth(scan: Scan, source: BoxSource) -> FrameTruth | None:
    """The ground truth of ``scan`` as boxes (see the module doc); None for a frame without labels."""
    if scan.labels is None:
        return None  # e.g. a KITTI object frame without its label_2 file
    if source == "sim":
        return FrameTruth(list(scan.boxes), in_camera=front_view)
    if scan.calib is None:
        raise PerceptionError(f"frame {scan.name!r}: a KITTI object frame without calibration; cannot score boxes")
    calib = scan.calib
    size = (scan.image.shape[1], scan.image.shape[0]) if scan.image is not None else None
    regions = np.array(scan.dont_care, dtype=np.float64).reshape(-1, 4)

    def in_camera(centres: np.ndarray) -> np.ndarray:
        return _camera_pixels(calib, centres, size)[1]

    def in_dont_care(centres: np.ndarray) -> np.ndarray:
        uv, visible = _camera_pixels(calib, centres, size)
        left, top, right, bottom = (regions[:, i][None, :] for i in range(4))
        u, v = uv[:, :1], uv[:, 1:]
        inside = (u >= left) & (u <= right) & (v >= top) & (v <= bottom)
        return visible & inside.any(axis=1)

    return FrameTruth(list(scan.boxes), in_scope=in_camera, in_camera=in_camera, in_dont_care=in_dont_care)


def front_view(centres: np.ndarray) -> np.ndarray:
    """Centres (K, 3) within :data:`SIM_CAMERA_HALF_ANGLE_DEG` of +x."""
    bearing = np.degrees(np.arctan2(centres[:, 1], centres[:, 0]))
    return np.asarray(np.abs(bearing) <= SIM_CAMERA_HALF_ANGLE_DEG)


def _camera_pixels(
    calib: KittiCalib, centres: np.ndarray, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(pixel (K, 2), seen by image 2 (K,)) of LiDAR-frame points."""
    camera = calib.camera(2) if size is None else calib.camera(2, size)
    uv, _, visible = camera.project(calib.velo_to_cam(centres))
    return uv, visible


class LabelDetector:
    """The node's detection stage on given class labels: :class:`Pipeline` with the ``labels`` segmenter, the
    config's ``detection.*`` settings (ground removal, clustering, merging, box fitting, min_score), no tracking.
    """

    def __init__(self, config: PipelineConfig | None = None) -> None:
        from perception_ws.pipeline import Pipeline

        base = config or PipelineConfig()
        self.config = base.replace(
            **{"segmenter.kind": "labels", "segmenter.label_field": _LABEL_FIELD, "tracking.enabled": False}
        )
        self.pipeline = Pipeline(self.config)

    def __call__(self, xyz: np.ndarray, labels: np.ndarray) -> list[Box3D]:
        """Boxes of the objects in points ``xyz`` (N, 3) labelled ``labels`` (N,) with the config's class set."""
        return self._process(xyz, labels).detections

    def labels(self, xyz: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """(N,) int64: what the node would publish if its network predicted ``labels`` for these points (with
        ``detection.consistent_labels``, a detected class only on its detections' points).
        """
        result = self._process(xyz, labels)
        return self.pipeline.published_labels(result.labels, result.instances).astype(np.int64)

    def _process(self, xyz: np.ndarray, labels: np.ndarray) -> PipelineResult:
        xyz = np.asarray(xyz)
        cloud = np.zeros(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), (_LABEL_FIELD, "u2")])
        cloud["x"], cloud["y"], cloud["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        cloud[_LABEL_FIELD] = labels
        return self.pipeline.process(cloud, 0.0, track=False)


__all__ = ["BOX_SOURCES", "BoxSource", "LabelDetector", "box_truth", "front_view"]
