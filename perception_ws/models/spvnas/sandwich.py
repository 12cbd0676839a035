"""The sub-networks one super-network training step trains, drawn from ``(seed, step, rank)`` alone.

``sandwich`` 0 is SPVNAS' uniform sampling: one random sub-network per process per step. ``sandwich`` N > 0 is the
sandwich rule of once-for-all / BigNAS training: the largest sub-network, the smallest, then N random ones, their
gradients summed into one optimizer step (the bounds of the space are trained every step, so the small end does
not fall behind the shared weights that the large end pulls on). The random draws of both come from one generator
seeded by ``(seed, step, rank)``, so a resumed run trains the same sub-networks, and the first random one of a
sandwich step is the one ``sandwich`` 0 would have drawn.
"""

from __future__ import annotations

import random

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.models.spvnas.supernet import (
    SearchSpace,
    SubnetConfig,
    largest_subnet,
    sample_subnet,
    smallest_subnet,
)

#: mixed into the step's seed so these draws are independent of the data's and the search's (also from the seed)
_STREAM = 12


def step_subnets(space: SearchSpace, seed: int, step: int, rank: int, sandwich: int = 0) -> list[SubnetConfig]:
    """The step's sub-networks in training order: ``sandwich`` 0: one random; N > 0: largest, smallest, N random."""
    if sandwich < 0:
        raise PerceptionError(f"sandwich must be >= 0 random sub-networks per step; got {sandwich}")
    rng = random.Random(int(np.random.SeedSequence((seed, step, rank, _STREAM)).generate_state(1)[0]))
    drawn = [sample_subnet(space, rng) for _ in range(max(1, sandwich))]
    return drawn if sandwich == 0 else [largest_subnet(space), smallest_subnet(space), *drawn]
