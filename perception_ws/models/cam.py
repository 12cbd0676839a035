"""Context Aggregation Module (SqueezeSegV2, thesis ch. 5 §3.1).

Early layers see only a few pixels, so missing returns ("dropout noise") corrupt their outputs. CAM gathers
context with a large max-pool, which ignores holes inside its window, and turns it into a per-pixel,
per-channel gate that multiplies the module's input:

    gate = sigmoid(conv1x1(relu(conv1x1(maxpool7x7_stride1(x)))));  out = x * gate

The hidden width is ``channels // reduction`` with reduction 16, the released SqueezeSegV2 configuration.
The 7x7 max-pool (stride 1, same size) is computed as a running maximum along the width, then the height:
the maximum is separable, and a window of 7 is covered by windows of 2, 4, 7 (three ``torch.maximum`` of
shifted views per axis), so the result is identical to ``nn.MaxPool2d(7, 1, 3)`` at 6 element-wise ops
instead of 49 comparisons per output; PyTorch's CPU max-pool kernel otherwise dominated the run time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as nnf

#: channel reduction of CAM's hidden layer (SqueezeSegV2 release: ``REDUCTION = 16``).
CAM_REDUCTION = 16


def running_max(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Max over a centred window of odd ``size`` along ``dim`` (2 or 3), same length, ignoring out-of-range."""
    half = size // 2
    n = x.shape[dim]
    pad = (half, half, 0, 0) if dim == 3 else (0, 0, half, half)
    y = nnf.pad(x, pad, value=float("-inf"))
    covered = 1
    while covered < size:  # window doubles (capped at size): y[i] = max of x_padded[i : i + covered]
        step = min(covered, size - covered)
        length = y.shape[dim] - step
        y = torch.maximum(y.narrow(dim, 0, length), y.narrow(dim, step, length))
        covered += step
    return y.narrow(dim, 0, n)


class SeparableMaxPool(nn.Module):
    """``nn.MaxPool2d(size, stride=1, padding=size // 2)`` computed as width then height running maxima."""

    def __init__(self, size: int) -> None:
        super().__init__()
        if size % 2 == 0:
            raise ValueError(f"pool size must be odd, got {size}")
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return running_max(running_max(x, 3, self.size), 2, self.size)


class ContextAggregation(nn.Module):
    """x * sigmoid(conv(relu(conv(maxpool7x7(x))))); keeps the input's shape."""

    def __init__(self, channels: int, *, pool_size: int = 7, reduction: int = CAM_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = SeparableMaxPool(pool_size)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(self.pool(x)))))
        return x * gate
