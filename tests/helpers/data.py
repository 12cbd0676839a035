"""Where the repository is, and real scans turned into what the tests feed the pipeline and the nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.io import load
from perception_ws.io.kitti_object import DONT_CARE, read_kitti_labels
from perception_ws.labels import kitti_object_class
from perception_ws.scan import Scan

REPO = Path(__file__).resolve().parents[2]
#: the labels segmenter with DBSCAN settings for cars 20-60 m away (rings there lie > 0.3 m apart).
LABELLED = {
    "segmenter.kind": "labels",
    **{"detection.eps_m": 0.6, "detection.min_samples": 8, "detection.car_eps_m": 0.6, "detection.car_min_samples": 8},
}


def with_label_field(scan: Scan, values: np.ndarray | None = None) -> np.ndarray:
    """The scan's points plus a ``label`` field: its KITTI-3 ground truth as uint8 (as a labelling tool would
    publish them), or ``values``."""
    labels = truth(scan)[0].astype(np.uint8) if values is None else values
    out = np.empty(len(scan.points), dtype=[*scan.points.dtype.descr, ("label", labels.dtype)])
    for name in scan.points.dtype.names or ():
        out[name] = scan.points[name]
    out["label"] = labels
    return out


def truth(scan: Scan) -> tuple[np.ndarray, np.ndarray]:
    """The scan's ground-truth KITTI-3 labels and instance ids (the real labelled scans have both)."""
    assert scan.labels is not None
    assert scan.instances is not None
    return scan.labels, scan.instances


def kitti_frame(real_data: Path, frame: str) -> tuple[Scan, PinholeCamera, Extrinsic]:
    scan = load(real_data / "kitti_object" / "velodyne" / f"{frame}.bin")
    assert scan.image is not None
    assert scan.calib is not None
    camera = scan.calib.camera(2, (scan.image.shape[1], scan.image.shape[0]))
    return scan, camera, scan.calib.extrinsic()


def box_mask(real_data: Path, frame: str, shape: tuple[int, int]) -> np.ndarray:
    """label_2's 2D boxes filled with their KITTI-3 class id, far objects first so nearer ones win."""
    objects = [o for o in read_kitti_labels(real_data / "kitti_object" / "label_2" / f"{frame}.txt")]
    mask = np.zeros(shape, dtype=np.uint8)
    for obj in sorted((o for o in objects if o.type != DONT_CARE), key=lambda o: -o.location[2]):
        left, top, right, bottom = obj.bbox
        rows = slice(int(np.floor(top)), int(np.ceil(bottom)) + 1)
        mask[rows, int(np.floor(left)) : int(np.ceil(right)) + 1] = kitti_object_class(obj.type)
    return mask
