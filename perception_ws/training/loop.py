"""The training loop: normalisation fit, AMP on GPU, DDP across processes, checkpoints, exact resume.

The same loop trains the point-voxel networks (``--model spvcnn|spvnas``): their batches are the same sweep images,
whose occupied pixels are the points (:class:`~perception_ws.models.spvnas.point_model.PointVoxelSegmenter`); the
super-network runs a sub-network drawn per process per step, or with ``sandwich`` N the largest, the smallest and N
random ones, their gradients summed into the step's update (models/spvnas/sandwich.py).

One process per GPU under ``torchrun`` (or one process on CPU/GPU without it). Rank 0 writes the
checkpoint, the CSV log and the curves into ``out``. A run that finds ``out/checkpoint.pt`` with the same
settings continues from it: model, optimiser, schedule and torch RNG state are restored and the batches
are addressed by step, so the result equals an uninterrupted run's (bit for bit on CPU).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from perception_ws.errors import PerceptionError
from perception_ws.io.atomic import atomic_file
from perception_ws.labels import get_class_set
from perception_ws.models.families import is_point_model
from perception_ws.models.losses import (
    KITTI3_WEIGHTS_SQUEEZESEG,
    KITTI3_WEIGHTS_SQUEEZESEGV2,
    LossKind,
    SegmentationLoss,
)
from perception_ws.models.registry import build_model
from perception_ws.models.segmenter import RangeSegmenter
from perception_ws.sim.world.scene_config import scene_config_for
from perception_ws.training.alignment import CorrelationAlignment, read_target
from perception_ws.training.augment import Augmentation
from perception_ws.training.checkpoint import (
    CHECKPOINT,
    load_checkpoint,
    parameter_digest,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from perception_ws.training.config import TrainConfig
from perception_ws.training.curves import CURVES, LOG, plot_curves, read_log, write_log
from perception_ws.training.data import AugmentedSamples, StepBatches, make_loader
from perception_ws.training.data_spec import GPU_DATA, make_source
from perception_ws.training.distillation import Distillation, load_teacher
from perception_ws.training.distributed import start_distributed
from perception_ws.training.gpu_data import SweepBatches
from perception_ws.training.monitor import frame_scores
from perception_ws.training.samples import SampleSource
from perception_ws.training.teacher_agreement import agreement_columns, teacher_agreement

INTENSITY, MASK = 3, 5


@dataclass
class TrainResult:
    """What a training run ended with: its folder, last step, whether it finished, loss and log."""

    out: Path
    step: int
    finished: bool
    loss: float
    log: list[dict[str, float]] = field(default_factory=list)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PerceptionError(f"train: device {name!r} asked for, but torch sees no CUDA GPU here")
    return torch.device(name)


def build_training_model(config: TrainConfig) -> nn.Module:
    """A fresh network for ``config``, the intensity channel zeroed when the config says so."""
    class_set = get_class_set(config.classes)
    if is_point_model(config.model):
        from perception_ws.models.spvnas.point_model import PointVoxelSegmenter

        return PointVoxelSegmenter(
            config.model.lower(),
            len(class_set),
            voxel_size=config.voxel_size,
            width_ratio=config.width_ratio,
            zero_intensity=config.intensity_input == "zero",
        )
    zero = [INTENSITY] if config.intensity_input == "zero" else []
    return build_model(
        config.model, len(class_set), crf=config.crf, zero_channels=zero, channel_scale=config.channel_scale
    )


def _class_weights(config: TrainConfig) -> tuple[float, ...] | None:
    """The loss's KITTI-3 class weights (SqueezeSegV2's or SqueezeSeg's); None for the semantic classes."""
    if config.classes != "kitti3":
        return None
    v2 = config.model == "squeezesegv2" or is_point_model(config.model)
    return KITTI3_WEIGHTS_SQUEEZESEGV2 if v2 else KITTI3_WEIGHTS_SQUEEZESEG


def _loss(config: TrainConfig) -> SegmentationLoss:
    """SqueezeSegV2: focal loss; SqueezeSeg and the point models (as SPVNAS trains): cross-entropy. KITTI-3 with
    the range-image models' class weights (the classes are as unbalanced for points); SemanticKITTI ignores 0.
    """
    kind: LossKind = "focal" if config.model == "squeezesegv2" else "cross_entropy"
    if config.classes == "kitti3":
        return SegmentationLoss(kind, class_weights=_class_weights(config))
    return SegmentationLoss(kind, ignore_index=0)


