"""Simulated intensity (remission): a simple reflectance model, a learned renderer, or none.

``intensity = albedo * cos(incidence)**cos_power * falloff(range)``, with
``falloff = 1 / (1 + (range / falloff_range)**falloff_power)``, times the gain of the beam, plus a
little multiplicative noise, clipped to 0..1. The lasers of a real spinning LiDAR are not calibrated
alike: in KITTI's HDL-64E scans some rings are persistently dimmer than their neighbours (row means
from 0.13 to 0.38), so each beam gets a fixed gain ``exp(beam_gain_spread * z)``, ``z`` standard
normal drawn once per number of beams (the same table in every sweep). Retro-reflective surfaces
(sign faces, licence plates) send most light straight back whatever the angle, so for them the
cosine term is left out and the albedo multiplied by ``retro_gain``.

The defaults are set so that class means land near those of real HDL-64E scans in KITTI (road
about 0.2, vegetation and terrain about 0.3-0.35, dark cars near 0, signs up to 0.9). A learned
renderer trained on real scans (docs/algorithms.md §5, LIR) replaces this when realism of intensity matters:
an :class:`ImageIntensity` renders a whole sweep's range image at once (from its points, after dropout and
range noise) and each point reads its pixel. Modes (``--intensity``): ``off``, ``model``, ``lir:PATH``
(a network saved by :mod:`perception_ws.adapt.lir`; torch is imported only when one is loaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.sim.sensor.arrays import Array, as_float32, namespace, standard_normals, table_like
from perception_ws.sim.sensor.returns import Returns

#: the --intensity choices; ``lir:PATH`` names a saved LIR network
INTENSITY_MODES: tuple[str, ...] = ("off", "model", "lir:PATH")
_BEAM_GAIN_SEED = 64  # any fixed number: the gain table must not change between runs


@dataclass(frozen=True)
class ReflectanceModel:
    """The constants of the reflectance model in the module doc."""

    # gain and falloff_range: fitted with the realism report (perception sim compare) so that the
    # intensity histogram of simulated sweeps is within a factor of 2 of real KITTI scans per bin
    gain: float = 1.15
    cos_power: float = 0.2  # real remissions depend on incidence far less than Lambert's law
    falloff_range: float = 30.0  # metres
    falloff_power: float = 2.0
    retro_gain: float = 1.5
    noise: float = 0.1  # relative (multiplicative) standard deviation
    beam_gain_spread: float = 0.15  # log-normal spread of the per-beam gains

    def __post_init__(self) -> None:
        for name in ("gain", "falloff_range", "falloff_power", "retro_gain"):
            if not getattr(self, name) > 0:
                raise PerceptionError(f"reflectance model: {name} must be > 0; got {getattr(self, name)}")
        if self.cos_power < 0 or self.noise < 0 or self.beam_gain_spread < 0:
            raise PerceptionError(
                "reflectance model: cos_power, noise and beam_gain_spread must be >= 0; "
                f"got {self.cos_power}, {self.noise} and {self.beam_gain_spread}"
            )

    def beam_gains(self, beams: int) -> np.ndarray:
        """(beams,) float32 gain of each beam: a fixed table per number of beams (not per sweep); read-only."""
        return _beam_gains(self.beam_gain_spread, beams)

    def render(self, returns: Returns, rng: np.random.Generator) -> Array:
        """(N,) float32 intensity in 0..1 for each return."""
        f32, xp = np.float32, namespace(returns.range)  # numpy, or torch (gpu_sweeps.py)
        cos = xp.clip(returns.cos_incidence, f32(0), f32(1)) ** f32(self.cos_power)
        shading = xp.where(returns.retro, f32(self.retro_gain), cos)
        falloff = f32(1) / (f32(1) + (returns.range / f32(self.falloff_range)) ** f32(self.falloff_power))
        gains = table_like(self.beam_gains(returns.height), returns.row)  # a tensor for torch input
        value = f32(self.gain) * returns.albedo * shading * falloff * gains[returns.row]
        if self.noise > 0:
            value = value * (f32(1) + f32(self.noise) * standard_normals(rng, len(returns)))
        return as_float32(xp.clip(value, 0.0, 1.0))


@cache
def _beam_gains(spread: float, beams: int) -> np.ndarray:
    # made once per (spread, beams): seeding a generator each sweep cost about 1 ms
    z = np.random.default_rng([_BEAM_GAIN_SEED, beams]).standard_normal(beams)
    gains = np.exp(spread * z).astype(np.float32)
    gains.flags.writeable = False
    return gains


class ImageIntensity(Protocol):
    """Intensity rendered on a sweep's range image: (..., H, W, 3) points and (..., H, W) mask -> (..., H, W)."""

    def render(self, xyz: Array, mask: Array) -> Array: ...


def check_intensity_mode(mode: str) -> Path | None:
    """The LIR file of a ``lir:PATH`` mode (checked: present, with its manifest); None for off / model."""
    from perception_ws.adapt.lir_file import check_lir_file, lir_mode_path  # torch-free

    path = lir_mode_path(mode)
    if path is not None:
        return check_lir_file(path)
    if mode not in INTENSITY_MODES:
        raise PerceptionError(f"intensity {mode!r}; expected one of {', '.join(INTENSITY_MODES)}")
    return None


def make_intensity(mode: str) -> ReflectanceModel | ImageIntensity | None:
    """The intensity model of a mode (see the module doc)."""
    path = check_intensity_mode(mode)
    if path is not None:
        from perception_ws.adapt.lir_model import load_lir  # imports torch: only for this mode

        return load_lir(path)
    return ReflectanceModel() if mode == "model" else None


def rendered_at_points(model: ImageIntensity, xyz: np.ndarray, pixels: np.ndarray, rows: int, columns: int) -> Array:
    """(M,) float32 intensity of M points (``xyz`` (M, 3), ``pixels`` (M, 2) row, column) rendered on their image."""
    image = np.zeros((rows, columns, 3), np.float32)
    mask = np.zeros((rows, columns), bool)
    row, col = pixels[:, 0], pixels[:, 1]
    image[row, col] = xyz
    mask[row, col] = True
    return np.asarray(model.render(image, mask), dtype=np.float32)[row, col]
