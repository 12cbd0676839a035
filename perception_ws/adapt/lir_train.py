"""Self-supervised training of the LIR network on unlabelled real scans (their own intensity is the target).

The target's frames are split once, deterministically (:func:`holdout_split`): the held-back frames are
never trained on and give :meth:`LirModel.mse`. Each step takes ``batch_size`` crops of the training
frames (:meth:`TargetScans.sample`: the crop of an index is fixed by the target's seed), so a run is a
function of its settings.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np
import torch

from perception_ws.adapt.lir_coding import DEFAULT_BINS, lir_loss
from perception_ws.adapt.lir_model import MASK, XYZ, LirModel
from perception_ws.adapt.lir_net import LirNet
from perception_ws.adapt.target import TargetScans
from perception_ws.errors import PerceptionError


@dataclass(frozen=True)
class LirSettings:
    """The knobs of a LIR training run besides the data."""

    mode: str = "hybrid"
    steps: int = 300
    batch_size: int = 4
    lr: float = 2e-3
    seed: int = 0
    channel_scale: float = 0.25
    bins: int = DEFAULT_BINS
    #: weight of the offset's L2 term against the bin's cross-entropy (hybrid only)
    offset_weight: float = 1.0
    #: share of the target's frames held back for scoring (at least one frame)
    holdout: float = 0.25


def holdout_split(frames: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(training, held-back) frame indices: a seeded permutation, ``max(1, round(holdout * frames))`` held back."""
    if frames < 2:
        raise PerceptionError(f"lir: the target has {frames} frame(s); need at least 2 (one is held back)")
    if not 0 < holdout < 1:
        raise PerceptionError(f"lir: holdout must be between 0 and 1; got {holdout}")
    held = min(frames - 1, max(1, round(holdout * frames)))
    order = np.random.default_rng([seed, 5]).permutation(frames)
    return sorted(int(i) for i in order[held:]), sorted(int(i) for i in order[:held])


def _channels_last(images: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, H, W, 3) points, (B, H, W) mask and (B, H, W) intensity of (B, H, W, 6) images, on ``device``."""
    batch = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return batch[..., XYZ], batch[..., MASK] > 0, batch[..., 3]


def train_lir(
    target: TargetScans,
    mode: str = "hybrid",
    steps: int = 300,
    batch_size: int = 4,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = False,
    settings: LirSettings | None = None,
) -> LirModel:
    """A LIR network trained on ``target``'s training frames; its record names the held-back frames.

    ``settings`` gives the other knobs (its mode, steps, batch size and seed are replaced by the arguments).
    """
    from tqdm import tqdm

    s = LirSettings(**{**asdict(settings or LirSettings()), "mode": mode, "steps": steps, "batch_size": batch_size,
                       "seed": seed})  # fmt: skip
    if s.steps < 1 or s.batch_size < 1:
        raise PerceptionError(f"lir: steps and batch_size must be >= 1; got {s.steps} and {s.batch_size}")
    train, held = holdout_split(len(target), s.holdout, s.seed)
    where = torch.device(device)
    torch.manual_seed(s.seed)
    net = LirNet(s.mode, s.bins, s.channel_scale).to(where)
    xyz, mask, _ = _channels_last(np.stack([target.images[i] for i in train]), where)
    net.fit_normalizer(xyz, mask)
    optimiser = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=s.steps)
    net.train()
    bar = tqdm(range(s.steps), desc=f"lir {s.mode}", unit="step", disable=not progress, file=sys.stderr)
    for step in bar:
        # index f + frames * k is crop k of frame f (TargetScans.sample takes the index modulo the frames)
        first = step * s.batch_size
        indices = [train[(first + b) % len(train)] + len(target) * (first + b) for b in range(s.batch_size)]
        xyz, mask, intensity = _channels_last(np.stack([target.sample(i) for i in indices]), where)
        loss = lir_loss(net(xyz, mask), intensity, mask, s.mode, s.bins, s.offset_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward untyped
        optimiser.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    record = {**asdict(s), "data": target.describe(), "train_frames": train, "held_out_frames": held}
    return LirModel(net.cpu(), record)
