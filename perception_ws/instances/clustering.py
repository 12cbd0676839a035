"""Per-class clustering: DBSCAN on the points of each object class, with per-class settings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perception_ws.instances.config import THING_CLASSES, ClusterConfig
from perception_ws.instances.dbscan import dbscan
from perception_ws.instances.inputs import as_per_point, as_xyz
from perception_ws.labels import ClassSet


def object_class_ids(class_set: ClassSet, classes: Sequence[str] | None) -> list[int]:
    """Ids of ``classes`` (names) in ``class_set``; its thing classes (cars, people …) when None."""
    if classes is None:
        return [i for i in class_set.object_ids if class_set.names[i] in THING_CLASSES]
    return [class_set.id_of(name) for name in classes]


def object_class_table(class_set: ClassSet, classes: Sequence[str] | None, size: int = 0) -> np.ndarray:
    """(max(len(class_set), size),) bool, True at the ids :func:`object_class_ids` gives: ``table[labels]`` marks a
    scan's object points in one gather (``size``: room for larger ids a label array may hold).
    """
    table = np.zeros(max(len(class_set), size), dtype=bool)
    table[object_class_ids(class_set, classes)] = True
    return table


def cluster_by_class(
    xyz: np.ndarray,
    labels: np.ndarray,
    class_set: ClassSet,
    config: ClusterConfig | None = None,
    classes: Sequence[str] | None = None,
) -> np.ndarray:
    """Instance id per point (N,) int64: 1..K numbered class by class, 0 for unclustered points.

    Points of different classes never share an instance; each class uses ``config.params(name)``.
    """
    config = config or ClusterConfig()
    pts = as_xyz(xyz, "clustering input")
    lab = as_per_point(labels, len(pts), "class labels")
    instances = np.zeros(len(pts), dtype=np.int64)
    next_id = 1
    for class_id in object_class_ids(class_set, classes):
        members = np.flatnonzero(lab == class_id)
        params = config.params(class_set.names[class_id])
        if len(members) < params.min_points:
            continue  # no point of this class can be core
        cluster = dbscan(pts[members], params.eps_m, params.min_points)
        clustered = cluster >= 0
        instances[members[clustered]] = cluster[clustered] + next_id
        next_id += int(cluster.max()) + 1 if clustered.any() else 0
    return instances
