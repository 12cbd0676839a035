"""From a sweep's first hits to its labelled points: dropout, range noise, intensity, sensor-frame coordinates.

Both paths here call the models' own methods for the arithmetic (vectorised numpy: its exp and pow are
SIMD, numba's are scalar library calls) and differ in the memory-bound parts. :func:`points_fast`, what
:class:`~perception_ws.sim.sensor.lidar.Lidar` runs, reads the hits in one fused pass and writes the points in
another (:mod:`perception_ws.sim.sensor.sweep_kernels`), with the pixel dropout models folded into one table
(:func:`~perception_ws.sim.sensor.noise.keep_plan`). :func:`points_reference` finds the hits, multiplies the models'
keep probabilities model by model, selects by index and writes the points field by field, all in numpy;
the tests check that both give the same points, bit for bit. Draws, in this order in both: one uniform
per return (detection), then the range noise's and then the intensity model's normals, one per kept point.
An :class:`~perception_ws.sim.sensor.intensity.ImageIntensity` (LIR) draws nothing: it renders the sweep's
range image from the finished points, and each point takes its pixel's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perception_ws.sim.sensor.intensity import ImageIntensity, ReflectanceModel, rendered_at_points
from perception_ws.sim.sensor.noise import Dropout, KeepPlan, PixelDropout, RangeNoise
from perception_ws.sim.sensor.returns import Returns
from perception_ws.sim.sensor.sweep_kernels import count_returns, gather_returns, returns_at, write_points
from perception_ws.sim.world.scene import TriangleSoup
from perception_ws.sweep_layout import POINT_DTYPE, RayPattern

#: what a sweep's intensity comes from: a per-return model, or a renderer of the whole range image (LIR)
IntensityModel = ReflectanceModel | ImageIntensity


@dataclass
class SweepHits:
    """One sweep's rays and what each met (glass passed already), before dropout."""

    pattern: RayPattern
    soup: TriangleSoup
    rays: np.ndarray  # (N, 6) float32 origin and unit direction of every pixel's ray, world frame, row-major
    t: np.ndarray  # (N,) float32 distance from the beam origin, inf where nothing was hit
    triangle: np.ndarray  # (N,) int64 triangle hit, -1 for none
    max_range: float  # hits beyond this are no returns

    def returns(self, which: np.ndarray) -> Returns:
        """The :class:`Returns` of the rays ``which`` (indices; each must have hit a triangle)."""
        soup, p = self.soup, self.pattern
        row, col, ranges, cos, albedo, retro, glass = returns_at(
            np.asarray(which, dtype=np.int64), self.t, self.triangle, self.rays, p.columns,
            soup.normals, soup.albedo, soup.retro, soup.glass,
        )  # fmt: skip
        return Returns(row, col, p.rows, p.columns, ranges, cos, albedo, retro, glass)


@dataclass
class SweepPoints:
    """The points of one simulated sweep with their labels and range-image pixels."""

    points: np.ndarray  # (M,) POINT_DTYPE in the sensor frame
    labels: np.ndarray  # (M,) uint8 KITTI-3 id
    semantic: np.ndarray  # (M,) uint8 SemanticKITTI learning id
    instances: np.ndarray  # (M,) uint32
    pixels: np.ndarray  # (M, 2) int32 row, column


def detection_draws(hits: SweepHits, rng: np.random.Generator) -> np.ndarray:
    """One uniform number per return (rays that hit within range, in ray order): the first draws of both paths."""
    return rng.random(count_returns(hits.t, hits.triangle, hits.max_range), dtype=np.float32)


def points_fast(
    hits: SweepHits,
    plan: KeepPlan,
    noise: RangeNoise,
    intensity: IntensityModel | None,
    rng: np.random.Generator,
) -> SweepPoints:
    """The kernels' path (see the module doc)."""
    soup, p = hits.soup, hits.pattern
    u = detection_draws(hits, rng)
    row, col, ranges, cos, albedo, retro, glass, pixel_keep = gather_returns(
        hits.t, hits.triangle, hits.rays, p.columns, hits.max_range, len(u),
        soup.normals, soup.albedo, soup.retro, soup.glass, plan.pixel_keep,
    )  # fmt: skip
    returns = Returns(row, col, p.rows, p.columns, ranges, cos, albedo, retro, glass)
    kept = returns.subset(u < plan.keep_probability(returns, pixel_keep))
    return _write(hits, kept, noise, intensity, rng)


