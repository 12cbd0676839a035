"""SqueezeSegV2 + CRF can learn a real KITTI frame: training on one frame drives its car IoU above 90 %.

The frame is a released SqueezeSeg sample (64 x 512 x 6: x, y, z, intensity, range, label). To stay within a
few seconds on 2 CPU cores the test trains on a 32 x 128 crop (rows 0-31 hold every car point of the first
128 columns; 1592 car pixels, several cars) with a fixed seed and 2 torch threads.

Batch-norm statistics: after training, the running statistics lag behind the weights (momentum 0.1 over a
few dozen fast-changing steps), so they are re-estimated on the frame with one no-grad pass, as a deployment
re-estimates them from its data; the IoU is then measured in eval mode (the inference path).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from perception_ws.models import build_model, focal_loss
from perception_ws.models.crf import KITTI3_CRF_SIGMAS
from perception_ws.models.losses import KITTI3_WEIGHTS_SQUEEZESEGV2

pytestmark = pytest.mark.real_data

CAR = 1
STEPS = 45


def _frame(real_data: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (1, 6, H, W) with the mask channel, labels (1, H, W), valid (1, H, W)) of the cropped frame."""
    path = sorted((real_data / "kitti_squeezeseg").glob("*.npy"))[0]
    record = np.load(path)[:32, :128]
    valid = record[..., 4] > 0
    channels = np.concatenate([record[..., :5], valid[..., None].astype(np.float32)], axis=-1)
    x = torch.from_numpy(np.ascontiguousarray(channels.transpose(2, 0, 1)))[None]
    labels = torch.from_numpy(record[..., 5].astype(np.int64))[None]
    return x, labels, torch.from_numpy(valid)[None]


def _iou(pred: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, cls: int) -> float:
    p = (pred == cls) & valid
    g = (labels == cls) & valid
    return (p & g).sum().item() / max(1, (p | g).sum().item())


@pytest.fixture
def two_threads() -> Iterator[None]:
    """torch on 2 threads for this test only (the thread count is process-wide)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.usefixtures("two_threads")
def test_squeezesegv2_crf_overfits_one_real_frame(real_data: Path) -> None:
    torch.manual_seed(0)
    x, labels, valid = _frame(real_data)
    assert ((labels == CAR) & valid).sum() > 1000  # a real target, not a handful of pixels

    model = build_model("squeezesegv2", 4, crf=True, crf_params=dict(KITTI3_CRF_SIGMAS), dropout=0.0)
    model.normalizer.fit(x, valid, skip=[5])
    model.train()
    with torch.no_grad():
        before = _iou(model(x).argmax(1), labels, valid, CAR)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.perf_counter()
    for _ in range(STEPS):
        loss = focal_loss(model(x), labels, valid=valid, class_weights=KITTI3_WEIGHTS_SQUEEZESEGV2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one pass gives this frame's statistics
    with torch.no_grad():
        model(x)
    model.eval()
    with torch.no_grad():
        after = _iou(model(x).argmax(1), labels, valid, CAR)
    elapsed = time.perf_counter() - start
    print(f"car IoU {before:.3f} -> {after:.3f} in {STEPS} steps, {elapsed:.1f} s")
    assert before < 0.5
    assert after > 0.90
