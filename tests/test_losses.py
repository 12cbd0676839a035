"""Focal loss and cross-entropy over range images, masked to valid pixels."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as nnf

from perception_ws.errors import PerceptionError
from perception_ws.models.losses import (
    KITTI3_WEIGHTS_SQUEEZESEGV2,
    SegmentationLoss,
    cross_entropy_loss,
    focal_loss,
)


def _batch(seed: int = 0, k: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(2, k, 6, 9, generator=g)
    target = torch.randint(0, k, (2, 6, 9), generator=g)
    valid = torch.rand(2, 6, 9, generator=g) > 0.25
    return logits, target, valid


def test_focal_loss_at_gamma_zero_is_torch_cross_entropy_over_valid_pixels() -> None:
    logits, target, valid = _batch()
    ours = focal_loss(logits, target, valid=valid, gamma=0.0)
    ref = nnf.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid])
    assert torch.allclose(ours, ref, atol=1e-6)
    # with class weights: torch sums w*ce and (in "mean") divides by the summed weights; we divide by the
    # number of valid pixels, as the SqueezeSeg release does
    w = torch.tensor(KITTI3_WEIGHTS_SQUEEZESEGV2)
    summed = nnf.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid], weight=w, reduction="sum")
    assert torch.allclose(cross_entropy_loss(logits, target, valid=valid, class_weights=w), summed / valid.sum())


def test_focal_loss_matches_a_hand_computed_value() -> None:
    logits = torch.tensor([2.0, 0.0, 0.0]).view(1, 3, 1, 1)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    p_t = math.exp(2) / (math.exp(2) + 2)  # 0.7870...
    expected = -((1 - p_t) ** 2) * math.log(p_t)  # 0.01087...
    assert focal_loss(logits, target).item() == pytest.approx(expected, rel=1e-5)
    assert 0.0108 < expected < 0.0109


def test_focal_loss_down_weights_easy_pixels_more_than_hard_ones() -> None:
    target = torch.zeros(1, 1, 2, dtype=torch.long)
    logits = torch.tensor([[[4.0, -1.0]], [[0.0, 0.0]]]).view(1, 2, 1, 2)  # pixel 0 easy, pixel 1 hard
    ce = nnf.cross_entropy(logits, target, reduction="none")[0, 0]
    fl = torch.stack([focal_loss(logits[..., i : i + 1], target[..., i : i + 1]) for i in range(2)])
    ratio = fl / ce
    assert ratio[0] < 0.01 * ratio[1]


def test_invalid_and_ignored_pixels_do_not_count() -> None:
    logits, target, valid = _batch(1)
    base = focal_loss(logits, target, valid=valid)
    scrambled = logits.clone()
    scrambled.permute(0, 2, 3, 1)[~valid] = 100.0 * torch.randn(int((~valid).sum()), 4)
    assert torch.equal(focal_loss(scrambled, target, valid=valid), base)
    # ignore_index drops those pixels from numerator and count alike
    ignored = target.clone()
    ignored[:, :3] = 0
    keep = valid & (ignored != 0)
    ref = focal_loss(logits.permute(0, 2, 3, 1)[keep].T.reshape(1, 4, -1, 1), ignored[keep].view(1, -1, 1))
    assert torch.allclose(focal_loss(logits, ignored, valid=valid, ignore_index=0), ref)
    # nothing valid: zero, not NaN, and still differentiable
    logits.requires_grad_(True)
    empty = focal_loss(logits, target, valid=torch.zeros_like(valid))
    empty.backward()
    assert empty.item() == 0.0
    assert logits.grad is not None


def test_class_weights_scale_each_pixel_by_its_true_class() -> None:
    logits, target, _ = _batch(2)
    w = [0.5, 1.0, 3.5, 3.5]
    weighted = focal_loss(logits, target, class_weights=w)
    per_class = [
        focal_loss(logits, target, valid=(target == c)) * (target == c).sum() / target.numel() for c in range(4)
    ]
    expected = torch.stack([wc * pc for wc, pc in zip(w, per_class, strict=True)]).sum()
    assert torch.allclose(weighted, expected, atol=1e-6)


def test_module_wraps_the_functions_and_rejects_bad_input() -> None:
    logits, target, valid = _batch(3)
    focal = SegmentationLoss("focal", class_weights=KITTI3_WEIGHTS_SQUEEZESEGV2)
    assert torch.equal(
        focal(logits, target, valid),
        focal_loss(logits, target, valid=valid, class_weights=KITTI3_WEIGHTS_SQUEEZESEGV2),
    )
    assert torch.equal(SegmentationLoss("cross_entropy")(logits, target), cross_entropy_loss(logits, target))
    with pytest.raises(PerceptionError, match="unknown loss"):
        SegmentationLoss("dice")  # type: ignore[arg-type]
    with pytest.raises(PerceptionError, match=r"0\.\.3"):
        focal_loss(logits, torch.full_like(target, 7))
    with pytest.raises(PerceptionError, match="integer"):
        focal_loss(logits, target.float())
    with pytest.raises(PerceptionError, match="class weights"):
        focal_loss(logits, target, class_weights=[1.0, 2.0])
    with pytest.raises(PerceptionError, match="target"):
        focal_loss(logits, target[:, :3])
