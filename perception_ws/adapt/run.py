"""`perception adapt`: a segmentation model adapted to the user's sensor from its unlabelled scans, in one run.

Stages, each written into ``OUT`` and skipped when a rerun finds it done (``adapt.json`` holds the settings;
a rerun with other settings is refused), so a killed run continues where it stopped:

1. ``profile/``: the sensor from the data (:mod:`perception_ws.adapt.sensor_profile`): beams, mounting
   height, dropout map, intensity scale. It is also the simulated sensor of stage 3.
2. ``lir/``: learned intensity rendering (:mod:`perception_ws.adapt.lir_train`) trained on the target, when
   its intensities are on the 0..1 scale the models take; otherwise (none, or 0..255) the model is trained
   to ignore intensity, which is all a scan without comparable intensities can support.
3. ``train/``: simulated scans of that sensor (its fitted beams, its measured dropout, its height; LIR
   intensities; the street content of ``scene_content``), focal loss + GCA toward the target
   (:mod:`perception_ws.training.alignment`); from ``init`` weights when given (fine-tuning). It resumes itself.
4. ``weights.pt`` (+ manifest): the trained network after PDC on the target (:mod:`perception_ws.adapt.pdc`).
5. ``report/``: per-class points and detections a frame on a few target scans, before (``init`` or the shipped
   weights) and after, as ``report.md``/``report.json``, and ``before_after.png``.

The perception node runs the result with ``segmenter.weights: OUT/weights.pt`` and
``sensor.model: OUT/profile/sensor.yaml``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perception_ws.adapt.layout import LIR_DIR, LIR_FILE, PROFILE_DIR, SETTINGS_JSON, TRAIN_DIR, WEIGHTS
from perception_ws.errors import PerceptionError
from perception_ws.io.atomic import atomic_file


@dataclass(frozen=True)
class AdaptSettings:
    """Everything that decides a run's files (``device``, ``workers``, ``max_minutes`` and progress do not)."""

    target: str
    #: a built-in sensor whose table seeds the beam fit (same beam count); None: from the ring field or peaks.
    sensor: str | None = None
    #: weights to start from (fine-tuning); None: a fresh network.
    init: str | None = None
    steps: int = 10000
    batch_size: int = 32
    lr: float = 2e-3
    lir_steps: int = 3000
    lir_batch_size: int = 16
    gca_weight: float = 10.0
    scene_content: str = "v2"
    frames_per_scene: int = 16
    pdc_batches: int = 8
    profile_frames: int = 12
    report_frames: int = 3
    seed: int = 0
    #: "small": a tiny run for tests and CPUs (a few steps, small batches); "full": the settings above.
    scale: str = "full"

    def __post_init__(self) -> None:
        if self.scale not in ("small", "full"):
            raise PerceptionError(f"adapt: scale {self.scale!r}; expected small or full")
        for name in ("steps", "batch_size", "lir_steps", "lir_batch_size", "pdc_batches", "profile_frames"):
            if int(getattr(self, name)) < 1:
                raise PerceptionError(f"adapt: {name} must be >= 1; got {getattr(self, name)!r}")


@dataclass(frozen=True)
class RunOptions:
    """How this process runs (nothing here changes the files)."""

    device: str = "auto"
    workers: int = 2
    max_minutes: float | None = None
    progress: bool = True


def adapt(settings: AdaptSettings, out: str | Path, options: RunOptions = RunOptions()) -> dict[str, Any]:
    """Run (or resume) every stage into ``out``; returns what ``report.json`` holds (empty if training stopped
    early: rerun to continue).
    """
    folder = Path(out).expanduser().resolve()  # the report and manifest name it for a node started anywhere
    if folder.exists() and not folder.is_dir():
        raise PerceptionError(f"adapt --out {folder}: exists and is not a folder")
    target = Path(settings.target).expanduser()
    if not target.exists():
        raise PerceptionError(f"adapt --target {target}: no such file or folder")
    folder.mkdir(parents=True, exist_ok=True)
    _check_settings(folder, settings)
    say = _say(options.progress)

    profile = _profile_stage(settings, folder, say)
    # weights are written only after training finished: with them, stages 2-4 are done and stay silent
    if not _weights_written(folder):
        intensity_ok = profile.intensity.kind == "0..1"
        lir = _lir_stage(settings, folder, options, say) if intensity_ok else None
        if not intensity_ok:
            say(f"adapt: target intensity is {profile.intensity.kind}: the model will ignore intensity (no LIR)")
        finished = _train_stage(settings, folder, options, lir, zero_intensity=not intensity_ok, say=say)
        if not finished:
            say(f"adapt: training stopped before its last step; run the same command again to continue ({folder})")
            return {}
        _pdc_stage(settings, folder, options, say)
    from perception_ws.adapt.report import write_report

    return write_report(settings.target, settings.init, settings.report_frames, folder, say)


