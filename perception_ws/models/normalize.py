"""Per-channel input normalisation with its statistics stored in the model (docs/algorithms.md §1).

``(x - mean) / std`` per channel, applied to every pixel, empty ones included (as the released SqueezeSeg
does: an empty pixel then reads ``-mean / std``, which differs from any real return). The statistics are
buffers, so they travel in the state dict with the weights; :meth:`InputNormalizer.fit` sets them from data
over valid pixels only. A 0/1 mask channel is left as is (mean 0, std 1) so it stays a clean flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from perception_ws.errors import PerceptionError


class InputNormalizer(nn.Module):
    """(x - mean) / std per channel; buffers ``mean`` and ``std`` of shape (C,)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        if mean is not None or std is not None:
            self.set_stats(mean if mean is not None else [0.0] * channels, std if std is not None else [1.0] * channels)

    def set_stats(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor) -> None:
        m = torch.as_tensor(mean, dtype=torch.float32).flatten()
        s = torch.as_tensor(std, dtype=torch.float32).flatten()
        if m.numel() != self.channels or s.numel() != self.channels:
            raise PerceptionError(
                f"input normalisation: expected {self.channels} means and stds, got {m.numel()} and {s.numel()}"
            )
        if not bool(torch.isfinite(m).all()) or not bool((s > 0).all()):
            raise PerceptionError(
                f"input normalisation: means must be finite and stds > 0; got {m.tolist()}, {s.tolist()}"
            )
        self.mean.copy_(m)
        self.std.copy_(s)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, valid: torch.Tensor, *, skip: Sequence[int] = ()) -> None:
        """Set mean/std from a batch ``images`` (B, C, H, W) over the pixels where ``valid`` (B, H, W) is true.

        Channels listed in ``skip`` (e.g. the mask channel) keep mean 0 and std 1.
        """
        if images.ndim != 4 or images.shape[1] != self.channels:
            raise PerceptionError(
                f"normaliser fit: expected images of shape (B, {self.channels}, H, W), got {tuple(images.shape)}"
            )
        sel = valid.to(torch.bool)
        if sel.shape != (images.shape[0], *images.shape[2:]) or not bool(sel.any()):
            raise PerceptionError("normaliser fit: need a (B, H, W) valid mask with at least one valid pixel")
        values = images.permute(1, 0, 2, 3)[:, sel].double()  # (C, N valid)
        mean = values.mean(dim=1)
        std = values.std(dim=1, unbiased=False)
        std = torch.where(std < 1e-6, torch.ones_like(std), std)  # a constant channel (no intensity) stays as is
        for c in skip:
            mean[c], std[c] = 0.0, 1.0
        self.set_stats(mean.float(), std.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
