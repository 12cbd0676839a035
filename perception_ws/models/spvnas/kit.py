"""Layer factories: one network topology (``network.PointVoxelUNet``) built from fixed layers (SPVCNN,
MinkUNet; from the chosen sparse engine) or from elastic ones (the SPVNAS super-network).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from perception_ws.models.sparse.engine import load_engine
from perception_ws.models.spvnas.elastic import ElasticBatchNorm, ElasticConv3d, ElasticLinear


@dataclass(frozen=True)
class LayerKit:
    """How to make each layer kind; ``elastic`` says whether widths may change after construction."""

    conv: Any  # (in, out, kernel_size, stride, transposed) -> module on sparse tensors
    norm: Any  # (channels) -> batch norm on sparse tensors
    relu: Any  # () -> ReLU on sparse tensors
    linear: Any  # (in, out) -> module on (N, C) point features
    point_norm: Any  # (channels) -> batch norm on (N, C) point features
    elastic: bool = False


def fixed_kit(engine: str = "builtin") -> LayerKit:
    """Plain layers from ``sparse.engine`` ``engine`` (builtin or torchsparse)."""
    e = load_engine(engine)
    return LayerKit(
        conv=lambda i, o, k, s=1, transposed=False: e.Conv3d(i, o, k, stride=s, transposed=transposed),
        norm=e.BatchNorm,
        relu=lambda: e.ReLU(True),
        linear=nn.Linear,
        point_norm=nn.BatchNorm1d,
    )


def elastic_kit() -> LayerKit:
    """Elastic layers (builtin engine only: they slice weights in the functional conv)."""
    return LayerKit(
        conv=lambda i, o, k, s=1, transposed=False: ElasticConv3d(i, o, k, stride=s, transposed=transposed),
        norm=ElasticBatchNorm,
        relu=lambda: load_engine("builtin").ReLU(True),
        linear=ElasticLinear,
        point_norm=ElasticBatchNorm,
        elastic=True,
    )


def spconv_kit() -> LayerKit:
    """The fixed layers with every sparse conv run by spconv (the reference and benchmark baseline; inference)."""
    from perception_ws.models.sparse.interop import SpconvConv3d

    e = load_engine("builtin")
    return LayerKit(
        conv=lambda i, o, k, s=1, transposed=False: SpconvConv3d(i, o, k, stride=s, transposed=transposed),
        norm=e.BatchNorm,
        relu=lambda: e.ReLU(True),
        linear=nn.Linear,
        point_norm=nn.BatchNorm1d,
    )
