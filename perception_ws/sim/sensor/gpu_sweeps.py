"""Batched simulated sweeps on a torch device: B poses in, B labelled range images out, nothing on the host.

What training consumes, per sweep and pixel (row, column) of the sensor's range image: the noisy
range, x y z in the sensor frame, intensity, KITTI-3 and SemanticKITTI labels, instance, and a mask
of the pixels that hold a return. The steps are those of :meth:`Lidar.scan
<perception_ws.sim.sensor.lidar.Lidar.scan>`, with the same models (their formulas run on tensors, see
:mod:`perception_ws.sim.sensor.arrays`), over every pixel of every sweep at once:

1. first hits of all B sweeps by rasterisation (:mod:`perception_ws.sim.sensor.raycast_raster`), with each
   pixel's nearest non-glass hit as well;
2. glass: where the first hit is a pane, the dropout models decide whether the beam passes; if it
   does, the pixel takes its nearest non-glass hit. (``Lidar.scan`` rolls again at every pane it
   meets; here a beam that passes the first pane passes the ones behind it too: a beam through two
   panes, e.g. a car's side windows, returns from the second pane 10 % less often than on the CPU);
3. dropout, range noise and intensity; labels by triangle lookups; points from the ranges.

Random draws come from a torch generator seeded per batch: a seed gives the same batch on the same
device, but not the numbers ``Lidar.scan`` draws with numpy for the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from perception_ws.errors import PerceptionError
from perception_ws.sim.sensor.arrays import TorchRandom
from perception_ws.sim.sensor.intensity import ImageIntensity, ReflectanceModel
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.raycast_raster import RasterCaster, RasterHits
from perception_ws.sim.sensor.returns import Returns
from perception_ws.sim.world.scene import EgoPose, Scene, TriangleSoup


@dataclass
class SweepBatch:
    """B sweeps as (B, H, W) range images on one device; pixels without a return hold 0 (label 0, instance 0)."""

    range: torch.Tensor  # float32 metres from the beam origin, with range noise
    xyz: torch.Tensor  # (B, H, W, 3) float32 sensor frame
    intensity: torch.Tensor  # float32 0..1 (0 without a reflectance model)
    label: torch.Tensor  # uint8 KITTI-3 id
    semantic: torch.Tensor  # uint8 SemanticKITTI learning id
    instance: torch.Tensor  # int64 object instance (0 for stuff)
    mask: torch.Tensor  # bool: the pixel holds a return
    triangle: torch.Tensor  # int64 triangle hit (-1: none, or dropped)

    def __len__(self) -> int:
        return len(self.range)


class SweepRenderer:
    """Labelled sweeps of one scene with one sensor setup, B poses per call, on ``device``."""

    def __init__(
        self, scene: Scene | TriangleSoup, lidar: Lidar | None = None, device: str | torch.device | None = None
    ) -> None:
        self.lidar = lidar or Lidar()
        # a soup alone will do: training gets soups (not whole scenes) from its scene-building processes
        soup = scene if isinstance(scene, TriangleSoup) else scene.soup
        self.caster = RasterCaster(soup, device)
        self.device = self.caster.device

        def table(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(values)).to(device=self.device, dtype=dtype)

        self._kitti3 = table(soup.kitti3, torch.uint8)
        self._semantic = table(soup.semantic, torch.uint8)
        self._instance = table(soup.instance.astype(np.int64), torch.int64)
        self._normals = table(soup.normals, torch.float32)
        self._albedo = table(soup.albedo, torch.float32)
        self._retro = table(soup.retro, torch.bool)
        self._glass = table(soup.glass, torch.bool)
        self._any_glass = bool(soup.glass.any())
        p = self.lidar.pattern
        self._directions = table(p.directions.reshape(-1, 3), torch.float32)  # (H * W, 3) sensor frame
        self._origin_z = table(p.pixel_origins_z, torch.float32)  # (H * W,)
        pixel = torch.arange(p.rows * p.columns, device=self.device)
        self._row, self._col = pixel // p.columns, pixel % p.columns

    def poses(self, poses: Sequence[EgoPose]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 3) rotations and (B, 3) translations (sensor -> world) of ego poses, on the device."""
        if not poses:
            raise PerceptionError("sweep renderer: no poses given; pass at least one EgoPose")
        pairs = [self.lidar.pose_in_world(pose) for pose in poses]
        rot = torch.from_numpy(np.stack([r for r, _ in pairs]).astype(np.float32)).to(self.device)
        trans = torch.from_numpy(np.stack([t for _, t in pairs]).astype(np.float32)).to(self.device)
        return rot, trans

    @torch.no_grad()
    def render(self, poses: Sequence[EgoPose], seed: int = 0) -> SweepBatch:
        """One sweep per ego pose (see the module doc)."""
        rot, trans = self.poses(poses)
        return self.render_at(rot, trans, seed)

    @torch.no_grad()
    def render_at(self, rotations: torch.Tensor, translations: torch.Tensor, seed: int = 0) -> SweepBatch:
        """One sweep per sensor pose (``rotations`` (B, 3, 3), ``translations`` (B, 3), sensor -> world)."""
        lidar = self.lidar
        p = lidar.pattern
        max_range = float(lidar.max_range or 0.0)
        hits = self.caster.first_hits(p, rotations, translations, max_range, opaque=self._any_glass)
        sweeps = len(hits.t)
        rng = TorchRandom(seed, self.device)
        rot = self.caster.check_poses(rotations, translations)[0]
        dirs_w = torch.matmul(self._directions, rot.transpose(1, 2)).reshape(-1, 3)  # (B * H * W, 3)
        t, tri = self._through_glass(hits, dirs_w, rng, sweeps)
        returns = self._returns(t, tri, dirs_w, sweeps)
        keep = tri >= 0
        for model in lidar.dropout:
            keep &= torch.as_tensor(model.keeps(returns, cast(Any, rng)), device=self.device)
        # the models are typed for numpy; given tensors (Returns built by _returns) they answer in tensors
        ranges = cast(torch.Tensor, lidar.noise.apply(returns.range, cast(Any, rng)))
        if isinstance(lidar.intensity, ReflectanceModel):
            intensity = cast(torch.Tensor, lidar.intensity.render(returns, cast(Any, rng)))
        else:  # none, or an image model: rendered below from the finished sweeps
            intensity = torch.zeros_like(t)
        zero = torch.zeros_like(t)
        ranges = torch.where(keep, ranges, zero)
        tri = torch.where(keep, tri, torch.full_like(tri, -1))
        look = tri.clamp(min=0)
        directions = self._directions.repeat(sweeps, 1)
        xyz = directions * ranges[:, None]
        xyz[:, 2] += torch.where(keep, self._origin_z.repeat(sweeps), zero)
        shape = (sweeps, p.rows, p.columns)
        image_model = lidar.intensity
        if image_model is not None and not isinstance(image_model, ReflectanceModel):
            # LIR: the whole batch's range images in one call, on this device
            rendered = cast(ImageIntensity, image_model).render(xyz.view(*shape, 3), keep.view(shape))
            intensity = cast(torch.Tensor, rendered).reshape(-1)
        return SweepBatch(
            range=ranges.view(shape),
            xyz=xyz.view(*shape, 3),
            intensity=torch.where(keep, intensity, zero).view(shape),
            label=torch.where(keep, self._kitti3[look], 0).view(shape),
            semantic=torch.where(keep, self._semantic[look], 0).view(shape),
            instance=torch.where(keep, self._instance[look], 0).view(shape),
            mask=keep.view(shape),
            triangle=tri.view(shape),
        )

    def _through_glass(
        self, hits: RasterHits, dirs_w: torch.Tensor, rng: TorchRandom, sweeps: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per pixel (flat over the sweeps): the hit the beam returns from, after the glass it passes."""
        t, tri = hits.t.reshape(-1), hits.triangle.reshape(-1)
        if hits.t_opaque is None or hits.triangle_opaque is None:
            return t, tri
        returns = self._returns(t, tri, dirs_w, sweeps)
        glass = cast(torch.Tensor, returns.glass)
        through = torch.zeros_like(glass)
        for model in self.lidar.dropout:
            through |= torch.as_tensor(model.transmits(returns, cast(Any, rng)), device=self.device)
        through &= glass  # only panes let beams through
        t = torch.where(through, hits.t_opaque.reshape(-1), t)
        tri = torch.where(through, hits.triangle_opaque.reshape(-1), tri)
        return t, tri

    def _returns(self, t: torch.Tensor, tri: torch.Tensor, dirs_w: torch.Tensor, sweeps: int) -> Returns:
        """What the models read, for every pixel of every sweep (misses: range inf, glass and retro False)."""
        hit = tri >= 0
        look = tri.clamp(min=0)
        normal = self._normals[look]
        cos = (normal * dirs_w).sum(dim=1).abs()
        p = self.lidar.pattern
        fields: dict[str, Any] = {
            "row": self._row.repeat(sweeps),
            "col": self._col.repeat(sweeps),
            "range": t,
            "cos_incidence": cos,
            "albedo": self._albedo[look],
            "retro": self._retro[look] & hit,
            "glass": self._glass[look] & hit,
        }
        return Returns(height=p.rows, width=p.columns, **fields)


def make_sweep_renderer(
    scene: Scene | TriangleSoup, lidar: Lidar | None = None, device: str | None = None
) -> SweepRenderer:
    """Batched labelled sweeps of ``scene`` on ``device`` (default: CUDA when present, else the CPU)."""
    return SweepRenderer(scene, lidar, device)
