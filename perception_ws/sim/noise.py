"""What makes a simulated sweep imperfect like a real one: range noise and missing returns (dropout).

* :class:`RangeNoise` — Gaussian error along the beam (the HDL-64E datasheet: < 2 cm, 1 sigma).
* Dropout models decide which returns are lost. :class:`NoDropout` keeps all (GTA-style clean
  scans); :class:`PixelDropout` drops each pixel with a measured probability ``eps(row, col)``
  (SqueezeSeg's noise augmentation: measure on real scans how often each pixel is empty);
  :class:`PhysicalDropout` loses returns for physical reasons: glass lets most beams through
  (they travel on and may hit something behind it), and a return is detected only when enough
  light comes back — dark surfaces, grazing incidence and long range all weaken it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.sim.returns import Returns


@dataclass(frozen=True)
class RangeNoise:
    sigma: float = 0.02  # metres

    def __post_init__(self) -> None:
        if not self.sigma >= 0:
            raise PerceptionError(f"range noise: sigma must be >= 0 metres; got {self.sigma}")

    def apply(self, ranges: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.sigma == 0:
            return ranges
        return ranges + np.float32(self.sigma) * rng.standard_normal(len(ranges), dtype=np.float32)


class Dropout(Protocol):
    def transmits(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        """Which returns the beam passes through (it goes on to the next surface); (N,) bool.

        Asked only about returns from glass: other surfaces are opaque.
        """
        ...

    def keeps(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        """Which of the final returns are detected; (N,) bool."""
        ...


@dataclass(frozen=True)
class NoDropout:
    """Every beam returns from the first surface it meets, glass included."""

    def transmits(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(len(returns), dtype=bool)

    def keeps(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        return np.ones(len(returns), dtype=bool)


@dataclass(frozen=True, eq=False)
class PixelDropout:
    """Drop pixel (row, col) with probability ``probability[row, col']``, a map measured on real scans.

    The map has one row per beam; its columns span ``fov_deg`` centred on the front (column 0 at
    the left edge, +fov/2, as the range-image projection lays them out) and are resampled to the
    sweep's columns. Outside that field of view each row's mean probability applies.
    """

    probability: np.ndarray = field(repr=False)
    fov_deg: float = 360.0
    #: per sweep width, :meth:`per_pixel` (built on first use: the map is fixed, sweeps are many)
    _per_pixel: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        p = np.asarray(self.probability, dtype=np.float64)
        if p.ndim != 2 or p.size == 0:
            raise PerceptionError(f"pixel dropout: the map must be a 2-D (rows, columns) array; got shape {p.shape}")
        if not np.all((p >= 0) & (p <= 1)):
            raise PerceptionError("pixel dropout: probabilities must lie in 0..1 (NaN is not allowed)")
        if not 0 < self.fov_deg <= 360:
            raise PerceptionError(f"pixel dropout: fov_deg must lie in (0, 360]; got {self.fov_deg}")
        object.__setattr__(self, "probability", p)

    def transmits(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(len(returns), dtype=bool)

    def keeps(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        rows = self.probability.shape[0]
        if rows != returns.height:
            raise PerceptionError(
                f"pixel dropout: the map has {rows} rows but the sensor has {returns.height} beams; "
                "measure the map with the same sensor"
            )
        table = self._per_pixel.get(returns.width)
        if table is None:
            table = self._per_pixel[returns.width] = self.per_pixel(returns.width)
        p = np.take(table, returns.row * returns.width + returns.col)  # a flat gather: faster than table[row, col]
        return rng.random(len(returns), dtype=np.float32) >= p

    def per_pixel(self, width: int) -> np.ndarray:
        """(rows, width) float64 drop probability of each pixel of a sweep ``width`` columns wide."""
        cols = self.probability.shape[1]
        # the azimuth of each sweep column, in degrees left of the map's left edge
        offset = (np.arange(width) + 0.5) * 360.0 / width - (180.0 - self.fov_deg / 2)
        inside = (offset >= 0) & (offset < self.fov_deg)
        map_col = np.clip((offset / self.fov_deg * cols).astype(np.int64), 0, cols - 1)
        table = np.where(inside[None, :], self.probability[:, map_col], self.probability.mean(axis=1)[:, None])
        table.flags.writeable = False  # C-contiguous (rows, width): keeps() gathers it by flat pixel index
        return table


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

    def signal(self, returns: Returns) -> np.ndarray:
        albedo = np.where(returns.retro, returns.albedo * np.float32(self.retro_gain), returns.albedo)
        falloff = (np.float32(self.reference_range) / np.maximum(returns.range, np.float32(1e-3))) ** 2
        return albedo * returns.cos_incidence * falloff

    def keeps(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        detect = 1.0 - np.exp(-self.signal(returns) / np.float32(self.signal_scale))
        return rng.random(len(returns), dtype=np.float32) < detect
