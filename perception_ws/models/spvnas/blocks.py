"""The building blocks of the sparse U-Nets (MinkUNet / SPVCNN / SPVNAS), made from a ``LayerKit``."""

from __future__ import annotations

import torch
from torch import nn

from perception_ws.models.sparse.tensor import SparseTensor
from perception_ws.models.spvnas.elastic import set_active
from perception_ws.models.spvnas.kit import LayerKit


class ConvBlock(nn.Sequential):
    """conv - batch norm - ReLU (a strided or transposed conv when ``stride`` > 1)."""

    def __init__(
        self, kit: LayerKit, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, transposed: bool = False
    ) -> None:
        super().__init__(kit.conv(in_ch, out_ch, kernel_size, stride, transposed), kit.norm(out_ch), kit.relu())

    def set_width(self, out_ch: int) -> None:
        set_active(self[0], out_ch)


class ResidualBlock(nn.Module):
    """Two submanifold convs with a shortcut (a 1x1x1 conv + norm where ``project``, else identity)."""

    def __init__(self, kit: LayerKit, in_ch: int, out_ch: int, kernel_size: int = 3, project: bool = False) -> None:
        super().__init__()
        self.main = nn.Sequential(
            kit.conv(in_ch, out_ch, kernel_size),
            kit.norm(out_ch),
            kit.relu(),
            kit.conv(out_ch, out_ch, kernel_size),
            kit.norm(out_ch),
        )
        self.shortcut = (
            nn.Sequential(kit.conv(in_ch, out_ch, 1), kit.norm(out_ch)) if project or in_ch != out_ch else nn.Identity()
        )
        self.relu = kit.relu()

    def forward(self, x: SparseTensor) -> SparseTensor:
        out: SparseTensor = self.relu(self.main(x) + self.shortcut(x))
        return out

    def set_width(self, out_ch: int, kernel_size: int) -> None:
        for conv in (self.main[0], self.main[3]):
            set_active(conv, out_ch, kernel_size)
        if isinstance(self.shortcut, nn.Sequential):
            set_active(self.shortcut[0], out_ch)


class EncoderStage(nn.Module):
    """Downsample by 2 (kernel 2, stride 2), then ``depth`` residual blocks (the first changes the width)."""

    def __init__(self, kit: LayerKit, in_ch: int, out_ch: int, depth: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.down = ConvBlock(kit, in_ch, in_ch, 2, stride=2)
        self.blocks = nn.ModuleList(
            ResidualBlock(kit, in_ch if i == 0 else out_ch, out_ch, kernel_size, project=kit.elastic and i == 0)
            for i in range(depth)
        )
        self.active_depth = depth

    def forward(self, x: SparseTensor) -> SparseTensor:
        x = self.down(x)
        for block in self.blocks[: self.active_depth]:
            x = block(x)
        return x


class DecoderStage(nn.Module):
    """Upsample by 2 (transposed conv onto the encoder's voxels), concatenate the skip, residual blocks."""

    def __init__(self, kit: LayerKit, in_ch: int, skip_ch: int, out_ch: int, depth: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.up = ConvBlock(kit, in_ch, out_ch, 2, stride=2, transposed=True)
        self.blocks = nn.ModuleList(
            ResidualBlock(
                kit, out_ch + skip_ch if i == 0 else out_ch, out_ch, kernel_size, project=kit.elastic and i == 0
            )
            for i in range(depth)
        )
        self.active_depth = depth

    def forward(self, x: SparseTensor, skip: SparseTensor) -> SparseTensor:
        x = self.up(x)  # lands on the skip's voxels (same cached coordinates, same row order)
        x = x.with_feats(torch.cat([x.feats, skip.feats], dim=1))
        for block in self.blocks[: self.active_depth]:
            x = block(x)
        return x


class PointMLP(nn.Sequential):
    """The point branch between two fusions: linear - batch norm - ReLU on (N, C) point features."""

    def __init__(self, kit: LayerKit, in_ch: int, out_ch: int) -> None:
        super().__init__(kit.linear(in_ch, out_ch), kit.point_norm(out_ch), nn.ReLU(True))

    def set_width(self, out_ch: int) -> None:
        set_active(self[0], out_ch)
