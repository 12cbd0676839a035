"""The SqueezeSeg encoder-decoder (thesis ch. 3 §3.2) and its SqueezeSegV2 variant (ch. 5 §3).

Encoder (SqueezeNet conv1a ... fire9): conv1 3x3 with width stride 2, max-pools 3x3 with width stride 2
after conv1, fire3 and fire5; fire modules (squeeze/expand) 16/64/64, 16/64/64, 32/128/128, 32/128/128,
48/192/192, 48/192/192, 64/256/256, 64/256/256 (the released configuration). The height is never
downsampled; the width shrinks 16x.

Decoder: fireDeconvs 10-13 (64/128/128, 32/64/64, 16/32/32, 16/32/32), each doubling the width, with
skip connections ADDED to the encoder maps of the same size (fire5, fire3, conv1, and a 1x1 conv of the
input, conv1_skip); dropout; conv14 (3x3) gives the class logits.

SqueezeSegV2: batch norm after every conv (``batch_norm``) and CAM after conv1, fire2 and fire3 (``cam``);
its skips take the CAM outputs. The mask channel is just a sixth input channel.

Widths must be a multiple of :data:`WIDTH_FACTOR` here; :class:`~perception_ws.models.segmenter.RangeSegmenter`
pads and crops other widths.
"""

from __future__ import annotations

import torch
from torch import nn

from perception_ws.errors import PerceptionError
from perception_ws.models.cam import ContextAggregation
from perception_ws.models.fire import ConvBlock, Fire, FireDeconv

#: total width downsampling of the encoder (conv1 and three max-pools, each /2).
WIDTH_FACTOR = 16


def _width_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=(1, 2), padding=1)


class SqueezeSegNet(nn.Module):
    """Range image (B, C, H, W) with W % 16 == 0 -> logits (B, num_classes, H, W)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        batch_norm: bool,
        cam: bool,
        dropout: float = 0.5,
        channel_scale: float = 1.0,
    ) -> None:
        super().__init__()
        # every width times channel_scale (a small net for a cheap task, e.g. LIR); the narrowest layer has 16
        # channels, so a scale in 1/16 steps keeps every width whole and the skip sums' shapes equal
        if not (channel_scale > 0 and float(channel_scale * 16).is_integer()):
            raise PerceptionError(f"SqueezeSegNet: channel_scale must be a multiple of 1/16; got {channel_scale}")
        bn = batch_norm

        def c(channels: int) -> int:
            return int(channels * channel_scale)

        self.conv1 = ConvBlock(in_channels, c(64), 3, width_stride=2, batch_norm=bn)
        self.conv1_skip = ConvBlock(in_channels, c(64), 1, batch_norm=bn)
        self.pool1 = _width_pool()
        self.fire2 = Fire(c(64), c(16), c(64), c(64), batch_norm=bn)
        self.fire3 = Fire(c(128), c(16), c(64), c(64), batch_norm=bn)
        self.pool3 = _width_pool()
        self.fire4 = Fire(c(128), c(32), c(128), c(128), batch_norm=bn)
        self.fire5 = Fire(c(256), c(32), c(128), c(128), batch_norm=bn)
        self.pool5 = _width_pool()
        self.fire6 = Fire(c(256), c(48), c(192), c(192), batch_norm=bn)
        self.fire7 = Fire(c(384), c(48), c(192), c(192), batch_norm=bn)
        self.fire8 = Fire(c(384), c(64), c(256), c(256), batch_norm=bn)
        self.fire9 = Fire(c(512), c(64), c(256), c(256), batch_norm=bn)
        self.fire10 = FireDeconv(c(512), c(64), c(128), c(128), batch_norm=bn)
        self.fire11 = FireDeconv(c(256), c(32), c(64), c(64), batch_norm=bn)
        self.fire12 = FireDeconv(c(128), c(16), c(32), c(32), batch_norm=bn)
        self.fire13 = FireDeconv(c(64), c(16), c(32), c(32), batch_norm=bn)
        self.dropout = nn.Dropout(dropout)
        self.conv14 = nn.Conv2d(c(64), num_classes, 3, padding=1)
        # CAM after the first three modules (thesis: "1 convolution layer and 2 FireModules").
        self.cam1: nn.Module = ContextAggregation(c(64)) if cam else nn.Identity()
        self.cam2: nn.Module = ContextAggregation(c(128)) if cam else nn.Identity()
        self.cam3: nn.Module = ContextAggregation(c(128)) if cam else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.cam1(self.conv1(x))  # W/2
        skip = self.conv1_skip(x)  # W
        f3 = self.cam3(self.fire3(self.cam2(self.fire2(self.pool1(c1)))))  # W/4
        f5 = self.fire5(self.fire4(self.pool3(f3)))  # W/8
        f9 = self.fire9(self.fire8(self.fire7(self.fire6(self.pool5(f5)))))  # W/16
        d = self.fire10(f9) + f5
        d = self.fire11(d) + f3
        d = self.fire12(d) + c1
        d = self.fire13(d) + skip
        return self.conv14(self.dropout(d))
