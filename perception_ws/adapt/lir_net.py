"""The LIR network: SqueezeSeg's encoder-decoder (no CRF) from x, y, z, range to an intensity coding.

The range image's points go in as four channels, x, y, z and range (``|xyz|``, as
:func:`~perception_ws.training.samples.image_channels` computes it), normalised with statistics fitted on
the training scans' valid pixels; empty pixels read 0 after normalisation, so a hole is "no
information" rather than a point at the origin. The body is :class:`~perception_ws.models.squeezeseg.SqueezeSegNet`
with batch norm (SqueezeSegV2's), without CAM, scaled in width by ``channel_scale``; its outputs are
those of :mod:`perception_ws.adapt.lir_coding`. Widths that are not a multiple of 16 are padded on the
right and cropped back.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

from perception_ws.adapt.lir_coding import DEFAULT_BINS, decode, output_channels
from perception_ws.errors import PerceptionError
from perception_ws.models.normalize import InputNormalizer
from perception_ws.models.squeezeseg import WIDTH_FACTOR, SqueezeSegNet

#: x, y, z, range
FEATURES = 4


def point_features(xyz: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) x, y, z, range of (B, H, W, 3) points; zero where ``mask`` (B, H, W) is false."""
    xyz = torch.where(mask.unsqueeze(-1), xyz, torch.zeros_like(xyz))
    features = torch.cat([xyz, torch.linalg.vector_norm(xyz, dim=-1, keepdim=True)], dim=-1)
    return features.permute(0, 3, 1, 2)


class LirNet(nn.Module):
    """(B, H, W, 3) points and (B, H, W) mask -> raw outputs (B, C, H, W); :meth:`intensity` decodes them."""

    def __init__(self, mode: str = "hybrid", bins: int = DEFAULT_BINS, channel_scale: float = 0.25) -> None:
        super().__init__()
        if bins < 2:
            raise PerceptionError(f"lir: bins must be >= 2; got {bins}")
        self.mode, self.bins, self.channel_scale = mode, int(bins), float(channel_scale)
        self.normalizer = InputNormalizer(FEATURES)
        # no dropout: the task is a dense regression, and the nets are small
        self.net = SqueezeSegNet(
            FEATURES, output_channels(mode, bins), batch_norm=True, cam=False, dropout=0.0, channel_scale=channel_scale
        )

    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds this architecture: ``LirNet(**config)``."""
        return {"mode": self.mode, "bins": self.bins, "channel_scale": self.channel_scale}

    @torch.no_grad()
    def fit_normalizer(self, xyz: torch.Tensor, mask: torch.Tensor) -> None:
        """Input statistics from the valid pixels of (B, H, W, 3) points."""
        self.normalizer.fit(point_features(xyz, mask), mask)

    def forward(self, xyz: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        width = xyz.shape[2]
        normalised = self.normalizer(point_features(xyz, mask)) * mask.unsqueeze(1).to(xyz.dtype)
        pad = (-width) % WIDTH_FACTOR
        padded = nnf.pad(normalised, (0, pad)) if pad else normalised
        raw: torch.Tensor = self.net(padded)[..., :width]
        return raw

    def intensity(self, raw: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, H, W) intensity in [0, 1] of raw outputs, 0 at empty pixels."""
        return decode(raw, self.mode, self.bins) * mask.to(raw.dtype)