def _write(
    hits: SweepHits, kept: Returns, noise: RangeNoise, intensity: IntensityModel | None, rng: np.random.Generator
) -> SweepPoints:
    """Range noise and intensity of the ``kept`` returns (the models' methods), then their points (one kernel pass)."""
    m, p, soup = len(kept), hits.pattern, hits.soup
    ranges = noise.apply(kept.range, rng)
    values = intensity.render(kept, rng) if isinstance(intensity, ReflectanceModel) else np.zeros(m, np.float32)
    out = SweepPoints(
        points=np.empty(m, POINT_DTYPE),
        labels=np.empty(m, np.uint8),
        semantic=np.empty(m, np.uint8),
        instances=np.empty(m, np.uint32),
        pixels=np.empty((m, 2), np.int32),
    )
    write_points(
        kept.row, kept.col, ranges, values, hits.triangle, p.columns, p.direction_columns, p.pixel_origins_z,
        p.ring_of_row, soup.kitti3, soup.semantic, soup.instance,
        out.points, out.labels, out.semantic, out.instances, out.pixels,
    )  # fmt: skip
    _render_image_intensity(intensity, out.points, out.pixels, p.rows, p.columns)
    return out


def _render_image_intensity(
    intensity: IntensityModel | None, points: np.ndarray, pixels: np.ndarray, rows: int, columns: int
) -> None:
    """Fill ``points["intensity"]`` from an image model's render of the finished sweep (other models: nothing)."""
    if intensity is None or isinstance(intensity, ReflectanceModel) or len(points) == 0:
        return
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1)
    points["intensity"] = rendered_at_points(intensity, xyz, pixels, rows, columns)


def points_reference(
    hits: SweepHits,
    dropout: Sequence[Dropout],
    noise: RangeNoise,
    intensity: IntensityModel | None,
    rng: np.random.Generator,
) -> SweepPoints:
    """The plain numpy path (see the module doc)."""
    u = detection_draws(hits, rng)
    hit = np.flatnonzero((hits.triangle >= 0) & (hits.t <= np.float32(hits.max_range)))
    returns = hits.returns(hit)
    # grouped as the kernel path multiplies (pixel models first, into one table), so the rounding is the same
    probability = np.ones(len(hit), dtype=np.float32)
    for model in sorted(dropout, key=lambda m: not isinstance(m, PixelDropout)):  # a stable sort
        probability = probability * model.keep_probability(returns)
    kept = returns.subset(np.flatnonzero(u < probability))
    ranges = noise.apply(kept.range, rng)
    values = intensity.render(kept, rng) if isinstance(intensity, ReflectanceModel) else np.zeros(len(kept), np.float32)
    p, soup = hits.pattern, hits.soup
    ray = kept.row * p.columns + kept.col
    tris = hits.triangle[ray]
    points = np.empty(len(kept), dtype=POINT_DTYPE)
    # beam origins lie on the z axis (x = y = 0): x and y are the direction times the range alone
    for axis, name in enumerate("xyz"):
        np.multiply(p.direction_columns[axis].take(ray), ranges, out=points[name])
    points["z"] += p.pixel_origins_z.take(ray)
    points["intensity"] = values
    points["ring"] = p.ring_of_row[kept.row]
    points["label"] = soup.kitti3[tris]
    points["semantic"] = soup.semantic[tris]
    points["instance"] = soup.instance[tris]
    pixels = np.stack([kept.row, kept.col], axis=1).astype(np.int32)
    _render_image_intensity(intensity, points, pixels, p.rows, p.columns)
    return SweepPoints(
        points=points,
        labels=points["label"].copy(),
        semantic=points["semantic"].copy(),
        instances=points["instance"].copy(),
        pixels=pixels,
    )