def _say(progress: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if progress:
            print(line, file=sys.stderr, flush=True)

    return say


def _check_settings(folder: Path, settings: AdaptSettings) -> None:
    path = folder / SETTINGS_JSON
    wanted = dataclasses.asdict(settings)
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise PerceptionError(
                f"adapt --out {folder}: {SETTINGS_JSON} is not JSON ({error}); choose another --out"
            ) from None
        if not isinstance(stored, dict):
            raise PerceptionError(f"adapt --out {folder}: {SETTINGS_JSON} holds no settings; choose another --out")
        differ = sorted(k for k in wanted if stored.get(k) != wanted[k])
        if differ:
            raise PerceptionError(
                f"adapt --out {folder}: holds a run with other settings ({', '.join(differ)}); "
                "rerun with the same settings to resume, or choose another --out"
            )
        return
    with atomic_file(path) as handle:
        handle.write((json.dumps(wanted, indent=2) + "\n").encode())


def _profile_stage(settings: AdaptSettings, folder: Path, say: Callable[[str], None]) -> Any:
    from perception_ws.adapt.sensor_profile import SensorProfile, estimate_profile, first_scans, summary
    from perception_ws.calib.sensors import get_sensor
    from perception_ws.io import open_dataset
    from perception_ws.sim.simulated_sensor import DROPOUT_NPZ, PROFILE_JSON, SENSOR_YAML

    where = folder / PROFILE_DIR
    if all((where / name).is_file() for name in (PROFILE_JSON, SENSOR_YAML, DROPOUT_NPZ)):
        return SensorProfile.load(where)
    say(f"adapt 1/5: the sensor from {settings.target}")
    scans = first_scans(open_dataset(Path(settings.target).expanduser()), settings.profile_frames, str(settings.target))
    base = get_sensor(settings.sensor) if settings.sensor else None
    profile = estimate_profile(scans, base, source=str(settings.target), name=f"{base.name if base else 'target'}")
    profile.save(where)  # each file atomically: a kill leaves whole files, and the check above wants all three
    say(summary(profile))
    return profile


def _lir_stage(settings: AdaptSettings, folder: Path, options: RunOptions, say: Callable[[str], None]) -> Path:
    from perception_ws.adapt.lir_train import train_lir
    from perception_ws.adapt.target import TargetScans

    path = folder / LIR_DIR / LIR_FILE
    if path.is_file() and path.with_suffix(".json").is_file():
        return path
    steps, batch = _small(settings, settings.lir_steps, 20), _small(settings, settings.lir_batch_size, 2)
    say(f"adapt 2/5: learned intensity rendering, {steps} steps of {batch} target crops")
    target = TargetScans(Path(settings.target).expanduser(), str(folder / PROFILE_DIR), seed=settings.seed)
    model = train_lir(target, "hybrid", steps, batch, _device(options.device), settings.seed, options.progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def _train_stage(
    settings: AdaptSettings,
    folder: Path,
    options: RunOptions,
    lir: Path | None,
    *,
    zero_intensity: bool,
    say: Callable[[str], None],
) -> bool:
    from perception_ws.training import TrainConfig, train

    device = _device(options.device)
    config = TrainConfig(
        model="squeezesegv2",
        crf=True,
        data="sim-gpu" if device.startswith("cuda") else "sim",
        steps=_small(settings, settings.steps, 4),
        batch_size=_small(settings, settings.batch_size, 2),
        lr=settings.lr,
        warmup_steps=_small(settings, 200, 1) if settings.init is None else 0,
        seed=settings.seed,
        sensor=str((folder / PROFILE_DIR).resolve()),
        dropout="measured",
        intensity=f"lir:{lir.resolve()}" if lir is not None else "off",
        intensity_input="zero" if zero_intensity else "keep",
        frames_per_scene=_small(settings, settings.frames_per_scene, 1),
        scene_content=settings.scene_content,
        normalizer_samples=_small(settings, 64, 2),
        workers=options.workers,
        device=device,
        max_minutes=options.max_minutes,
        checkpoint_every=_small(settings, 500, 2),
        target=str(Path(settings.target).expanduser().resolve()),
        gca_weight=settings.gca_weight,
        init=str(Path(settings.init).expanduser().resolve()) if settings.init else None,
    )
    say(
        f"adapt 3/5: {config.steps} steps on simulated scans of the target's sensor, focal + GCA (x{config.gca_weight})"
    )
    result = train(config, folder / TRAIN_DIR, progress=options.progress)
    return result.finished


def _pdc_stage(settings: AdaptSettings, folder: Path, options: RunOptions, say: Callable[[str], None]) -> Path:
    from perception_ws.adapt.pdc import calibrate
    from perception_ws.adapt.target import TargetScans
    from perception_ws.models import model_from_config, save_weights
    from perception_ws.training.checkpoint import CHECKPOINT, load_checkpoint

    path = folder / WEIGHTS
    if _weights_written(folder):
        return path
    batches = _small(settings, settings.pdc_batches, 1)
    say(f"adapt 4/5: progressive domain calibration on {batches} batches of target crops")
    state = load_checkpoint(folder / TRAIN_DIR / CHECKPOINT)
    model = model_from_config(state["model_config"])
    model.load_state_dict(state["model"])
    target = TargetScans(Path(settings.target).expanduser(), str(folder / PROFILE_DIR), seed=settings.seed + 1)
    layers = calibrate(model, target, batches, _small(settings, 8, 2), _device(options.device))
    model.to("cpu").eval()
    config = state["config"]
    training = {
        "data": f"simulated scans of the sensor profiled from {settings.target} (no real label read)",
        "steps": int(state["step"]),
        "batch_size": config["batch_size"],
        "settings": config,
        "adaptation": {
            "target": str(settings.target),
            "sensor_profile": str(folder / PROFILE_DIR),
            "lir": config.get("intensity"),
            "gca_weight": config.get("gca_weight"),
            "pdc": {"batches": batches, "layers": len(layers), "target_frames": len(target)},
            "init": settings.init,
        },
    }
    from perception_ws.adapt.report import remove_report

    remove_report(folder)  # a report of earlier weights (this run's were deleted) would describe others
    return save_weights(model, path, training=training, scores={})


def _weights_written(folder: Path) -> bool:
    """Stage 4 is done: the weights and their manifest (written after them) are both there."""
    path = folder / WEIGHTS
    return path.is_file() and path.with_suffix(".json").is_file()


def _small(settings: AdaptSettings, full: int, small: int) -> int:
    return full if settings.scale == "full" else min(full, small)


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
