"""Knowledge distillation: a (narrower) student learns the class probabilities of a trained teacher network.

Why: a network half as wide does about a quarter of the convolutions' work, which is what the full 360 deg
turn on a 2-core CPU needs (docs/models.md), but trained from labels alone it would have to relearn what the
shipped weights already know. The teacher (e.g. the shipped ``default.pt``, its CRF included) labels every
batch the student sees: the simulated batch, whose ground truth the focal loss also uses, and, with a target,
one unlabelled real batch a step, the domain the student will run on. No real label is read.

Term of a step: ``weight * T^2 * KL(p_teacher || p_student)`` with both softmaxes at temperature ``T`` (the
T^2 keeps the gradient's size independent of T), averaged over pixels holding a return, each weighted by the
KITTI-3 class weight of the teacher's best class (the focal loss's weights: people count as much as there).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as nnf

from perception_ws.adapt.target import TargetScans
from perception_ws.errors import PerceptionError
from perception_ws.models.segmenter import RangeSegmenter
from perception_ws.training.alignment import real_batch
from perception_ws.training.config import TrainConfig


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    valid: torch.Tensor,
    temperature: float,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)) per pixel, averaged over ``valid`` (B, H, W)
    pixels, each weighted by ``class_weights`` of the teacher's best class; 0 where no pixel is valid.
    """
    if student.shape != teacher.shape:
        raise PerceptionError(f"distillation: student logits {tuple(student.shape)} vs teacher {tuple(teacher.shape)}")
    log_student = nnf.log_softmax(student.float() / temperature, dim=1)
    log_teacher = nnf.log_softmax(teacher.float() / temperature, dim=1)
    per_pixel = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1)  # (B, H, W)
    weights = valid.to(per_pixel.dtype)
    if class_weights is not None:
        weights = weights * class_weights.to(per_pixel.device)[teacher.argmax(dim=1)]
    # where, not a product: a non-finite value at a pixel without a return must not reach the sum (0 * inf = nan)
    weighted = torch.where(weights > 0, per_pixel * weights, torch.zeros_like(per_pixel))
    return temperature**2 * weighted.sum() / weights.sum().clamp_min(1e-12)


def load_teacher(path: str, num_classes: int, device: torch.device) -> RangeSegmenter:
    """The teacher network, frozen in eval mode on ``device``; refused unless it is a range-image network of
    ``num_classes`` classes (a point-voxel network labels points, not the student's pixels).
    """
    from perception_ws.models.weights import load_any_weights

    teacher = load_any_weights(path)
    if not isinstance(teacher, RangeSegmenter):
        raise PerceptionError(f"train --teacher {path}: a point-voxel network; the teacher must be a range-image one")
    if teacher.num_classes != num_classes:
        raise PerceptionError(f"train --teacher {path}: {teacher.num_classes} classes; this run trains {num_classes}")
    teacher.eval().requires_grad_(False)
    return teacher.to(device)


class Distillation:
    """The distillation term of a training step; see the module doc."""

    def __init__(
        self,
        config: TrainConfig,
        teacher: RangeSegmenter,
        student: RangeSegmenter,
        target: TargetScans | None,
        class_weights: Sequence[float] | None,
    ) -> None:
        self.teacher = teacher
        self.student = student
        self.target = target
        self.batch_size = config.batch_size
        self.weight = config.distill_weight
        self.temperature = config.distill_temperature
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)

    def forward(
        self, wrapped: nn.Module, images: torch.Tensor, step: int, rank: int, world: int, amp: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's logits on the simulated ``images`` (for the focal loss) and ``weight`` times the
        distillation term over those images and, with a target, the real batch of ``step``.
        """
        batches = [images]
        if self.target is not None:
            real = real_batch(self.target, self.batch_size, self.student.in_channels, step, rank, world)
            batches.append(real.to(images.device, non_blocking=True))
        outputs, terms = [], []
        for batch in batches:
            with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = wrapped(batch)
                with torch.no_grad():
                    taught = self.teacher(batch)
            outputs.append(logits)
            valid = self.student.valid_mask(batch)
            terms.append(distillation_loss(logits, taught, valid, self.temperature, self.class_weights))
        return outputs[0], self.weight * torch.stack(terms).mean()
