"""The settings of a training run (what ``perception train`` takes), checked up front."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perception_ws.errors import PerceptionError
from perception_ws.models.families import is_point_model
from perception_ws.models.registry import get_spec
from perception_ws.models.segmenter import check_channel_scale
from perception_ws.sim.world.scene_config import DEFAULT_SCENE_CONTENT, check_scene_content
from perception_ws.training.data_spec import carla_address, parse_data

CLASS_SETS = ("kitti3", "semantic")
INTENSITY_INPUTS = ("keep", "zero")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (what ``perception train`` takes), checked when built."""

    model: str = "squeezesegv2"
    crf: bool = True
    classes: str = "kitti3"
    #: "sim" (rendered on the fly by data workers), "sim-gpu" (batches rendered on the training device,
    #: training/gpu_data.py), a path that perception_ws.io reads (simulated dataset, real frames), carla://HOST:PORT,
    #: or several mixed with weights: "sim@0.7,/data/GTAV@0.3" (training/data_spec.py).
    data: str = "sim"
    steps: int = 20000
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    seed: int = 0
    crop_width: int = 512
    #: simulated sources: sensor, sweep columns, dropout and intensity modes, frames (ego poses) per scene.
    sensor: str = "hdl64e"
    columns: int = 2048
    dropout: str = "measured"
    intensity: str = "model"
    frames_per_scene: int = 4
    #: simulated sources: what the streets hold (perception_ws.sim.world.scene_config.SCENE_CONTENT): "v2" with
    #: hard negatives, parked bicycles and extra people, "v1" without (the ablation baseline).
    scene_content: str = DEFAULT_SCENE_CONTENT
    #: "zero": the model ignores the intensity channel (it is zeroed inside the model, in training and use).
    intensity_input: str = "keep"
    #: samples used to fit the input normalisation before the first step.
    normalizer_samples: int = 64
    workers: int = 2
    device: str = "auto"
    amp: bool = True
    checkpoint_every: int = 500
    log_every: int = 20
    #: stop (with a checkpoint) after this much wall time; None: run all ``steps``.
    max_minutes: float | None = None
    #: unlabelled real scans (any path perception_ws.io reads) for geodesic correlation alignment (GCA):
    #: each step adds ``gca_weight`` times the ``gca_distance`` between the simulated and a real batch's
    #: pre-CRF logit covariances to the loss (training/alignment.py); None: no alignment.
    target: str | None = None
    #: weights to start from (a .pt with its manifest, e.g. the shipped default): fine-tuning keeps their input
    #: normalisation; None: a fresh network, its normalisation fitted on the first samples.
    init: str | None = None
    gca_weight: float = 10.0
    gca_distance: str = "log_euclidean"
    #: range-image models: every layer's channels times this (1/16 steps; 0.5 runs about 3x faster on a CPU).
    channel_scale: float = 1.0
    #: weights of a trained range-image network (e.g. the shipped default) to distil from: each step adds
    #: ``distill_weight`` times the KL divergence from its class probabilities (softened by
    #: ``distill_temperature``) on the simulated batch and, with ``target``, on the real batch, which then serves
    #: distillation instead of GCA (training/distillation.py); None: no teacher.
    teacher: str | None = None
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    #: point models (spvcnn, spvnas): the finest voxel in metres, and the widths' scale (SPVCNN's x ratio; for
    #: spvnas the super-network's largest widths).
    voxel_size: float = 0.05
    width_ratio: float = 1.0
    #: spvnas: 0 trains one random sub-network per process per step (SPVNAS' uniform sampling); N > 0 the sandwich
    #: rule: the largest, the smallest and N random sub-networks, gradients summed, one optimizer step
    #: (models/spvnas/sandwich.py).
    sandwich: int = 0

    def __post_init__(self) -> None:
        if is_point_model(self.model):
            self._check_point_model()
        else:
            get_spec(self.model)  # unknown names fail with the list of known ones
        if self.classes not in CLASS_SETS:
            raise PerceptionError(f"train: classes {self.classes!r}; expected one of {', '.join(CLASS_SETS)}")
        if self.intensity_input not in INTENSITY_INPUTS:
            raise PerceptionError(
                f"train: intensity_input {self.intensity_input!r}; expected one of {', '.join(INTENSITY_INPUTS)}"
            )
        for name in ("steps", "batch_size", "crop_width", "columns", "frames_per_scene", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise PerceptionError(f"train: {name} must be >= 1; got {getattr(self, name)!r}")
        if self.sandwich < 0:
            raise PerceptionError(f"train: sandwich must be >= 0 random sub-networks per step; got {self.sandwich!r}")
        if self.sandwich and self.model != "spvnas":
            raise PerceptionError(f"train: --sandwich trains sub-networks of a super-network; {self.model} has none")
        if self.workers < 0 or self.log_every < 1 or self.normalizer_samples < 1:
            raise PerceptionError("train: workers must be >= 0, log_every and normalizer_samples >= 1")
        # NaN passes every comparison and inf trains to NaN weights: both are refused before anything runs
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise PerceptionError(f"train: lr must be a finite number > 0; got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise PerceptionError(f"train: weight_decay must be a finite number >= 0; got {self.weight_decay!r}")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise PerceptionError(f"train: max_minutes must be a finite number > 0; got {self.max_minutes!r}")
        check_scene_content(self.scene_content)
        self._check_distillation()
        entries = parse_data(self.data)  # a malformed --data fails here, in one line
        if self.workers and any(carla_address(source) for source, _ in entries):
            raise PerceptionError(
                "train: --data carla://HOST:PORT samples one live session in this process: use --workers 0"
            )
        if not (math.isfinite(self.gca_weight) and self.gca_weight >= 0):
            raise PerceptionError(f"train: gca_weight must be a finite number >= 0; got {self.gca_weight!r}")
        from perception_ws.adapt.gca import DISTANCES  # imports torch, as the device check below does

        if self.gca_distance not in DISTANCES:
            raise PerceptionError(f"train: gca_distance {self.gca_distance!r}; expected one of {', '.join(DISTANCES)}")
        _check_device(self.device)
        if self.init is not None:
            from perception_ws.models.weights import manifest_path

            if not (Path(self.init).is_file() and manifest_path(self.init).is_file()):
                raise PerceptionError(f"train: init {self.init!r} is not a weights file with its .json manifest")
        from perception_ws.sim.sensor.intensity import check_intensity_mode  # the simulator loads only here

        check_intensity_mode(self.intensity)  # a lir:PATH file is checked before anything runs

    def _check_point_model(self) -> None:
        """What a point-voxel network cannot take: a CRF (it works on the range image) or range-image alignment."""
        if self.crf:
            raise PerceptionError(f"train: --crf is a range-image layer; {self.model} labels points (drop --crf)")
        if self.target is not None:
            raise PerceptionError(f"train: --target (GCA) aligns range-image logits; not built for {self.model}")
        for name in ("voxel_size", "width_ratio"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise PerceptionError(f"train: {name} must be a finite number > 0; got {value!r}")

    def _check_distillation(self) -> None:
        """The teacher and the narrower network: range-image models only, finite positive settings."""
        if is_point_model(self.model) and (self.teacher is not None or self.channel_scale != 1.0):
            raise PerceptionError(
                f"train: --teacher and --channel-scale are for the range-image models; {self.model} has --width-ratio"
            )
        check_channel_scale(self.channel_scale, "train")
        for name in ("distill_weight", "distill_temperature"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise PerceptionError(f"train: {name} must be a finite number > 0; got {value!r}")
        if self.teacher is not None:
            from perception_ws.models.weights import manifest_path

            if not (Path(self.teacher).is_file() and manifest_path(self.teacher).is_file()):
                raise PerceptionError(f"train: teacher {self.teacher!r} is not a weights file with its .json manifest")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        # a run stored before scene content had presets trained on the v1 streets: resume it on them
        data = {"scene_content": "v1", **data}
        return cls(**{k: v for k, v in data.items() if k in known})

    def schedule_fields(self) -> dict[str, Any]:
        """The settings a resumed run must share with the checkpoint (all but the run's budget and workers)."""
        data = self.to_json()
        for transient in ("workers", "max_minutes", "device", "log_every", "checkpoint_every"):
            data.pop(transient)
        return data


def _check_device(name: str) -> None:
    """Refuse a device string torch cannot parse before any work (whether this machine has that device is
    checked where the run starts: a stored config may name the GPU of another machine).
    """
    import torch

    if name == "auto":
        return
    try:
        torch.device(name)
    except (RuntimeError, TypeError):  # torch's message lists twenty device types; ours names the usual ones
        raise PerceptionError(
            f"train: device {name!r} is not a torch device; expected auto, cpu, cuda or cuda:N"
        ) from None
