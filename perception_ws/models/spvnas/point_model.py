"""SPVCNN and SPVNAS as trainable, savable segmenters: points in metres in, per-point logits out.

:class:`PointVoxelSegmenter` wraps a :class:`~perception_ws.models.spvnas.network.PointVoxelUNet` with what the
product needs around it: the voxel size, a JSON ``config`` that rebuilds it (the weights manifest's ``model``),
and two ways in. ``forward_points`` takes points (the node and ``perception eval``: every point gets its label
directly). ``forward`` takes the training loop's batches of (B, 6, H, W) sweep images, in which each return owns
one pixel: the occupied pixels are the points, and the per-point logits go back to those pixels, so the range-image
loop's loss, masking, DDP and resume apply unchanged.

Features per point: x, y, z (metres) and intensity, as SPVNAS uses them (no normalisation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from perception_ws.errors import PerceptionError
from perception_ws.models.families import POINT_MODELS
from perception_ws.models.spvnas.network import PointVoxelUNet, build_spvcnn, make_points, scaled_widths
from perception_ws.models.spvnas.sandwich import step_subnets
from perception_ws.models.spvnas.supernet import SPVNAS, SearchSpace, SubnetConfig

#: SPVNAS' finest voxel, metres.
DEFAULT_VOXEL_SIZE = 0.05
#: channels of a training image (perception_ws.projection): x, y, z, intensity, range, mask.
_FEATURES, _INTENSITY_FEATURE, _MASK = slice(0, 4), 3, 5


class PointVoxelSegmenter(nn.Module):
    """An SPVCNN or SPVNAS network, its voxel size and its rebuildable ``config`` (see the module doc)."""

    def __init__(
        self,
        name: str,
        num_classes: int,
        *,
        voxel_size: float = DEFAULT_VOXEL_SIZE,
        width_ratio: float = 1.0,
        zero_intensity: bool = False,
        space: SearchSpace | None = None,
        subnet: SubnetConfig | None = None,
    ) -> None:
        super().__init__()
        if name not in POINT_MODELS:
            raise PerceptionError(f"unknown point model {name!r}; known: {', '.join(POINT_MODELS)}")
        if not (np.isfinite(voxel_size) and voxel_size > 0):
            raise PerceptionError(f"{name}: voxel size must be a finite number of metres > 0; got {voxel_size!r}")
        if not (np.isfinite(width_ratio) and width_ratio > 0):
            raise PerceptionError(f"{name}: width ratio must be a finite number > 0; got {width_ratio!r}")
        self.name, self.num_classes, self.in_channels = name, int(num_classes), 4
        self.voxel_size, self.width_ratio, self.zero_intensity = float(voxel_size), float(width_ratio), zero_intensity
        self.net: PointVoxelUNet
        if name == "spvcnn":
            self.net = build_spvcnn(self.num_classes, self.in_channels, width_ratio)
            self.space: SearchSpace | None = None
        else:
            self.space = space or SearchSpace(max_widths=scaled_widths(width_ratio))
            self.net = SPVNAS(self.num_classes, self.in_channels, self.space)
            if subnet is not None:
                self.net.set_subnet(subnet)
        #: the sub-network fixed at build time (an exported one); None: the super-network (largest by default)
        self.fixed_subnet = subnet

    @property
    def config(self) -> dict[str, Any]:
        """JSON-safe settings that :func:`point_model_from_config` rebuilds this architecture from."""
        config: dict[str, Any] = {
            "name": self.name,
            "family": "point_voxel",
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "voxel_size": self.voxel_size,
            "width_ratio": self.width_ratio,
            "zero_intensity": self.zero_intensity,
        }
        if self.space is not None:
            config["space"] = {
                "max_widths": list(self.space.max_widths),
                "max_depth": self.space.max_depth,
                "width_ratios": list(self.space.width_ratios),
                "kernel_choices": list(self.space.kernel_choices),
            }
            config["subnet"] = None if self.fixed_subnet is None else subnet_to_json(self.fixed_subnet)
        return config

    def set_subnet(self, subnet: SubnetConfig) -> None:
        """Run ``subnet`` of the super-network from now on (SPVNAS only)."""
        if not isinstance(self.net, SPVNAS):
            raise PerceptionError(f"{self.name} is no super-network: only spvnas has sub-networks")
        self.net.set_subnet(subnet)

    def step_subnets(self, seed: int, step: int, rank: int, sandwich: int = 0) -> list[SubnetConfig]:
        """Super-network training: the sub-networks step ``step`` of process ``rank`` trains, in order
        (:func:`~perception_ws.models.spvnas.sandwich.step_subnets`); empty for a fixed network (it trains as it is).
        """
        if not isinstance(self.net, SPVNAS) or self.fixed_subnet is not None:
            return []
        return step_subnets(self.net.space, seed, step, rank, sandwich)

    def forward_points(self, xyz: torch.Tensor, feats: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """(N, num_classes) logits of points ``xyz`` (N, 3) metres with ``feats`` (N, 4): x y z intensity."""
        if self.zero_intensity:
            feats = torch.cat([feats[:, :_INTENSITY_FEATURE], torch.zeros_like(feats[:, _INTENSITY_FEATURE:])], 1)
        logits: torch.Tensor = self.net(make_points(xyz, feats, self.voxel_size, batch))
        return logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, num_classes, H, W) logits of (B, 6, H, W) sweep images: the occupied pixels' points, 0 elsewhere."""
        b, h, w = torch.nonzero(images[:, _MASK] > 0, as_tuple=True)
        feats = images[b, _FEATURES, h, w] if b.numel() else images.new_zeros((0, 4))
        logits = images.new_zeros((images.shape[0], self.num_classes, images.shape[2], images.shape[3]))
        if b.numel():
            point_logits = self.forward_points(feats[:, :3], feats, b)
            logits[b, :, h, w] = point_logits.to(logits.dtype)
        return logits


