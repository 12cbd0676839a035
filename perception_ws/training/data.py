"""Batches by step: the torch side of the index-addressed samples (see the package doc).

Step ``s`` of rank ``r`` among ``world`` processes reads samples ``((s * world + r) * B + b)`` for
``b < B``, so a resumed run, or one with another worker count, reads the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from perception_ws.training.augment import Augmentation, augment
from perception_ws.training.samples import SampleSource


class AugmentedSamples(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``source`` sample ``i``, augmented with draws seeded by ``(seed, i)``; (6, H, W) and (H, W) tensors."""

    def __init__(self, source: SampleSource, augmentation: Augmentation | None, seed: int) -> None:
        self.source = source
        self.augmentation = augmentation
        self.seed = seed

    def __len__(self) -> int:
        return self.source.size or 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, labels = self.source.sample(index)
        if self.augmentation is not None:
            image, labels = augment(image, labels, self.augmentation, np.random.default_rng((self.seed, index, 11)))
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), torch.from_numpy(labels)


class StepBatches(Sampler[list[int]]):
    """The sample indices of steps ``start`` .. ``stop - 1`` for one rank."""

    def __init__(self, start: int, stop: int, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.stop, self.batch_size, self.rank, self.world = start, stop, batch_size, rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = (step * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))


def make_loader(samples: AugmentedSamples, batches: StepBatches, workers: int) -> DataLoader[Any]:
    """A loader over ``batches``; workers are spawned (a forked worker cannot use CUDA for ray casting)."""
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"multiprocessing_context": "spawn", "prefetch_factor": 4, "persistent_workers": False}
    # its own generator: the loader's seed draw must not move the global RNG (dropout), or a resumed run
    # would differ from an uninterrupted one
    return DataLoader(
        samples,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(0),
        **extra,
    )
