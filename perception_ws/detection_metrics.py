"""Detections scored as boxes: per class, precision and recall at three match criteria (docs/algorithms.md §8).

Criteria: bird's-eye-view IoU >= 0.5, >= 0.25 (:func:`~perception_ws.boxes.bev_iou`), and "centre in box" (the
detection's centre inside the ground-truth box, top view). Per frame and class, the detections are visited by
score (high first; ties keep the detector's order, most points first) and each takes the free ground-truth box of
its class that fits it best (highest IoU; for centre-in-box the nearest centre): a box is matched once, so a
second detection on it is false, as in the KITTI devkit.

What is neither true nor false (the devkit's "ignored"), for a detection that took no box:

- it fits a box of a neighbouring type (:data:`NEIGHBOURS`: a car on a ``Van`` or ``Truck``, a pedestrian on a
  ``Person_sitting``), or a box of its class that cannot be counted: fewer than :data:`MIN_BOX_POINTS` points
  (nothing to find) or its centre outside the scope;
- its centre lies in a DontCare region (:attr:`FrameTruth.in_dont_care`) or outside the region the ground truth
  covers (:attr:`FrameTruth.in_scope`: a KITTI frame's boxes exist only in the camera's view).

Such boxes are not counted as objects either. Recall over "many points": boxes with at least
:data:`MANY_POINTS` LiDAR points (the source's count). False detections per frame are counted inside the camera's
view (:attr:`FrameTruth.in_camera`). Sums run over frames before any ratio is taken; an undefined ratio is NaN.
Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception_ws.boxes import Box3D, bev_iou
from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3, ClassSet

#: a box with at least this many LiDAR points counts in the "many points" recall.
MANY_POINTS = 50
#: a ground-truth box with fewer points cannot be found: ignored rather than missed.
MIN_BOX_POINTS = 1
#: KITTI types a detection of the class may fit without being false (they are not counted as objects either).
NEIGHBOURS: Mapping[str, frozenset[str]] = {
    "car": frozenset({"Van", "Truck"}),
    "pedestrian": frozenset({"Person_sitting"}),
}

#: (K, 3) detection centres -> (K,) bool.
CentreMask = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Criterion:
    """When a detection matches a box: top-view IoU >= ``min_iou``, or (``min_iou`` None) its centre in the box."""

    name: str
    min_iou: float | None

    def fit(self, detection: Box3D, box: Box3D) -> float:
        """How well ``detection`` fits ``box`` (higher is better), or NaN when it does not match at all."""
        if self.min_iou is None:
            offset = box.to_local(detection.center[None, :])[0, :2]
            inside = bool(np.all(np.abs(offset) <= box.size[:2] / 2.0))
            return -float(np.hypot(*(detection.center[:2] - box.center[:2]))) if inside else math.nan
        reach = (np.hypot(*detection.size[:2]) + np.hypot(*box.size[:2])) / 2.0
        if np.hypot(*(detection.center[:2] - box.center[:2])) > reach:
            return math.nan  # circumscribed circles apart: no overlap, skip the polygon clipping
        iou = bev_iou(detection, box)
        return iou if iou >= self.min_iou else math.nan


CRITERIA = (Criterion("bev_iou_0.5", 0.5), Criterion("bev_iou_0.25", 0.25), Criterion("centre_in_box", None))
_TITLES = {"bev_iou_0.5": "BEV IoU >= 0.5", "bev_iou_0.25": "BEV IoU >= 0.25", "centre_in_box": "centre in box"}


@dataclass
class FrameTruth:
    """One frame's ground truth: boxes (``label`` a class id, ``name`` the source's type, ``num_points``) and the
    regions of the module doc; a region left None is everywhere (scope, camera) or nowhere (DontCare).
    """

    boxes: list[Box3D]
    in_scope: CentreMask | None = None
    in_camera: CentreMask | None = None
    in_dont_care: CentreMask | None = None


@dataclass
class DetectionCounts:
    """Counts of one class at one criterion, summed over frames."""

    true: int = 0
    false: int = 0
    #: false detections inside the camera's view.
    false_in_camera: int = 0
    ignored: int = 0
    #: ground-truth boxes of the class (ignored ones left out), and those of them with >= MANY_POINTS points.
    objects: int = 0
    many: int = 0
    many_found: int = 0

    def __iadd__(self, other: DetectionCounts) -> DetectionCounts:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def precision(self) -> float:
        return _ratio(self.true, self.true + self.false)

    @property
    def recall(self) -> float:
        return _ratio(self.true, self.objects)

    @property
    def recall_many(self) -> float:
        return _ratio(self.many_found, self.many)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (NaN where either is undefined, 0 where both are 0)."""
        p, r = self.precision, self.recall
        if math.isnan(p) or math.isnan(r):
            return math.nan
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _mask(region: CentreMask | None, centres: np.ndarray, default: bool) -> np.ndarray:
    if region is None:
        return np.full(len(centres), default, dtype=bool)
    mask = np.asarray(region(centres), dtype=bool).reshape(-1)
    if mask.shape != (len(centres),):
        raise PerceptionError(f"a FrameTruth region gave {mask.size} answers for {len(centres)} detection centres")
    return mask


