"""Scores of the model under training on a few labelled frames (monitoring only, never for selection)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from perception_ws.labels import ClassSet
from perception_ws.metrics import ClassMetrics
from perception_ws.training.samples import SampleSource


@torch.no_grad()
def frame_scores(model: nn.Module, source: SampleSource, class_set: ClassSet, device: torch.device) -> dict[str, float]:
    """Pixel-level IoU (%) per object class over every frame of ``source`` (eval mode; the mode is restored)."""
    was_training = model.training
    model.eval()
    metrics = ClassMetrics(class_set, ignore_gt=0 if class_set.name != "kitti3" else None)
    for index in range(source.size or 0):
        image, labels = source.sample(index)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)
        pred = model(x).argmax(1)[0].cpu().numpy()
        valid = image[..., 4] > 0
        metrics.update(labels[valid], pred[valid])
    model.train(was_training)
    scores = metrics.scores()
    return {
        f"{name}_iou": (100.0 * s.iou if not math.isnan(s.iou) else math.nan)
        for name, s in scores.items()
        if class_set.id_of(name) in class_set.object_ids
    }