def _lr_factor(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 2 % of the peak at the last step."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _source(config: TrainConfig) -> SampleSource:
    return make_source(
        config.data,
        seed=config.seed,
        sensor=config.sensor,
        columns=config.columns,
        crop_width=config.crop_width,
        dropout=config.dropout,
        intensity=config.intensity,
        frames_per_scene=config.frames_per_scene,
        classes=config.classes,
        scene_config=scene_config_for(config.scene_content),
    )


def _normalizer_images(source: SampleSource, config: TrainConfig) -> torch.Tensor:
    """``normalizer_samples`` samples: the first ones of a finite source; for the unbounded simulation,
    samples far beyond any run's batches.
    """
    count = config.normalizer_samples if source.size is None else min(config.normalizer_samples, source.size)
    first = 2**40 if source.size is None else 0
    pairs = [source.sample(first + i) for i in range(count)]
    return torch.from_numpy(np.stack([p[0] for p in pairs]).transpose(0, 3, 1, 2).copy())


def _load_init(model: nn.Module, path: str) -> None:
    """Start from trained weights (fine-tuning): every parameter and buffer, the input normalisation included."""
    from perception_ws.models.weights import load_any_weights

    start = load_any_weights(path)
    name, classes = dict(getattr(model, "config", {})).get("name"), getattr(model, "num_classes", None)
    if start.config.get("name") != name or start.num_classes != classes:
        raise PerceptionError(
            f"train --init {path}: a {start.config.get('name')} network of {start.num_classes} classes; this run "
            f"trains a {name} of {classes}"
        )
    model.load_state_dict(start.state_dict())


def _fit_normalizer(model: RangeSegmenter, images: torch.Tensor) -> None:
    """Per-channel input statistics from (N, 6, H, W) images."""
    skip = [MASK, *model.zero_channels] if model.in_channels > MASK else list(model.zero_channels)
    model.normalizer.fit(images, images[:, 4] > 0, skip=skip)


def train(
    config: TrainConfig,
    out: Path,
    *,
    monitor: SampleSource | None = None,
    agreement_scans: np.ndarray | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) into ``out``; ``stop_after`` ends this process after that many steps of the run
    (as a kill would, but cleanly, with a checkpoint): for tests of the resume path. ``agreement_scans``: raw
    (B, C, H, W) unlabelled real images on which, with a teacher, each checkpoint logs the student's agreement
    with the teacher (training/teacher_agreement.py).
    """
    if agreement_scans is not None and config.teacher is None:
        raise PerceptionError("train: agreement scans score a student against its teacher; they need --teacher")
    out = Path(out)
    for folder in (out, *out.parents):  # a file in the way would fail at the first write, with a traceback
        if folder.exists() and not folder.is_dir():
            raise PerceptionError(f"train --out {out}: {folder} exists and is not a folder")
    # a missing data path or bad simulation settings fail before anything is written
    sweeps = SweepBatches(config) if config.data == GPU_DATA else None
    source = _source(config) if sweeps is None else None
    target = read_target(config)
    out.mkdir(parents=True, exist_ok=True)
    dist = start_distributed()
    device = dist.device if dist.world > 1 else _device(config.device)
    torch.manual_seed(config.seed)
    class_set = get_class_set(config.classes)
    model = build_training_model(config)
    alignment, distillation = None, None
    if config.teacher is not None:  # the real batches (if any) serve distillation instead of GCA
        assert isinstance(model, RangeSegmenter)  # TrainConfig refuses --teacher for the point models
        teacher = load_teacher(config.teacher, len(class_set), device)
        distillation = Distillation(config, teacher, model, target, _class_weights(config))
    elif target is not None:
        assert isinstance(model, RangeSegmenter)  # TrainConfig refuses --target for the point models
        alignment = CorrelationAlignment(target, config, model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(config, s))
    start, log = 0, []
    checkpoint_path = out / CHECKPOINT
    saved: int | None = None  # the step of the checkpoint in `out`, kept as it is if the loss diverges
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        stored = TrainConfig.from_json(state["config"]).schedule_fields()
        if stored != config.schedule_fields():
            differ = sorted(k for k in stored if stored[k] != config.schedule_fields().get(k))
            raise PerceptionError(
                f"{checkpoint_path}: a run with other settings ({', '.join(differ)}); resume with the same "
                "settings, or choose another --out"
            )
        model.load_state_dict(state["model"])
        # on the training device first: loaded optimizer state follows its parameters' device (a checkpoint is
        # read onto the CPU; resuming on a GPU with the moments left there fails at the first step)
        model.to(device)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
        start = saved = int(state["step"])
        log = [row for row in read_log(out / LOG) if row["step"] <= start]  # the rows the checkpoint saw
    elif config.init is not None:
        _load_init(model, config.init)
    elif not isinstance(model, RangeSegmenter):
        pass  # the point models take raw x y z intensity: no input normalisation to fit
    elif sweeps is not None:
        _fit_normalizer(model, sweeps.normalizer_images(config.normalizer_samples, device))
    else:
        assert source is not None
        _fit_normalizer(model, _normalizer_images(source, config))
    model.to(device)
    # the point models' (a super-network's sub-networks; none for a fixed network), None for the range-image models
    step_subnets, set_subnet = getattr(model, "step_subnets", None), getattr(model, "set_subnet", None)
    wrapped: nn.Module = dist.wrap(model, find_unused=config.model == "spvnas")
    loss_fn = _loss(config)
    stop = config.steps if stop_after is None else min(config.steps, start + stop_after)
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]]
    if sweeps is not None:  # whole batches rendered on the device
        loader = sweeps.batches(start, stop, device, config.workers, dist.rank, dist.world)
    else:
        assert source is not None
        # simulated sweeps are full turns of `columns`; real frames were projected at 2048 columns per turn
        turn = config.columns if config.data == "sim" else Augmentation().columns_per_turn
        augmentation = Augmentation(crop_width=config.crop_width, columns_per_turn=turn)
        samples = AugmentedSamples(source, augmentation, config.seed)
        batches = StepBatches(start, stop, config.batch_size, dist.rank, dist.world)
        loader = make_loader(samples, batches, config.workers)
    amp = config.amp and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    began, last_loss, step = time.monotonic(), math.nan, start
    diverged: str | None = None  # what stopped the run: a non-finite loss or weights, and at which step
    window_loss, window_start, window_samples, window_steps = 0.0, time.monotonic(), 0, 0
    window_extra = 0.0  # the weighted GCA or distillation term's share of the loss, when the run has one
    extra_name = "distill" if distillation is not None else "gca"
    bar = _progress(start, config.steps, progress and dist.rank == 0)
    model.train()
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        # a super-network's sub-networks of this step, from (seed, step, rank): a resumed run trains the same ones;
        # [None] (a fixed network): one pass of the network as it is
        subnets = (step_subnets(config.seed, step, dist.rank, config.sandwich) if step_subnets else []) or [None]
        optimizer.zero_grad(set_to_none=True)
        losses = []
        for i, subnet in enumerate(subnets):
            if subnet is not None and set_subnet is not None:
                set_subnet(subnet)
            with dist.sync_gradients(wrapped, i == len(subnets) - 1):  # summed here, averaged over ranks once
                if distillation is not None:  # the teacher's probabilities (training/distillation.py)
                    logits, extra = distillation.forward(wrapped, images, step, dist.rank, dist.world, amp)
                elif alignment is not None:  # plus one real batch, and the weighted GCA term (training/alignment.py)
                    logits, extra = alignment.forward(wrapped, images, step, dist.rank, dist.world, amp)
                else:
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        logits = wrapped(images)
                    extra = None
                loss = loss_fn(logits.float(), labels, images[:, 4] > 0)
                if extra is not None:
                    loss = loss + extra
                    window_extra += float(extra.detach())
                loss.backward()
            losses.append(loss.detach())
        optimizer.step()
        scheduler.step()
        # the mean over the step's passes; read after the update, as before: no extra wait inside the step
        step_loss = float(torch.stack(losses).mean())
        # stop before this step is logged or saved, so the checkpoint stays that of the last good step;
        # collective: every rank stops at the same step
        if dist.any(not math.isfinite(step_loss)):
            diverged = f"the loss became {step_loss} at step {step + 1}"
            break
        step += 1
        window_loss += step_loss
        window_samples += images.shape[0] * dist.world
        window_steps += 1
        bar.update(1)
        time_up = config.max_minutes is not None and time.monotonic() - began > 60 * config.max_minutes
        last = step == stop or (config.max_minutes is not None and dist.any(time_up))
        if step % config.log_every == 0 or last:
            now = time.monotonic()
            last_loss = window_loss / window_steps  # counted: a resumed run's first window is shorter
            row = {
                "step": float(step),
                "loss": last_loss,
                "lr": float(scheduler.get_last_lr()[0]),
                "samples_per_s": window_samples / max(1e-9, now - window_start),
                "elapsed_s": (log[-1]["elapsed_s"] if log else 0.0) + (now - window_start),
            }
            if alignment is not None or distillation is not None:
                row[extra_name] = window_extra / window_steps
            log.append(row)
            bar.set_postfix(loss=f"{last_loss:.4f}")
            window_loss, window_start, window_samples, window_steps, window_extra = 0.0, now, 0, 0, 0.0
        if step % config.checkpoint_every == 0 or last:
            # this step's update may have made the weights non-finite although its loss was not: never save those
            if dist.any(not _finite(model)):
                diverged = f"the weights became non-finite at step {step}"
                break
            if monitor is not None and dist.rank == 0:
                log[-1].update(frame_scores(model, monitor, class_set, device))
            if agreement_scans is not None and distillation is not None and dist.rank == 0:
                found = teacher_agreement(
                    distillation.student, distillation.teacher, agreement_scans, class_set, device
                )
                log[-1].update(agreement_columns(found, class_set))
            digests = dist.gather(parameter_digest(model))  # collective: before rank 0 alone writes
            if dist.rank == 0:
                _save(out, model, optimizer, scheduler, config, step, log, digests)
            saved = step
        if last:
            break
    bar.close()
    if isinstance(loader, Generator):
        loader.close()  # ends the scene workers now, not when the generator is collected
    dist.finish()
    if diverged is not None:
        kept = f"{checkpoint_path} is kept from step {saved}" if saved is not None else "no checkpoint was written"
        raise PerceptionError(f"train: {diverged}; stopped there ({kept}); try a lower --lr than {config.lr:g}")
    return TrainResult(out=out, step=step, finished=step >= config.steps, loss=last_loss, log=log)


def _save(
    out: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    step: int,
    log: list[dict[str, float]],
    digests: list[str],
) -> None:
    state: dict[str, Any] = {
        "step": step,
        "config": config.to_json(),
        "model_config": model.config,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "data": _describe(config),
    }
    save_checkpoint(out / CHECKPOINT, state)
    write_log(out / LOG, log)
    plot_curves(log, out / CURVES)
    run = {
        "step": step,
        "config": config.to_json(),
        "pid": os.getpid(),
        "world_size": len(digests),
        # one per rank: all equal when the processes stayed in step (see checkpoint.parameter_digest)
        "parameter_sha256_by_rank": digests,
    }
    with atomic_file(out / "run.json") as handle:  # whole or the previous one, also on a full disk
        handle.write(json.dumps(run, indent=2, allow_nan=False).encode())  # strict JSON: no NaN/Infinity


def _finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _describe(config: TrainConfig) -> dict[str, Any]:
    data: dict[str, Any] = {
        "data": config.data,
        "sensor": config.sensor,
        "dropout": config.dropout,
        "intensity": config.intensity,
    }
    if is_point_model(config.model):
        data["points"] = "each sweep image's occupied pixels (one return each), voxelised by the network"
    if config.teacher is not None:
        data["distillation"] = {
            "teacher": config.teacher,
            "real_batches": config.target,
            "weight": config.distill_weight,
            "temperature": config.distill_temperature,
        }
    elif config.target is not None:
        data["gca"] = {"target": config.target, "weight": config.gca_weight, "distance": config.gca_distance}
    return data


def _progress(start: int, total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", disable=not enabled, dynamic_ncols=True)
