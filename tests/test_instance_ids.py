"""instance_ids (one pass over the points, kernels/box_points.py): the points of a detection's class inside
its box (grown by the margin) get its id, the earlier detection winning where boxes overlap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.boxes import Box3D
from perception_ws.instances import detect
from perception_ws.io import load
from perception_ws.labels import KITTI3
from perception_ws.pipeline import _BOX_MARGIN_M, instance_ids

CAR, PEDESTRIAN = KITTI3.id_of("car"), KITTI3.id_of("pedestrian")


def ids_by_definition(xyz: np.ndarray, labels: np.ndarray, detections: list[Box3D]) -> np.ndarray:
    """The docstring's rule, box by box with Box3D.contains over every point."""
    out = np.zeros(len(xyz), dtype=np.uint32)
    for k, box in enumerate(detections, start=1):
        out[(out == 0) & (labels == box.label) & box.contains(xyz, margin=_BOX_MARGIN_M)] = k
    return out


@pytest.mark.real_data
def test_detections_of_a_real_scan(real_data: Path) -> None:
    scan = load(real_data / "semantickitti" / "000000.bin")
    assert scan.labels is not None
    xyz = scan.xyz  # float32, as the pipeline's cloud gives it
    detections = detect(xyz, scan.labels, KITTI3)
    assert len(detections) >= 5
    ids = instance_ids(xyz, scan.labels, detections)
    assert ids.dtype == np.uint32
    np.testing.assert_array_equal(ids, ids_by_definition(xyz, scan.labels, detections))
    # every detection keeps at least the points it was fitted to (its box encloses them)
    counts = np.bincount(ids, minlength=len(detections) + 1)[1:]
    assert np.all(counts >= [box.num_points for box in detections])


def test_overlaps_classes_and_the_margin() -> None:
    big = Box3D(center=[0.0, 0.0, 0.0], size=[4.0, 2.0, 2.0], yaw=0.3, label=CAR)
    small = Box3D(center=[1.5, 0.0, 0.0], size=[2.0, 2.0, 2.0], yaw=0.0, label=CAR)
    walker = Box3D(center=[10.0, 0.0, 0.0], size=[1.0, 1.0, 2.0], yaw=0.0, label=PEDESTRIAN)
    edge = 1.0 + _BOX_MARGIN_M  # half the small box's width, grown by the margin
    xyz = np.array(
        [
            [1.0, 0.2, 0.0],  # in both cars: the first (earlier) detection keeps it
            [2.4, -0.4, 0.0],  # only in the second car's box
            [1.0, 0.2, 0.0],  # inside the cars, but a pedestrian point: no pedestrian box holds it
            [10.0, 0.0, 1.0 + 0.5 * _BOX_MARGIN_M],  # above the pedestrian box, within the margin
            [10.0, 0.0, 1.0 + 2.0 * _BOX_MARGIN_M],  # above it, beyond the margin
            [1.5, -edge + 1e-9, 0.0],  # on the small box's grown edge
            [1.5, -edge - 1e-6, 0.0],  # just outside it (and outside the big box)
        ]
    )
    labels = np.array([CAR, CAR, PEDESTRIAN, PEDESTRIAN, PEDESTRIAN, CAR, CAR], dtype=np.uint16)
    detections = [big, small, walker]
    ids = instance_ids(xyz, labels, detections)
    np.testing.assert_array_equal(ids, [1, 2, 0, 3, 0, 2, 0])
    np.testing.assert_array_equal(ids, ids_by_definition(xyz, labels, detections))
    np.testing.assert_array_equal(instance_ids(xyz, labels, []), np.zeros(len(xyz), dtype=np.uint32))
