"""Segmentation losses over range images: focal loss (SqueezeSegV2) and cross-entropy (SqueezeSeg).

Focal loss (thesis ch. 5 §3.2): ``FL(p_t) = -(1 - p_t)^gamma * log(p_t)``, gamma = 2; gamma = 0 is
cross-entropy. Per pixel it is multiplied by the weight of the pixel's true class, and only valid pixels
count (pixels with a return, and not ``ignore_index``).

Reduction, as in the SqueezeSeg release: the weighted sum divided by the NUMBER of valid pixels (not by the
sum of weights), so the class weights also scale the loss.

Class weights. The thesis gives none; the releases use, for KITTI-3 (unknown/background, car, pedestrian,
cyclist), ``1/15, 1, 10, 10`` with cross-entropy (SqueezeSeg) and ``1/3, 1, 3.5, 3.5`` with focal loss
(SqueezeSegV2, which down-weights easy background pixels already). Background ("unknown") is a real
class there: it is trained with a small weight, not ignored; only empty pixels are left out. For
SemanticKITTI, id 0 (unlabelled) is not a class to learn: pass ``ignore_index=0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from perception_ws.errors import PerceptionError

#: SqueezeSeg release (cross-entropy), KITTI-3 order unknown/car/pedestrian/cyclist.
KITTI3_WEIGHTS_SQUEEZESEG: tuple[float, ...] = (1 / 15, 1.0, 10.0, 10.0)
#: SqueezeSegV2 release (focal loss), same order.
KITTI3_WEIGHTS_SQUEEZESEGV2: tuple[float, ...] = (1 / 3, 1.0, 3.5, 3.5)

LossKind = Literal["focal", "cross_entropy"]


def _check(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> None:
    if logits.ndim != 4:
        raise PerceptionError(f"loss: expected logits (B, K, H, W), got shape {tuple(logits.shape)}")
    b, _, h, w = logits.shape
    if target.shape != (b, h, w):
        raise PerceptionError(f"loss: expected target (B, H, W) = {(b, h, w)}, got {tuple(target.shape)}")
    if target.is_floating_point():
        raise PerceptionError(f"loss: target must hold integer class ids, got {target.dtype}")
    if valid is not None and valid.shape != (b, h, w):
        raise PerceptionError(f"loss: expected valid mask (B, H, W) = {(b, h, w)}, got {tuple(valid.shape)}")


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    valid: torch.Tensor | None = None,
    gamma: float = 2.0,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Mean over valid pixels of ``w[t] * -(1 - p_t)^gamma * log p_t`` (a scalar; 0 if nothing is valid).

    logits (B, K, H, W); target (B, H, W) integer ids in 0..K-1 (``ignore_index`` may lie outside);
    valid (B, H, W) bool, e.g. range > 0.
    """
    _check(logits, target, valid)
    k = logits.shape[1]
    keep = torch.ones_like(target, dtype=torch.bool) if valid is None else valid.to(torch.bool)
    if ignore_index is not None:
        keep = keep & (target != ignore_index)
    t = torch.where(keep, target, torch.zeros_like(target)).long()
    if bool(((t < 0) | (t >= k)).any()):
        raise PerceptionError(f"loss: target ids must lie in 0..{k - 1} on valid pixels, got {t.min()}..{t.max()}")
    log_pt = torch.log_softmax(logits, dim=1).gather(1, t.unsqueeze(1)).squeeze(1)
    loss = -log_pt if gamma == 0 else -((1.0 - log_pt.exp()) ** gamma) * log_pt
    if class_weights is not None:
        w = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
        if w.numel() != k:
            raise PerceptionError(f"loss: expected {k} class weights, got {w.numel()}")
        loss = loss * w[t]
    keepf = keep.to(loss.dtype)
    return (loss * keepf).sum() / keepf.sum().clamp_min(1.0)


def cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    valid: torch.Tensor | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Weighted cross-entropy over valid pixels: the focal loss at gamma = 0."""
    return focal_loss(logits, target, valid=valid, gamma=0.0, class_weights=class_weights, ignore_index=ignore_index)


class SegmentationLoss(nn.Module):
    """A configured loss: ``SegmentationLoss("focal", gamma=2, class_weights=...)(logits, target, valid)``."""

    class_weights: torch.Tensor | None

    def __init__(
        self,
        kind: LossKind = "focal",
        *,
        gamma: float = 2.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        if kind not in ("focal", "cross_entropy"):
            raise PerceptionError(f"unknown loss {kind!r}; known: focal, cross_entropy")
        if gamma < 0:
            raise PerceptionError(f"focal loss gamma must be >= 0, got {gamma}")
        self.kind = kind
        self.gamma = gamma if kind == "focal" else 0.0
        self.ignore_index = ignore_index
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return focal_loss(
            logits,
            target,
            valid=valid,
            gamma=self.gamma,
            class_weights=self.class_weights,
            ignore_index=self.ignore_index,
        )