def subnet_to_json(subnet: SubnetConfig) -> dict[str, list[int]]:
    """A sub-network as the manifest stores it."""
    return {"widths": list(subnet.widths), "depths": list(subnet.depths), "kernels": list(subnet.kernels)}


def subnet_from_json(data: Mapping[str, Any]) -> SubnetConfig:
    """A sub-network back from :func:`subnet_to_json`'s form; one line if it is malformed."""
    try:
        return SubnetConfig(*(tuple(int(v) for v in data[key]) for key in ("widths", "depths", "kernels")))
    except (KeyError, TypeError, ValueError) as exc:
        raise PerceptionError(
            f"sub-network {dict(data)!r}: expected widths, depths and kernels lists ({exc})"
        ) from None


def point_model_from_config(config: Mapping[str, Any]) -> PointVoxelSegmenter:
    """Rebuild a point model from its ``config`` (a weights manifest's ``model``)."""
    missing = {"name", "num_classes"} - set(config)
    if missing:
        raise PerceptionError(f"point model config lacks {sorted(missing)}; got keys {sorted(config)}")
    space = None
    if config.get("space") is not None:
        s = config["space"]
        space = SearchSpace(
            tuple(int(v) for v in s["max_widths"]),
            int(s["max_depth"]),
            tuple(float(v) for v in s["width_ratios"]),
            tuple(int(v) for v in s["kernel_choices"]),
        )
    subnet = subnet_from_json(config["subnet"]) if config.get("subnet") is not None else None
    return PointVoxelSegmenter(
        str(config["name"]),
        int(config["num_classes"]),
        voxel_size=float(config.get("voxel_size", DEFAULT_VOXEL_SIZE)),
        width_ratio=float(config.get("width_ratio", 1.0)),
        zero_intensity=bool(config.get("zero_intensity", False)),
        space=space,
        subnet=subnet,
    )
