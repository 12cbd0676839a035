"""The GCA term of a training step (docs/algorithms.md §5): one unlabelled real batch per step, and the
geodesic distance between its output feature covariance and that of the simulated batch.

The aligned features are the network's class logits BEFORE the CRF (the output of ``model.net``, cropped to
the input width), caught by a forward hook, so the simulated batch is not run twice and DDP sees ordinary
forward calls of the wrapped model. Under DDP each rank draws its own real batch and compares covariances
of its own two batches; the gradients are averaged by DDP as usual. The real batch goes through the same
model (its input normaliser included) in training mode, so its batch-norm statistics also enter the running
averages (progressive domain calibration re-estimates them on real scans after training anyway).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from perception_ws.adapt.gca import correlation_distance
from perception_ws.adapt.target import TargetScans
from perception_ws.models.segmenter import RangeSegmenter
from perception_ws.training.config import TrainConfig


def read_target(config: TrainConfig) -> TargetScans | None:
    """The run's unlabelled real scans (None without ``config.target``), read once; a missing or empty
    target fails here with one line, before the run writes anything.
    """
    if config.target is None:
        return None
    return TargetScans(
        Path(config.target),
        sensor=config.sensor,
        columns=config.columns,
        crop_width=config.crop_width,
        seed=config.seed,
    )


def real_batch(
    target: TargetScans, batch_size: int, in_channels: int, step: int, rank: int, world: int
) -> torch.Tensor:
    """The (B, C, H, crop_width) real images of ``step`` on ``rank`` (on the CPU): addressed by step, so a resumed
    run draws the same ones.
    """
    first = (step * world + rank) * batch_size
    return torch.from_numpy(target.batch(range(first, first + batch_size)))[:, :in_channels]


class CorrelationAlignment:
    """Draws the real batch of a step and computes ``gca_weight`` * distance; see the module doc."""

    def __init__(self, target: TargetScans, config: TrainConfig, model: RangeSegmenter) -> None:
        self.target = target
        self.weight = config.gca_weight
        self.distance = config.gca_distance
        self.batch_size = config.batch_size
        self.model = model

    def real_batch(self, step: int, rank: int, world: int, device: torch.device) -> torch.Tensor:
        """The (B, C, H, crop_width) real images of ``step`` on ``rank`` on ``device`` (:func:`real_batch`)."""
        images = real_batch(self.target, self.batch_size, self.model.in_channels, step, rank, world)
        return images.to(device, non_blocking=True)

    def forward(
        self, wrapped: nn.Module, images: torch.Tensor, step: int, rank: int, world: int, amp: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's forward passes: the simulated ``images`` through ``wrapped`` (its output logits, for the
        focal loss) and the real batch of ``step``; returns those logits and ``gca_weight`` * distance.
        """
        real = self.real_batch(step, rank, world, images.device)
        caught: list[torch.Tensor] = []
        hook = self.model.net.register_forward_hook(lambda module, inputs, output: caught.append(output))
        try:
            with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = wrapped(images)
                wrapped(real)
        finally:
            hook.remove()
        source, target = (net[..., : batch.shape[-1]] for net, batch in zip(caught, (images, real), strict=True))
        distance = correlation_distance(
            source, self.model.valid_mask(images), target, self.model.valid_mask(real), self.distance
        )
        return logits, self.weight * distance.float()