def match_frame(
    detections: Sequence[Box3D], truth: FrameTruth, class_id: int, class_name: str, criterion: Criterion
) -> DetectionCounts:
    """The counts of one frame for one class (see the module doc)."""
    mine = sorted((d for d in detections if d.label == class_id), key=lambda d: -d.score)  # stable: ties keep order
    neighbours = NEIGHBOURS.get(class_name, frozenset())
    box_in_scope = _mask(truth.in_scope, np.array([b.center for b in truth.boxes]).reshape(-1, 3), True)
    targets: list[Box3D] = []
    ignorable: list[Box3D] = []  # fitting one of these is no error: a neighbouring type, or a box not countable
    for box, in_scope_box in zip(truth.boxes, box_in_scope, strict=True):
        if box.label == class_id and box.num_points >= MIN_BOX_POINTS and in_scope_box:
            targets.append(box)
        elif box.label == class_id or box.name in neighbours:
            ignorable.append(box)
    counts = DetectionCounts(objects=len(targets), many=sum(b.num_points >= MANY_POINTS for b in targets))
    centres = np.array([d.center for d in mine]).reshape(-1, 3)
    in_scope = _mask(truth.in_scope, centres, True)
    in_camera = _mask(truth.in_camera, centres, True)
    in_dont_care = _mask(truth.in_dont_care, centres, False)
    taken = np.zeros(len(targets), dtype=bool)
    for k, det in enumerate(mine):
        fits = np.array([math.nan if taken[j] else criterion.fit(det, box) for j, box in enumerate(targets)])
        if np.any(~np.isnan(fits)):
            best = int(np.nanargmax(fits))
            taken[best] = True
            counts.true += 1
            counts.many_found += targets[best].num_points >= MANY_POINTS
        elif not in_scope[k] or in_dont_care[k] or any(not math.isnan(criterion.fit(det, b)) for b in ignorable):
            counts.ignored += 1
        else:
            counts.false += 1
            counts.false_in_camera += bool(in_camera[k])
    return counts


@dataclass
class DetectionMetrics:
    """Per-class counts at every criterion, summed over frames (:meth:`update` once per frame)."""

    class_set: ClassSet = KITTI3
    #: class ids scored; default the class set's object classes.
    classes: Sequence[int] | None = None
    criteria: Sequence[Criterion] = CRITERIA
    frames: int = 0
    counts: dict[str, dict[str, DetectionCounts]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = list(self.class_set.object_ids if self.classes is None else self.classes)
        self.classes = ids
        self.counts = {self.class_set.names[c]: {k.name: DetectionCounts() for k in self.criteria} for c in ids}

    def update(self, detections: Sequence[Box3D], truth: FrameTruth) -> None:
        assert self.classes is not None  # set in __post_init__
        for class_id in self.classes:
            name = self.class_set.names[class_id]
            for criterion in self.criteria:
                self.counts[name][criterion.name] += match_frame(detections, truth, class_id, name, criterion)
        self.frames += 1

    def false_per_frame(self, name: str, criterion: str) -> float:
        """False detections of class ``name`` in the camera's view per frame, at ``criterion``."""
        return _ratio(self.counts[name][criterion].false_in_camera, self.frames)

    def to_json(self) -> dict[str, Any]:
        """``{"frames", "many_points", "classes": {class: {criterion: {precision, recall, …}}}}``, ratios in percent."""
        out: dict[str, Any] = {}
        for name, by_criterion in self.counts.items():
            out[name] = {}
            for criterion, c in by_criterion.items():
                out[name][criterion] = {
                    "precision": 100.0 * c.precision,
                    "recall": 100.0 * c.recall,
                    f"recall_{MANY_POINTS}_points": 100.0 * c.recall_many,
                    "false_per_frame_in_camera": self.false_per_frame(name, criterion),
                    "true": c.true,
                    "false": c.false,
                    "ignored": c.ignored,
                    "objects": c.objects,
                    f"objects_{MANY_POINTS}_points": c.many,
                }
        return {"frames": self.frames, "many_points": MANY_POINTS, "classes": out}

    def table(self) -> str:
        """One row per class and criterion: P, R, R50 in percent, false per frame, and the counts."""
        header = ["class", "criterion", "P", "R", f"R{MANY_POINTS}", "false/frame", "true", "false", "objects"]
        rows = [header]
        for name, by_criterion in self.counts.items():
            for criterion, c in by_criterion.items():
                cells = [_percent(c.precision), _percent(c.recall), _percent(c.recall_many)]
                false_rate = self.false_per_frame(name, criterion)
                rate = "-" if math.isnan(false_rate) else f"{false_rate:.2f}"
                counts = [str(c.true), str(c.false), f"{c.objects} ({c.many})"]
                rows.append([name, _TITLES.get(criterion, criterion), *cells, rate, *counts])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        ]
        note = (
            f"boxes, {self.frames} frame(s): P / R in percent, R{MANY_POINTS}: recall of boxes with >= {MANY_POINTS} "
            f"points, false/frame: false detections in the camera's view, objects ({MANY_POINTS}+ points)"
        )
        return "\n".join([note, lines[0], "-" * len(lines[0]), *lines[1:]])


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100.0 * value:.1f}"


__all__ = [
    "CRITERIA",
    "MANY_POINTS",
    "MIN_BOX_POINTS",
    "NEIGHBOURS",
    "Criterion",
    "DetectionCounts",
    "DetectionMetrics",
    "FrameTruth",
    "match_frame",
]
