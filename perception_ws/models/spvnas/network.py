"""The point-voxel sparse U-Net: SPVCNN (with the point branch) and MinkUNet (without), one topology.

Voxel branch: a stem of two submanifold convs, four encoder stages (each /2), four decoder stages (each x2,
with the encoder's skip). Point branch (SPVCNN; docs/algorithms.md §9): the points take the voxel features
by trilinear interpolation and add their own MLP at three places (after the stem, the bottleneck and the
second decoder stage), then are averaged back into the voxels; the last fusion feeds a per-point classifier.
MinkUNet classifies each voxel and gives every point its voxel's logits.
"""

from __future__ import annotations

import torch
from torch import nn

from perception_ws.errors import SparseTensorError
from perception_ws.models.sparse.point_voxel import initial_voxelize, point_to_voxel, voxel_to_point
from perception_ws.models.sparse.tensor import PointTensor
from perception_ws.models.spvnas.blocks import ConvBlock, DecoderStage, EncoderStage, PointMLP
from perception_ws.models.spvnas.kit import LayerKit, fixed_kit

#: SPVCNN's widths: stem, 4 encoder stages, 4 decoder stages (MinkUNet's, scaled by ``width_ratio``).
SPVCNN_WIDTHS = (32, 32, 64, 128, 256, 256, 128, 96, 96)
SPVCNN_DEPTHS = (2,) * 8


class PointVoxelUNet(nn.Module):
    """Per-point logits (N, num_classes) of a ``PointTensor`` (coordinates in voxel units, see ``make_points``)."""

    def __init__(
        self,
        kit: LayerKit,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, ...] = SPVCNN_WIDTHS,
        depths: tuple[int, ...] = SPVCNN_DEPTHS,
        point_branch: bool = True,
        kernel_size: int = 3,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if len(widths) != 9 or len(depths) != 8 or min(widths) < 1 or min(depths) < 1:
            raise SparseTensorError(f"need 9 widths and 8 depths, all >= 1; got {widths} and {depths}")
        cs = widths
        self.in_channels, self.num_classes, self.point_branch = in_channels, num_classes, point_branch
        self.stem = nn.Sequential(
            ConvBlock(kit, in_channels, cs[0], kernel_size), ConvBlock(kit, cs[0], cs[0], kernel_size)
        )
        self.encoders = nn.ModuleList(EncoderStage(kit, cs[i], cs[i + 1], depths[i], kernel_size) for i in range(4))
        self.decoders = nn.ModuleList(
            DecoderStage(kit, cs[4 + j], cs[3 - j], cs[5 + j], depths[4 + j], kernel_size) for j in range(4)
        )
        self.point_mlps = (
            nn.ModuleList([PointMLP(kit, cs[0], cs[4]), PointMLP(kit, cs[4], cs[6]), PointMLP(kit, cs[6], cs[8])])
            if point_branch
            else nn.ModuleList()
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = kit.linear(cs[8], num_classes)

    def forward(self, points: PointTensor) -> torch.Tensor:
        if points.feats.shape[1] != self.in_channels:
            raise SparseTensorError(f"expected {self.in_channels} point features; got {points.feats.shape[1]}")
        x0 = self.stem(initial_voxelize(points))
        z = points
        if self.point_branch:
            z = voxel_to_point(x0, points)
            x0 = point_to_voxel(x0, z)
        skips = [x0]
        for encoder in self.encoders:
            skips.append(encoder(skips[-1]))
        y = skips[4]
        if self.point_branch:
            z = z.with_feats(voxel_to_point(y, z).feats + self.point_mlps[0](z.feats))
            y = point_to_voxel(y, z)
            y = y.with_feats(self.dropout(y.feats))
        for j, decoder in enumerate(self.decoders):
            y = decoder(y, skips[3 - j])
            if self.point_branch and j == 1:
                z = z.with_feats(voxel_to_point(y, z).feats + self.point_mlps[1](z.feats))
                y = point_to_voxel(y, z)
                y = y.with_feats(self.dropout(y.feats))
        if self.point_branch:
            feats = voxel_to_point(y, z).feats + self.point_mlps[2](z.feats)
        else:
            feats = y.feats[points.cache.point_rows[1]]  # every point takes its own voxel's features
        logits: torch.Tensor = self.classifier(feats)
        return logits


def make_points(
    xyz: torch.Tensor, feats: torch.Tensor, voxel_size: float, batch: torch.Tensor | None = None
) -> PointTensor:
    """A network input: points (N, 3) in metres and their features (N, C), in one scan unless ``batch`` (N,)."""
    if xyz.dim() != 2 or xyz.shape[1] != 3:
        raise SparseTensorError(f"point positions must be (N, 3); got {tuple(xyz.shape)}")
    if voxel_size <= 0:
        raise SparseTensorError(f"voxel size must be > 0 metres; got {voxel_size}")
    b = torch.zeros(xyz.shape[0], device=xyz.device) if batch is None else batch.to(xyz.device)
    coords = torch.cat([b.to(xyz.dtype).unsqueeze(1), xyz / voxel_size], dim=1)
    return PointTensor(feats, coords)


def scaled_widths(width_ratio: float) -> tuple[int, ...]:
    """SPVCNN's widths times ``width_ratio`` (the papers' ``cr``), at least 1."""
    return tuple(max(1, round(w * width_ratio)) for w in SPVCNN_WIDTHS)


def build_spvcnn(
    num_classes: int, in_channels: int = 4, width_ratio: float = 1.0, engine: str = "builtin"
) -> PointVoxelUNet:
    """SPVCNN (point branch on) with widths scaled by ``width_ratio``, on ``sparse.engine`` ``engine``."""
    return PointVoxelUNet(fixed_kit(engine), in_channels, num_classes, scaled_widths(width_ratio))


def build_minkunet(
    num_classes: int, in_channels: int = 4, width_ratio: float = 1.0, engine: str = "builtin"
) -> PointVoxelUNet:
    """MinkUNet: the same voxel U-Net without the point branch."""
    return PointVoxelUNet(fixed_kit(engine), in_channels, num_classes, scaled_widths(width_ratio), point_branch=False)
