"""Simulated intensity (remission): a simple reflectance model, or none.

``intensity = albedo * cos(incidence)**cos_power * falloff(range)``, with
``falloff = 1 / (1 + (range / falloff_range)**2)``, plus a little multiplicative noise, clipped to
0..1. Retro-reflective surfaces (sign faces, licence plates) send most light straight back whatever
the angle, so for them the cosine term is left out and the albedo multiplied by ``retro_gain``.

The defaults are set so that class means land near those of real HDL-64E scans in KITTI (road
about 0.2, vegetation and terrain about 0.3-0.35, dark cars near 0, signs up to 0.9). A learned
renderer trained on real scans (SPEC §5, LIR) replaces this when realism of intensity matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.sim.returns import Returns


@dataclass(frozen=True)
class ReflectanceModel:
    # gain and falloff_range: fitted with the realism report (perception sim compare) so that the
    # intensity histogram of simulated sweeps is within a factor of 2 of real KITTI scans per bin
    gain: float = 1.15
    cos_power: float = 0.2  # real remissions depend on incidence far less than Lambert's law
    falloff_range: float = 30.0  # metres
    retro_gain: float = 1.5
    noise: float = 0.1  # relative (multiplicative) standard deviation

    def __post_init__(self) -> None:
        for name in ("gain", "falloff_range", "retro_gain"):
            if not getattr(self, name) > 0:
                raise PerceptionError(f"reflectance model: {name} must be > 0; got {getattr(self, name)}")
        if self.cos_power < 0 or self.noise < 0:
            raise PerceptionError(
                f"reflectance model: cos_power and noise must be >= 0; got {self.cos_power} and {self.noise}"
            )

    def render(self, returns: Returns, rng: np.random.Generator) -> np.ndarray:
        """(N,) float32 intensity in 0..1 for each return."""
        f32 = np.float32
        cos = np.clip(returns.cos_incidence, f32(0), f32(1)) ** f32(self.cos_power)
        shading = np.where(returns.retro, f32(self.retro_gain), cos)
        falloff = f32(1) / (f32(1) + (returns.range / f32(self.falloff_range)) ** 2)
        value = f32(self.gain) * returns.albedo * shading * falloff
        if self.noise > 0:
            value = value * (f32(1) + f32(self.noise) * rng.standard_normal(len(returns), dtype=np.float32))
        return np.clip(value, 0.0, 1.0).astype(np.float32)
