"""Detections from labelled points: per-class clustering -> box fitting -> one Box3D per object
(clusters of one class whose boxes overlap are merged first, see merge.py).
"""

from __future__ import annotations

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.errors import CloudFormatError
from perception_ws.instances.box_fit import fit_box, fit_boxes
from perception_ws.instances.clustering import cluster_by_class, object_class_table
from perception_ws.instances.config import DetectConfig
from perception_ws.instances.consistency import plausible_person
from perception_ws.instances.ground import ground_mask
from perception_ws.instances.inputs import as_per_point, as_xyz
from perception_ws.instances.merge import merged_members
from perception_ws.labels import KITTI3, ClassSet
from perception_ws.timing import stage


def detect(
    xyz: np.ndarray,
    labels: np.ndarray,
    class_set: ClassSet = KITTI3,
    config: DetectConfig | None = None,
    point_scores: np.ndarray | None = None,
    timings: dict[str, float] | None = None,
    ground: np.ndarray | None = None,
) -> list[Box3D]:
    """One box per object of each detected class (``config.classes``; default: the class set's
    things), the boxes with most points first.

    Objects are DBSCAN clusters of one class, clusters whose boxes overlap merged (``merge_overlap``).
    ``labels`` are class ids of ``class_set`` per point (e.g. a segmentation network's output);
    ``point_scores`` (optional, per point, e.g. the predicted class probability) give each box the
    mean score of its points, else the score is 1. Each box has ``label``, ``name``, ``score`` and
    ``num_points`` set. ``timings``: where to record the milliseconds of its stages ``ground`` (when removed),
    ``clustering`` and ``boxes`` (fitting and merging). ``ground``: the (N,) ground mask of ``xyz``
    (:func:`ground_mask` with ``config.ground``) when already computed, e.g. beside the segmentation.
    """
    config = config or DetectConfig()
    pts = as_xyz(xyz, "detection input")
    lab = as_per_point(labels, len(pts), "class labels").astype(np.int64, copy=False)
    if len(lab) and (lab.min() < 0 or lab.max() >= len(class_set)):
        raise CloudFormatError(
            f"class labels: ids {lab.min()}..{lab.max()} fall outside class set {class_set.name} "
            f"(0..{len(class_set) - 1})"
        )
    scores = None if point_scores is None else as_per_point(point_scores, len(pts), "point scores")
    # only the points of a clustered class (a few percent of a scan), off the ground if it is removed, reach DBSCAN
    candidate = object_class_table(class_set, config.classes)[lab]
    if config.remove_ground and len(pts):
        if ground is None:
            with stage(timings, "ground"):
                ground = ground_mask(pts, config.ground)
        else:
            ground = as_per_point(ground, len(pts), "ground mask").astype(bool, copy=False)
        candidate &= ~ground
    with stage(timings, "clustering"):
        keep = np.flatnonzero(candidate)
        instances = np.zeros(len(pts), dtype=np.int64)
        instances[keep] = cluster_by_class(pts[keep], lab[keep], class_set, config.cluster, config.classes)
    with stage(timings, "boxes"):
        return _boxes(pts, lab, scores, instances, class_set, config)


def _boxes(
    pts: np.ndarray,
    lab: np.ndarray,
    scores: np.ndarray | None,
    instances: np.ndarray,
    class_set: ClassSet,
    config: DetectConfig,
) -> list[Box3D]:
    """One box per instance (0: no instance), overlapping boxes of one class merged, most points first."""
    members = np.flatnonzero(instances > 0)
    if len(members) == 0:
        return []
    # group the points of each instance with one sort instead of one mask per instance
    order = members[np.argsort(instances[members], kind="stable")]
    _, starts = np.unique(instances[order], return_index=True)
    groups = np.split(order, starts[1:])
    boxes = _fitted(pts, lab, scores, groups, class_set, config)
    if config.merge_overlap > 0 and len(groups) > 1:
        boxes = _merged(pts, lab, scores, groups, boxes, class_set, config)
    boxes = [box for box in boxes if plausible_person(box, config.person_height_m)]
    boxes.sort(key=lambda b: -b.num_points)
    return boxes


def _merged(
    pts: np.ndarray,
    lab: np.ndarray,
    scores: np.ndarray | None,
    groups: list[np.ndarray],
    boxes: list[Box3D],
    class_set: ClassSet,
    config: DetectConfig,
) -> list[Box3D]:
    """The boxes after merging overlapping ones: a group that joined no other keeps its box, the joined groups'
    points are fitted again (one kernel call for all of them; on busy scans most groups join none).
    """
    members = merged_members(boxes, config.merge_overlap)
    joined = [np.concatenate([groups[i] for i in indices]) for indices in members if len(indices) > 1]
    refitted = iter(_fitted(pts, lab, scores, joined, class_set, config) if joined else [])
    return [boxes[indices[0]] if len(indices) == 1 else next(refitted) for indices in members]


def _fitted(
    pts: np.ndarray,
    lab: np.ndarray,
    scores: np.ndarray | None,
    groups: list[np.ndarray],
    class_set: ClassSet,
    config: DetectConfig,
) -> list[Box3D]:
    """One box per group of point indices, with its class (the group's), name and score."""
    if config.box_method == "search":  # every object in one kernel call
        boxes = fit_boxes(pts, groups, config.heading_steps)
    else:
        boxes = [fit_box(pts[group], config.box_method, config.heading_steps) for group in groups]
    for box, group in zip(boxes, groups, strict=True):
        box.label = int(lab[group[0]])
        box.name = class_set.names[box.label]
        box.score = float(scores[group].mean()) if scores is not None else 1.0
    return boxes
