"""Labels that agree with the detections, and the people a box can hold.

A network labels points one by one, so a pole, a trunk or a bush gets a few points of "pedestrian", and a
ground ring a stripe of "car", with no object behind them. The detection stage only makes an object of a
cluster (DBSCAN after ground removal); what it leaves out is not an object. ``consistent_labels`` takes that
verdict back to the points: a point of a detected class outside every detection of its class becomes
unlabelled (0), so the labelled cloud and the detection array tell the same story. ``plausible_person``
drops boxes of people that no person fits: shorter or taller than ``person_height_m`` (a physical range, not
fitted to data: a child of about 1 m to a tall adult with a raised arm, a cyclist on the saddle).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.instances.clustering import object_class_table
from perception_ws.labels import ClassSet

#: classes whose objects are people, across the class sets (KITTI-3, SemanticKITTI)
PEOPLE_CLASSES = frozenset({"pedestrian", "cyclist", "person", "bicyclist", "motorcyclist"})


def plausible_person(box: Box3D, person_height_m: tuple[float, float] | None) -> bool:
    """False for a box of a people class whose height is outside ``person_height_m``; True otherwise."""
    if person_height_m is None or box.name not in PEOPLE_CLASSES:
        return True
    low, high = person_height_m
    return bool(low <= box.size[2] <= high)


def consistent_labels(
    labels: np.ndarray, instances: np.ndarray, class_set: ClassSet, classes: Sequence[str] | None = None
) -> np.ndarray:
    """``labels`` with every point of a detected class (``classes``; None: the class set's things) that is in
    no detection (``instances`` 0) set to 0; other classes (road, buildings …) unchanged. A new array.
    """
    out = np.array(labels, copy=True)
    if out.size == 0:
        return out
    # a lookup table over the class ids (a gather) instead of np.isin's passes over the scan per class
    detected = object_class_table(class_set, classes, int(out.max()) + 1)
    out[detected[out] & (np.asarray(instances) == 0)] = 0
    return out
