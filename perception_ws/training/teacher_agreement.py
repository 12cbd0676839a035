"""How closely a distilled network labels unlabelled real scans as its teacher does.

The label-free check of a student (docs/training.md, "A narrower network distilled from a trained one"): on
scans it was NOT distilled on, the teacher's labels stand in for ground truth, so a student that learnt the
teacher only on its few real training scans shows up without reading any real label. ``perception train
--agreement-scans DIR`` logs it at every checkpoint; ``scripts/teacher_agreement.py`` scores finished weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from perception_ws.errors import PerceptionError
from perception_ws.labels import ClassSet
from perception_ws.metrics import ClassMetrics, Scores
from perception_ws.models.segmenter import RangeSegmenter


@dataclass(frozen=True)
class Agreement:
    """``pixels``: the share of pixels with a return that get the teacher's label; ``classes``: per class, the
    student's precision, recall and IoU with the teacher's labels as the reference; ``images``: how many.
    """

    pixels: float
    classes: dict[str, Scores]
    images: int


def teacher_agreement(
    student: RangeSegmenter,
    teacher: RangeSegmenter,
    images: np.ndarray,
    class_set: ClassSet,
    device: torch.device | None = None,
) -> Agreement:
    """Agreement of ``student`` with ``teacher`` (both on ``device``, default the CPU) over raw (B, C, H, W) range
    images, one image at a time, in eval mode (a student under training gets its mode back).
    """
    if student.num_classes != teacher.num_classes or teacher.num_classes != len(class_set):
        raise PerceptionError(
            f"teacher agreement: student {student.num_classes}, teacher {teacher.num_classes} and class set "
            f"{class_set.name} ({len(class_set)}) must have the same number of classes"
        )
    metrics = ClassMetrics(class_set)
    was_training = student.training
    student.eval()
    teacher.eval()
    with torch.no_grad():
        for image in images:
            x = torch.from_numpy(np.ascontiguousarray(image[None, : teacher.in_channels])).to(device or "cpu")
            valid = teacher.valid_mask(x)[0].cpu().numpy()
            taught = teacher(x).argmax(1)[0].cpu().numpy()[valid]
            labelled = student(x[:, : student.in_channels]).argmax(1)[0].cpu().numpy()[valid]
            metrics.update(taught, labelled)
    student.train(was_training)
    same = int(np.trace(metrics.confusion))  # the confusion matrix's diagonal: pixels given the teacher's label
    return Agreement(same / max(int(metrics.confusion.sum()), 1), metrics.scores(), len(images))


def object_scores(found: Agreement, class_set: ClassSet) -> dict[str, Scores]:
    """The agreement's per-class scores of the object classes only (the background class left out)."""
    return {name: s for name, s in found.classes.items() if class_set.id_of(name) in class_set.object_ids}


def agreement_columns(found: Agreement, class_set: ClassSet) -> dict[str, float]:
    """The training log's columns of an agreement, in %: ``agree_pixels`` and ``agree_<class>`` (IoU) per object
    class.
    """
    columns = {"agree_pixels": 100.0 * found.pixels}
    columns.update({f"agree_{name}": 100.0 * s.iou for name, s in object_scores(found, class_set).items()})
    return columns
