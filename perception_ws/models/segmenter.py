"""The whole range-image segmenter: normalise, pad, network, crop, optional CRF -> logits.

Input: a raw range image (B, C, H, W) with channels (x, y, z, intensity, range[, mask]), empty pixels all
zero. Output: class logits (B, K, H, W) (apply softmax/argmax for probabilities/labels).

Widths that are not a multiple of the encoder's downsampling factor (16) are padded on the right with
empty pixels (zeros, i.e. "no return", before normalisation, exactly how a missing return looks) and the
logits are cropped back, so every width works; the padded columns never reach the CRF, which runs on the
original width. The height is not downsampled, so any height works as is.

The CRF reads x, y, z (metres) and the valid mask (range > 0) from the raw input channels
``xyz_channels`` and ``valid_channel``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

from perception_ws.errors import CloudFormatError, PerceptionError
from perception_ws.models.crf import CRFConfig, RecurrentCRF
from perception_ws.models.normalize import InputNormalizer
from perception_ws.models.squeezeseg import WIDTH_FACTOR, SqueezeSegNet

#: upper bounds of a network's size settings, checked before any layer is allocated: a weights manifest is
#: read from disk, and one claiming 10^9 classes would otherwise ask for terabytes (the largest class set has 20).
MAX_CLASSES = 256
MAX_IN_CHANNELS = 64
#: the widest channel scale accepted (every layer's channels times it; 1.0 is SqueezeSeg's own widths).
MAX_CHANNEL_SCALE = 2.0


def check_channel_scale(scale: float, who: str) -> float:
    """``scale`` as a float if it is a multiple of 1/16 in (0, MAX_CHANNEL_SCALE] (the narrowest layer has 16
    channels, so these keep every width whole); else a PerceptionError naming ``who``.
    """
    value = float(scale)
    if not (math.isfinite(value) and 0 < value <= MAX_CHANNEL_SCALE and (value * 16).is_integer()):
        limit = f"(0, {MAX_CHANNEL_SCALE}]"
        raise PerceptionError(f"{who}: channel_scale must be a multiple of 1/16 in {limit}; got {scale!r}")
    return value


class RangeSegmenter(nn.Module):
    """A SqueezeSeg-family segmenter with its input statistics and optional CRF; see the module doc."""

    _channel_keep: torch.Tensor
    _xyz_index: torch.Tensor

    def __init__(
        self,
        name: str,
        num_classes: int,
        in_channels: int,
        *,
        batch_norm: bool,
        cam: bool,
        crf: bool = False,
        dropout: float = 0.5,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
        crf_params: dict[str, Any] | None = None,
        xyz_channels: Sequence[int] = (0, 1, 2),
        valid_channel: int = 4,
        zero_channels: Sequence[int] = (),
        channel_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not 2 <= num_classes <= MAX_CLASSES:
            raise PerceptionError(f"model {name}: num_classes must be in 2..{MAX_CLASSES}, got {num_classes}")
        if not 1 <= in_channels <= MAX_IN_CHANNELS:
            raise PerceptionError(f"model {name}: in_channels must be in 1..{MAX_IN_CHANNELS}, got {in_channels}")
        if not 0.0 <= dropout < 1.0:
            raise PerceptionError(f"model {name}: dropout must lie in [0, 1), got {dropout}")
        self.name = name
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.batch_norm = batch_norm
        self.cam = cam
        self.dropout = dropout
        # a narrower network (e.g. 0.5: a quarter of the convolutions' work) for small CPUs; 1.0 is the thesis'
        self.channel_scale = check_channel_scale(channel_scale, f"model {name}")
        self.xyz_channels = tuple(int(c) for c in xyz_channels)
        self.valid_channel = int(valid_channel)
        # inputs the model is trained to ignore (e.g. intensity, which simulators and sensors disagree on):
        # zeroed inside the model, so training and deployment see the same thing
        self.zero_channels = tuple(int(c) for c in zero_channels)
        if any(not 0 <= c < in_channels for c in self.zero_channels):
            raise PerceptionError(f"model {name}: zero_channels {self.zero_channels} outside 0..{in_channels - 1}")
        # index tensors as (non-persistent) buffers: they follow the model to its device, so a forward pass
        # copies nothing from the host (which CUDA-graph capture forbids)
        keep = torch.ones(in_channels)
        keep[list(self.zero_channels)] = 0.0
        self.register_buffer("_channel_keep", keep.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_xyz_index", torch.tensor(self.xyz_channels, dtype=torch.long), persistent=False)
        self.normalizer = InputNormalizer(in_channels, input_mean, input_std)
        self.net = SqueezeSegNet(
            in_channels, num_classes, batch_norm=batch_norm, cam=cam, dropout=dropout, channel_scale=channel_scale
        )
        self.crf: RecurrentCRF | None = None
        if crf:
            used = (*self.xyz_channels, self.valid_channel)
            if len(self.xyz_channels) != 3 or min(used) < 0 or max(used) >= in_channels:
                raise PerceptionError(
                    f"model {name}: the CRF needs 3 xyz channels and a range channel among {in_channels} inputs; "
                    f"got xyz_channels={self.xyz_channels}, valid_channel={self.valid_channel}"
                )
            self.crf = RecurrentCRF(num_classes, CRFConfig.from_dict(crf_params))

    @property
    def config(self) -> dict[str, Any]:
        """Everything :func:`~perception_ws.models.registry.build_model` needs to rebuild this model (JSON-safe).

        The input statistics are read from the buffers, so a fitted normaliser is recorded too. ``channel_scale``
        appears only where it is not 1.0 (manifests written before it existed rebuild the full-width network).
        """
        scale = {} if self.channel_scale == 1.0 else {"channel_scale": self.channel_scale}
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "crf": self.crf is not None,
            "dropout": self.dropout,
            "input_mean": [float(v) for v in self.normalizer.mean],
            "input_std": [float(v) for v in self.normalizer.std],
            "crf_params": self.crf.config.to_dict() if self.crf is not None else None,
            "xyz_channels": list(self.xyz_channels),
            "valid_channel": self.valid_channel,
            "zero_channels": list(self.zero_channels),
            **scale,
        }

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise CloudFormatError(
                f"model {self.name}: expected a range image batch of shape (B, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        if x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
            raise CloudFormatError(f"model {self.name}: empty input of shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise CloudFormatError(f"model {self.name}: expected a float tensor, got {x.dtype}")

    def valid_mask(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W) bool: pixels holding a return (range > 0)."""
        return x[:, self.valid_channel] > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine(self.backbone(x), x)

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        """The network's logits before the CRF (the first half of :meth:`forward`; the pipeline times it alone)."""
        self._check_input(x)
        width = x.shape[-1]
        pad = (-width) % WIDTH_FACTOR
        x = self._kept_channels(x)
        padded = nnf.pad(x, (0, pad)) if pad else x
        return self.net(self.normalizer(padded))[..., :width]

    def refine(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:meth:`backbone`'s logits after the CRF (unchanged without one), from the same raw input ``x``."""
        if self.crf is None:
            return logits
        x = self._kept_channels(x)
        return self.crf(logits, x.index_select(1, self._xyz_index), self.valid_mask(x))

    def _kept_channels(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._channel_keep.to(x.dtype) if self.zero_channels else x
