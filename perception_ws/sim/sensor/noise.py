"""What makes a simulated sweep imperfect like a real one: range noise and missing returns (dropout).

* :class:`RangeNoise` — Gaussian error along the beam (the HDL-64E datasheet: < 2 cm, 1 sigma).
* Dropout models decide which returns are lost. :class:`NoDropout` keeps all (GTA-style clean
  scans); :class:`PixelDropout` drops each pixel with a measured probability ``eps(row, col)``
  (SqueezeSeg's noise augmentation: measure on real scans how often each pixel is empty);
  :class:`PhysicalDropout` loses returns for physical reasons: glass lets most beams through
  (they travel on and may hit something behind it), and a return is detected only when enough
  light comes back — dark surfaces, grazing incidence and long range all weaken it.

Every model gives each final return a probability of being detected (:meth:`Dropout.keep_probability`);
a sweep draws one uniform number per return and keeps it when that number is below the product of
the models' probabilities (the models drop returns independently). :func:`keep_plan` folds the pixel
models into one table, which the sweep kernels (:mod:`perception_ws.sim.sensor.sweep_kernels`) look up per return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.sim.sensor.arrays import Array, falses, namespace, ones32, standard_normals, table_like
from perception_ws.sim.sensor.returns import Returns


@dataclass(frozen=True)
class RangeNoise:
    """Gaussian noise of ``sigma`` metres added to every range."""

    sigma: float = 0.02  # metres

    def __post_init__(self) -> None:
        if not self.sigma >= 0:
            raise PerceptionError(f"range noise: sigma must be >= 0 metres; got {self.sigma}")

    def apply(self, ranges: Array, rng: np.random.Generator) -> Array:
        if self.sigma == 0:
            return ranges
        return ranges + np.float32(self.sigma) * standard_normals(rng, len(ranges))


class Dropout(Protocol):
    """Which returns a simulated LiDAR loses: through glass, and among the final returns."""

    def transmits(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        """Which returns the beam passes through (it goes on to the next surface); (N,) bool.

        Asked only about returns from glass: other surfaces are opaque.
        """
        ...

    def keeps(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        """Which of the final returns are detected; (N,) bool."""
        ...

    def keep_probability(self, returns: Returns) -> np.ndarray:
        """(N,) float32 probability that each final return is detected (what :meth:`keeps` draws against)."""
        ...


def keeps_with(probability: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Detected: one uniform draw per return below its keep probability (every model's :meth:`keeps`)."""
    return rng.random(len(probability), dtype=np.float32) < probability


@dataclass(frozen=True)
class NoDropout:
    """Every beam returns from the first surface it meets, glass included."""

    def transmits(self, returns: Returns, rng: np.random.Generator) -> Array:
        return falses(returns.row)

    def keeps(self, returns: Returns, rng: np.random.Generator) -> Array:
        return ~falses(returns.row)

    def keep_probability(self, returns: Returns) -> Array:
        return ones32(returns.row)


