"""The SPVNAS super-network: one weight-shared SPVCNN over elastic widths, depths and (small) kernels.

Design space (docs/algorithms.md §9, after the 3D-NAS talk): per stage a width from a fine-grained grid
(``width_ratios`` of the largest width), a depth of 1..max residual blocks, and a kernel size among
``kernel_choices`` (3, optionally 1: large 3D kernels cost too much). ``set_subnet`` points every elastic
layer at its slice; the sub-network then runs on views of the super-network's weights (nothing copied).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from perception_ws.errors import SparseTensorError
from perception_ws.models.spvnas.blocks import ConvBlock, DecoderStage, EncoderStage, PointMLP, ResidualBlock
from perception_ws.models.spvnas.kit import elastic_kit
from perception_ws.models.spvnas.network import SPVCNN_WIDTHS, PointVoxelUNet

WIDTH_RATIOS = (0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)


@dataclass(frozen=True)
class SearchSpace:
    """The choices of the super-network: largest widths (9), largest depth, width grid, kernel sizes."""

    max_widths: tuple[int, ...] = SPVCNN_WIDTHS
    max_depth: int = 2
    width_ratios: tuple[float, ...] = WIDTH_RATIOS
    kernel_choices: tuple[int, ...] = (3,)

    def width_choices(self, stage: int) -> list[int]:
        return sorted({max(1, round(self.max_widths[stage] * r)) for r in self.width_ratios})


@dataclass(frozen=True)
class SubnetConfig:
    """One sub-network: 9 widths (stem, 4 encoder, 4 decoder stages), 8 depths and 8 kernel sizes (per stage)."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]


def largest_subnet(space: SearchSpace) -> SubnetConfig:
    """Every choice at its largest: the whole super-network."""
    return SubnetConfig(space.max_widths, (space.max_depth,) * 8, (max(space.kernel_choices),) * 8)


def smallest_subnet(space: SearchSpace) -> SubnetConfig:
    """Every choice at its smallest."""
    widths = tuple(space.width_choices(i)[0] for i in range(9))
    return SubnetConfig(widths, (1,) * 8, (min(space.kernel_choices),) * 8)


def sample_subnet(space: SearchSpace, rng: random.Random) -> SubnetConfig:
    """A uniformly drawn sub-network (each choice independent)."""
    return SubnetConfig(
        tuple(rng.choice(space.width_choices(i)) for i in range(9)),
        tuple(rng.randint(1, space.max_depth) for _ in range(8)),
        tuple(rng.choice(space.kernel_choices) for _ in range(8)),
    )


class SPVNAS(PointVoxelUNet):
    """The super-network; ``set_subnet(config)`` picks the sub-network that ``forward`` runs."""

    def __init__(self, num_classes: int, in_channels: int = 4, space: SearchSpace | None = None) -> None:
        self.space = space or SearchSpace()
        if any(k > 3 or k % 2 == 0 for k in self.space.kernel_choices):
            raise SparseTensorError(f"kernel choices must be odd and <= 3; got {self.space.kernel_choices}")
        super().__init__(
            elastic_kit(), in_channels, num_classes, self.space.max_widths, (self.space.max_depth,) * 8, True, 3
        )
        self.subnet = largest_subnet(self.space)

    def set_subnet(self, config: SubnetConfig) -> None:
        self._check(config)
        cs = config.widths
        for conv_block in self.stem:
            assert isinstance(conv_block, ConvBlock)
            conv_block.set_width(cs[0])
        stages = [*self.encoders, *self.decoders]
        for i, stage in enumerate(stages):
            out_ch = cs[i + 1]
            if isinstance(stage, EncoderStage):
                stage.down.set_width(cs[i])  # the encoder's downsampling keeps the incoming width
            elif isinstance(stage, DecoderStage):
                stage.up.set_width(out_ch)
            for block in stage.blocks:
                assert isinstance(block, ResidualBlock)
                block.set_width(out_ch, config.kernels[i])
            stage.active_depth = config.depths[i]
        for mlp, width in zip(self.point_mlps, (cs[4], cs[6], cs[8]), strict=True):
            assert isinstance(mlp, PointMLP)
            mlp.set_width(width)
        self.subnet = config

    def _check(self, config: SubnetConfig) -> None:
        s = self.space
        ok = (
            len(config.widths) == 9
            and len(config.depths) == 8
            and len(config.kernels) == 8
            and all(1 <= w <= m for w, m in zip(config.widths, s.max_widths, strict=True))
            and all(1 <= d <= s.max_depth for d in config.depths)
            and all(k in s.kernel_choices for k in config.kernels)
        )
        if not ok:
            raise SparseTensorError(f"sub-network {config} is outside the search space {s}")
