"""The building blocks of SqueezeSeg: a conv block, the fire module and the fire deconvolution.

Fire module (SqueezeNet, thesis ch. 3 §3.2): a 1x1 "squeeze" conv to few channels, then parallel 1x1 and 3x3
"expand" convs whose outputs are concatenated. fireDeconv puts a 1x4 transposed conv of stride (1, 2) between
squeeze and expand, doubling the WIDTH only (range images are short and wide).

SqueezeSegV2 adds batch norm after every conv; ``batch_norm=True`` selects it here. The order is
conv -> BN -> ReLU (the usual one; the TensorFlow release applies ReLU before BN), and a conv followed by BN
carries no bias because BN's shift makes it redundant.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """Conv2d, optional BatchNorm2d, ReLU; stride acts on the width only (the thesis' downsampling)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, width_stride: int = 1, batch_norm: bool
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=(1, width_stride),
                padding=kernel_size // 2,
                bias=not batch_norm,
            )
        ]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class FireExpand(nn.Module):
    """The expand layer: 1x1 and 3x3 convs of the same input, concatenated along channels."""

    def __init__(self, squeeze: int, expand1x1: int, expand3x3: int, batch_norm: bool) -> None:
        super().__init__()
        self.expand1x1 = ConvBlock(squeeze, expand1x1, 1, batch_norm=batch_norm)
        self.expand3x3 = ConvBlock(squeeze, expand3x3, 3, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], dim=1)


class Fire(nn.Module):
    """squeeze 1x1 -> (expand 1x1 ‖ expand 3x3); output channels ``expand1x1 + expand3x3``."""

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int, *, batch_norm: bool) -> None:
        super().__init__()
        self.out_channels = expand1x1 + expand3x3
        self.squeeze = ConvBlock(in_channels, squeeze, 1, batch_norm=batch_norm)
        self.expand = FireExpand(squeeze, expand1x1, expand3x3, batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.squeeze(x))


def bilinear_upsampling_kernel(channels: int, factor: int = 2) -> torch.Tensor:
    """ConvTranspose2d weight (C, C, 1, 2*factor) that upsamples each channel linearly along the width.

    Used as the initial value of fireDeconv's transposed conv (as the released SqueezeSeg does), so an
    untrained decoder starts from plain interpolation instead of noise.
    """
    size = 2 * factor
    centre = factor - 0.5
    taps = 1.0 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    weight = torch.zeros(channels, channels, 1, size)
    idx = torch.arange(channels)
    weight[idx, idx, 0, :] = taps
    return weight


class FireDeconv(nn.Module):
    """squeeze 1x1 -> 1x4 transposed conv (width x2) -> (expand 1x1 ‖ expand 3x3)."""

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int, *, batch_norm: bool) -> None:
        super().__init__()
        self.out_channels = expand1x1 + expand3x3
        self.squeeze = ConvBlock(in_channels, squeeze, 1, batch_norm=batch_norm)
        # kernel 4, stride 2, padding 1 gives exactly twice the input width.
        deconv = nn.ConvTranspose2d(squeeze, squeeze, (1, 4), stride=(1, 2), padding=(0, 1), bias=not batch_norm)
        with torch.no_grad():
            deconv.weight.copy_(bilinear_upsampling_kernel(squeeze))
            if deconv.bias is not None:
                deconv.bias.zero_()
        layers: list[nn.Module] = [deconv]
        if batch_norm:
            layers.append(nn.BatchNorm2d(squeeze))
        layers.append(nn.ReLU(inplace=True))
        self.upsample = nn.Sequential(*layers)
        self.expand = FireExpand(squeeze, expand1x1, expand3x3, batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.upsample(self.squeeze(x)))
