"""The intensity coding of learned intensity rendering (SqueezeSegV2, SPEC §5): bins plus an offset, and the losses.

Real remissions are multi-modal (dark cars near 0, road near 0.2, plates and signs near 1), so a plain L2
regression averages the modes. The hybrid coding splits [0, 1] into ``bins`` equal bins: the network
classifies the bin (cross-entropy) and regresses, per bin, the offset of the intensity from the bin's
centre in units of the bin width (so every offset target lies in [-0.5, 0.5] whatever the bin count);
decoding takes the most likely bin's centre plus its offset. The L2 network has one output, the intensity.

Raw outputs: (B, 2 * bins, H, W) for hybrid (bin logits, then offsets) and (B, 1, H, W) for l2.
Losses are means over the valid pixels only (empty pixels carry no intensity to learn).
"""

from __future__ import annotations

import torch
from torch.nn import functional as nnf

from perception_ws.errors import PerceptionError

MODES = ("hybrid", "l2")
#: SqueezeSegV2's bin count.
DEFAULT_BINS = 10


def output_channels(mode: str, bins: int) -> int:
    """The network's output channels for ``mode``."""
    if mode not in MODES:
        raise PerceptionError(f"lir: mode {mode!r}; expected one of {', '.join(MODES)}")
    return 2 * bins if mode == "hybrid" else 1


def encode(intensity: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 bin and float offset (from the bin centre, in bin widths) of each intensity in [0, 1]."""
    scaled = intensity.clamp(0.0, 1.0) * bins
    index = scaled.floor().clamp(max=bins - 1)  # 1.0 belongs to the last bin
    return index.to(torch.int64), scaled - index - 0.5


def decode(raw: torch.Tensor, mode: str, bins: int) -> torch.Tensor:
    """(B, H, W) intensity in [0, 1] from the raw outputs (see the module doc)."""
    if mode == "l2":
        return raw[:, 0].clamp(0.0, 1.0)
    logits, offsets = raw[:, :bins], raw[:, bins:]
    index = logits.argmax(dim=1, keepdim=True)
    offset = offsets.gather(1, index).clamp(-0.5, 0.5)  # an offset outside its bin would contradict the class
    return ((index.to(raw.dtype) + 0.5 + offset) / bins).squeeze(1).clamp(0.0, 1.0)


def lir_loss(
    raw: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, mode: str, bins: int, offset_weight: float = 1.0
) -> torch.Tensor:
    """Mean over valid pixels: hybrid CE(bin) + ``offset_weight`` * L2(offset of the true bin); l2 (raw - target)²."""
    if not bool(valid.any()):
        raise PerceptionError("lir loss: the batch has no valid pixel")
    if mode == "l2":
        return ((raw[:, 0] - target)[valid] ** 2).mean()
    index, offset = encode(target, bins)
    logits, offsets = raw[:, :bins], raw[:, bins:]
    ce = nnf.cross_entropy(logits, index, reduction="none")[valid].mean()
    predicted = offsets.gather(1, index.unsqueeze(1)).squeeze(1)  # only the true bin's offset is trained
    return ce + offset_weight * ((predicted - offset)[valid] ** 2).mean()
