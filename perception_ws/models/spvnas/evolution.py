"""The evolutionary search over SPVNAS sub-networks (3D-NAS, docs/algorithms.md §9): population, mutation, crossover.

A generation keeps the best ``parent_ratio`` of the population (by score), then fills it back with mutations of
random parents (``mutation_ratio`` of it: each choice redrawn with probability ``mutate_prob``) and crossovers of two
parents (each choice from either). Every new candidate must satisfy the budget (``fits``); a draw that does not is
redrawn. The random draws of generation g come from ``(seed, g)`` alone, so a search resumed at generation g makes
the same candidates as one that never stopped. Scoring and the budget are the caller's (search_run.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.models.spvnas.supernet import SearchSpace, SubnetConfig, sample_subnet, smallest_subnet

#: a draw that fits the budget is looked for this many times before the budget is called impossible
MAX_DRAWS = 200


@dataclass(frozen=True)
class EvolutionSettings:
    """Population size, generations and the variation rates (the once-for-all search's customary values)."""

    population: int = 50
    generations: int = 20
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.population < 2 or self.generations < 1:
            raise PerceptionError(f"search: population must be >= 2 and generations >= 1; got {self}")
        for name in ("parent_ratio", "mutation_ratio", "mutate_prob"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise PerceptionError(f"search: {name} must be in [0, 1]; got {getattr(self, name)!r}")


def generation_rng(settings: EvolutionSettings, generation: int) -> random.Random:
    """The random draws of one generation (and of the first population, generation 0)."""
    return random.Random(int(np.random.SeedSequence((settings.seed, generation, 3)).generate_state(1)[0]))


def mutate(space: SearchSpace, parent: SubnetConfig, prob: float, rng: random.Random) -> SubnetConfig:
    """``parent`` with each width, depth and kernel redrawn with probability ``prob``."""
    fresh = sample_subnet(space, rng)
    pick = [rng.random() < prob for _ in range(25)]
    widths = tuple(f if pick[i] else p for i, (p, f) in enumerate(zip(parent.widths, fresh.widths, strict=True)))
    depths = tuple(f if pick[9 + i] else p for i, (p, f) in enumerate(zip(parent.depths, fresh.depths, strict=True)))
    kernels = tuple(
        f if pick[17 + i] else p for i, (p, f) in enumerate(zip(parent.kernels, fresh.kernels, strict=True))
    )
    return SubnetConfig(widths, depths, kernels)


def crossover(a: SubnetConfig, b: SubnetConfig, rng: random.Random) -> SubnetConfig:
    """Each choice from ``a`` or ``b`` at random."""

    def mix(x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(u if rng.random() < 0.5 else v for u, v in zip(x, y, strict=True))

    return SubnetConfig(mix(a.widths, b.widths), mix(a.depths, b.depths), mix(a.kernels, b.kernels))


def _fitting(draw: Callable[[], SubnetConfig], fits: Callable[[SubnetConfig], bool]) -> SubnetConfig:
    for _ in range(MAX_DRAWS):
        candidate = draw()
        if fits(candidate):
            return candidate
    raise PerceptionError(f"search: no sub-network within the budget in {MAX_DRAWS} draws; raise the budget")


def first_population(
    space: SearchSpace, settings: EvolutionSettings, fits: Callable[[SubnetConfig], bool]
) -> list[SubnetConfig]:
    """``population`` random sub-networks within the budget (none if even the smallest is over it)."""
    if not fits(smallest_subnet(space)):
        raise PerceptionError("search: even the smallest sub-network is over the budget; raise the budget")
    rng = generation_rng(settings, 0)
    return [_fitting(lambda: sample_subnet(space, rng), fits) for _ in range(settings.population)]


def next_population(
    space: SearchSpace,
    settings: EvolutionSettings,
    generation: int,
    ranked: list[SubnetConfig],
    fits: Callable[[SubnetConfig], bool],
) -> list[SubnetConfig]:
    """Generation ``generation``'s population from the previous one ``ranked`` best first."""
    rng = generation_rng(settings, generation)
    parents = ranked[: max(1, round(settings.parent_ratio * settings.population))]
    mutations = round(settings.mutation_ratio * settings.population)
    children = [
        _fitting(lambda: mutate(space, rng.choice(parents), settings.mutate_prob, rng), fits) for _ in range(mutations)
    ]
    while len(parents) + len(children) < settings.population:
        children.append(_fitting(lambda: crossover(rng.choice(parents), rng.choice(parents), rng), fits))
    return [*parents, *children][: settings.population]
