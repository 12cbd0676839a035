"""``--data sim-gpu``: training batches rendered on the training device (:mod:`perception_ws.sim.sensor.gpu_sweeps`).

Scenes are built on the CPU by worker processes, ahead and in order (:mod:`perception_ws.training.scenes`).
Each scene's ``frames_per_scene`` ego poses are rendered in one :meth:`SweepRenderer.render` call; every
sweep is cut into ``columns // crop_width`` crops starting at a per-sweep random offset (as
:class:`~perception_ws.training.samples.SimulatedSource` does), and the scene's crops feed
``steps_per_scene`` steps, each crop at most once. Cropping, augmentation (the functions of
:mod:`perception_ws.training.augment`) and the image channels
(:func:`~perception_ws.training.samples.image_channels`) run on the device.

Addressing: step ``s`` of rank ``r`` among ``world`` processes uses scene ``(s // steps_per_scene) * world + r``,
its crops ``(s % steps_per_scene) * B ..`` of a permutation seeded by the scene, and for sample ``b`` the
augmentation draws of sample index ``(s * world + r) * B + b`` (seeded as the CPU path seeds them). So a
batch is a function of (settings, seed, step, rank) only: a resumed run reads the batches an uninterrupted
one would. The renderer's random draws come from a torch generator seeded by the scene, so batches are
reproducible on one device kind (CPU and CUDA draw different numbers).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from perception_ws.errors import PerceptionError
from perception_ws.sim.dataset import make_lidar
from perception_ws.sim.sensor.gpu_sweeps import SweepBatch, SweepRenderer
from perception_ws.sim.world.scene_config import scene_config_for
from perception_ws.training.augment import Augmentation, augment_batch, crop_batch, draw
from perception_ws.training.config import TrainConfig
from perception_ws.training.data_spec import GPU_DATA
from perception_ws.training.samples import image_channels
from perception_ws.training.scenes import SceneData, build_scene, scenes_in_order

#: the normalisation is fitted on scenes this far beyond any run's (as for 'sim': never a training scene).
NORMALIZER_SCENES = 2**30

Batch = tuple[torch.Tensor, torch.Tensor]


def sweep_images(batch: SweepBatch, classes: str) -> Batch:
    """(E, H, W, 6) images (the channels of the CPU path) and (E, H, W) int64 labels of rendered sweeps."""
    labels = batch.label if classes == "kitti3" else batch.semantic
    return image_channels(batch.xyz, batch.intensity, batch.mask), labels.to(torch.int64)


class SweepBatches:
    """The batches of a ``sim-gpu`` run (settings checked on construction, before anything is written)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.lidar = make_lidar(config.sensor, config.columns, config.dropout, config.intensity)
        if config.columns % config.crop_width:
            raise PerceptionError(
                f"train --data {GPU_DATA}: crop width {config.crop_width} must divide the sweep's {config.columns} "
                "columns"
            )
        self.crops = config.columns // config.crop_width
        per_scene = config.frames_per_scene * self.crops
        if per_scene < config.batch_size:
            raise PerceptionError(
                f"train --data {GPU_DATA}: a scene gives {config.frames_per_scene} sweeps x {self.crops} crops = "
                f"{per_scene} crops, fewer than the batch of {config.batch_size}; raise --frames-per-scene"
            )
        self.steps_per_scene = per_scene // config.batch_size
        self.scene_config = scene_config_for(config.scene_content, ego_poses=config.frames_per_scene)
        # the sweeps are full turns: a rotation by k columns is k / columns of a turn
        self.augmentation = Augmentation(crop_width=config.crop_width, columns_per_turn=config.columns)

    def describe(self) -> dict[str, Any]:
        return {"kind": GPU_DATA, "steps_per_scene": self.steps_per_scene, "crops_per_sweep": self.crops}

    def scene_of(self, step: int, rank: int = 0, world: int = 1) -> int:
        return (step // self.steps_per_scene) * world + rank

    def batches(
        self, start: int, stop: int, device: torch.device, workers: int, rank: int = 0, world: int = 1
    ) -> Iterator[Batch]:
        """(images (B, 6, H, W), labels (B, H, W)) on ``device`` for steps ``start .. stop - 1`` of ``rank``."""
        if start >= stop:
            return
        groups = range(start // self.steps_per_scene, (stop - 1) // self.steps_per_scene + 1)
        indices = (group * world + rank for group in groups)
        scenes = scenes_in_order(self.config.seed, self.scene_config, indices, workers)
        step = start
        try:
            for scene in scenes:
                images, labels = self.render(scene, device)
                while step < stop and self.scene_of(step, rank, world) == scene.index:
                    yield self.batch(step, images, labels, rank, world)
                    step += 1
        finally:
            scenes.close()  # stops the scene workers when the run stops early

    def render(self, scene: SceneData, device: torch.device) -> Batch:
        """All sweeps of ``scene`` in one call: (E, H, W, 6) images and (E, H, W) labels on ``device``."""
        seed = int(np.random.SeedSequence([self.config.seed, 2, scene.index]).generate_state(1, np.uint32)[0])
        batch = SweepRenderer(scene.soup, self.lidar, device).render(scene.poses, seed)
        return sweep_images(batch, self.config.classes)

    def crops_of(self, scene: int, images: torch.Tensor, labels: torch.Tensor, crops: np.ndarray) -> Batch:
        """Crops ``crops`` (sweep * crops_per_sweep + window) of the scene's sweeps, (N, H, crop_width, ...)."""
        sweeps = images.shape[0]
        offsets = np.random.default_rng((self.config.seed, scene, 7)).integers(self.config.crop_width, size=sweeps)
        sweep, window = np.divmod(crops, self.crops)
        starts = offsets[sweep] + window * self.config.crop_width
        chosen = torch.as_tensor(sweep, device=images.device)
        return crop_batch(images[chosen], labels[chosen], self.config.crop_width, starts)

    def batch(self, step: int, images: torch.Tensor, labels: torch.Tensor, rank: int = 0, world: int = 1) -> Batch:
        """The augmented batch of ``step`` from its scene's rendered sweeps."""
        size = self.config.batch_size
        scene = self.scene_of(step, rank, world)
        order = np.random.default_rng((self.config.seed, scene, 13)).permutation(images.shape[0] * self.crops)
        part = step % self.steps_per_scene
        crop_images, crop_labels = self.crops_of(scene, images, labels, order[part * size : (part + 1) * size])
        first = (step * world + rank) * size
        rngs = [np.random.default_rng((self.config.seed, first + b, 11)) for b in range(size)]
        draws = draw(self.augmentation, self.config.crop_width, rngs)
        crop_images, crop_labels = augment_batch(crop_images, crop_labels, self.augmentation, draws)
        return crop_images.permute(0, 3, 1, 2).contiguous(), crop_labels.contiguous()

    def normalizer_images(self, count: int, device: torch.device) -> torch.Tensor:
        """(count, 6, H, crop_width) unaugmented crops of scenes far beyond any run's, on the CPU."""
        found: list[torch.Tensor] = []
        index = NORMALIZER_SCENES
        while sum(len(f) for f in found) < count:
            images, labels = self.render(build_scene(self.config.seed, index, self.scene_config), device)
            everything = np.arange(images.shape[0] * self.crops)
            found.append(self.crops_of(index, images, labels, everything)[0].cpu())
            index += 1
        return torch.cat(found)[:count].permute(0, 3, 1, 2).contiguous()