@dataclass(frozen=True, eq=False)
class PixelDropout:
    """Drop pixel (row, col) with probability ``probability[row, col']``, a map measured on real scans.

    The map has one row per beam; its columns span ``fov_deg`` centred on the front (column 0 at
    the left edge, +fov/2, as the range-image projection lays them out) and are resampled to the
    sweep's columns. Outside that field of view each row's mean probability applies.
    """

    probability: np.ndarray = field(repr=False)
    fov_deg: float = 360.0
    #: per sweep width, :meth:`keep_table`
    _keep: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        p = np.asarray(self.probability, dtype=np.float64)
        if p.ndim != 2 or p.size == 0:
            raise PerceptionError(f"pixel dropout: the map must be a 2-D (rows, columns) array; got shape {p.shape}")
        if not np.all((p >= 0) & (p <= 1)):
            raise PerceptionError("pixel dropout: probabilities must lie in 0..1 (NaN is not allowed)")
        if not 0 < self.fov_deg <= 360:
            raise PerceptionError(f"pixel dropout: fov_deg must lie in (0, 360]; got {self.fov_deg}")
        object.__setattr__(self, "probability", p)

    def transmits(self, returns: Returns, rng: np.random.Generator) -> Array:
        return falses(returns.row)

    def keeps(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        return keeps_with(self.keep_probability(returns), rng)

    def keep_probability(self, returns: Returns) -> Array:
        # a flat gather: faster than table[row, col]
        table = table_like(self.keep_table(returns.height, returns.width), returns.row)
        return namespace(table).take(table, returns.row * returns.width + returns.col)

    def keep_table(self, height: int, width: int) -> np.ndarray:
        """(height * width,) float32 keep probability of every pixel of a sweep, row-major; read-only."""
        rows = self.probability.shape[0]
        if rows != height:
            raise PerceptionError(
                f"pixel dropout: the map has {rows} rows but the sensor has {height} beams; "
                "measure the map with the same sensor"
            )
        table = self._keep.get(width)
        if table is None:  # built on first use: the map is fixed, sweeps are many
            table = self._keep[width] = (1.0 - self.per_pixel(width)).astype(np.float32).reshape(-1)
            table.flags.writeable = False
        return table

    def per_pixel(self, width: int) -> np.ndarray:
        """(rows, width) float64 drop probability of each pixel of a sweep ``width`` columns wide."""
        cols = self.probability.shape[1]
        # the azimuth of each sweep column, in degrees left of the map's left edge
        offset = (np.arange(width) + 0.5) * 360.0 / width - (180.0 - self.fov_deg / 2)
        inside = (offset >= 0) & (offset < self.fov_deg)
        map_col = np.clip((offset / self.fov_deg * cols).astype(np.int64), 0, cols - 1)
        return np.where(inside[None, :], self.probability[:, map_col], self.probability.mean(axis=1)[:, None])


@dataclass(frozen=True)
class PhysicalDropout:
    """Returns lost through glass, and returns too weak to detect.

    A glass pane reflects a beam back with probability ``glass_return``; otherwise the beam passes
    on. A return's signal is ``albedo * cos(incidence) * (reference_range / range)**2`` (retro-
    reflectors count ``retro_gain`` times their albedo), and it is detected with probability
    ``1 - exp(-signal / signal_scale)`` — a photon-count model: a dark car far away, or the road
    at grazing incidence a few tens of metres out, fades the way it does in real scans.
    """

    glass_return: float = 0.1
    signal_scale: float = 1e-3
    reference_range: float = 10.0
    retro_gain: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.glass_return <= 1:
            raise PerceptionError(f"physical dropout: glass_return must lie in 0..1; got {self.glass_return}")
        for name in ("signal_scale", "reference_range", "retro_gain"):
            if not getattr(self, name) > 0:
                raise PerceptionError(f"physical dropout: {name} must be > 0; got {getattr(self, name)}")

    def transmits(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        return returns.glass & (rng.random(len(returns), dtype=np.float32) >= self.glass_return)

    def signal(self, returns: Returns) -> Array:
        xp = namespace(returns.range)  # numpy, or torch for the batched GPU sweeps (gpu_sweeps.py)
        albedo = xp.where(returns.retro, returns.albedo * np.float32(self.retro_gain), returns.albedo)
        falloff = (np.float32(self.reference_range) / xp.clip(returns.range, np.float32(1e-3), None)) ** 2
        return albedo * returns.cos_incidence * falloff

    def keeps(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        return keeps_with(self.keep_probability(returns), rng)

    def keep_probability(self, returns: Returns) -> Array:
        return np.float32(1.0) - namespace(returns.range).exp(-self.signal(returns) / np.float32(self.signal_scale))


@dataclass(frozen=True, eq=False)
class KeepPlan:
    """Dropout models arranged for sweeps of one size: the pixel models' keep probabilities multiplied into one
    table, which the sweep kernel looks up per return in the pass that reads the hits, and the other models.
    """

    pixel_keep: np.ndarray  # (height * width,) float32, row-major pixels
    others: tuple[Dropout, ...]  # asked per return (NoDropout left out: it keeps everything)

    def keep_probability(self, returns: Returns, pixel_keep: np.ndarray) -> np.ndarray:
        """The product of all models' keep probabilities, given ``pixel_keep`` (this table at the returns)."""
        probability = pixel_keep
        for model in self.others:
            probability = probability * model.keep_probability(returns)
        return probability


def keep_plan(models: Sequence[Dropout], height: int, width: int) -> KeepPlan:
    """The :class:`KeepPlan` of ``models`` for a ``height`` x ``width`` sweep."""
    pixel_keep = np.ones(height * width, dtype=np.float32)
    others = []
    for model in models:
        if isinstance(model, PixelDropout):
            pixel_keep = pixel_keep * model.keep_table(height, width)
        elif not isinstance(model, NoDropout):
            others.append(model)
    pixel_keep.flags.writeable = False
    return KeepPlan(pixel_keep, tuple(others))
