"""A training configuration small enough for a test on CPU, and a tiny learned intensity renderer (LIR) file."""

from __future__ import annotations

from pathlib import Path

from perception_ws.training import TrainConfig

#: LIR bins (the thesis' 10) and width of the tiny renderer: the narrowest SqueezeSeg that still has every layer
LIR_BINS = 10
TINY_LIR = 1 / 16


def small_config(data: Path | str, **changes: object) -> TrainConfig:
    """4 CPU steps of batch 2 on 128-column crops of the 4 real frames, a log row per step (seconds, not
    minutes); no CRF, whose backward pass is slow on CPU and draws no random numbers (dropout, which does, stays)."""
    settings: dict[str, object] = {
        "data": str(data),
        "crf": False,
        "crop_width": 128,
        "steps": 4,
        "batch_size": 2,
        "workers": 0,
        "device": "cpu",
        "amp": False,
        "log_every": 1,
        "checkpoint_every": 100,
        "normalizer_samples": 4,
        "warmup_steps": 2,
    }
    return TrainConfig(**{**settings, **changes})  # type: ignore[arg-type]


def tiny_lir_file(path: Path) -> Path:
    """An untrained LIR network of :data:`TINY_LIR` width, seeded, saved as ``path`` (with its manifest)."""
    import torch

    from perception_ws.adapt.lir_model import LirModel
    from perception_ws.adapt.lir_net import LirNet

    torch.manual_seed(0)
    return LirModel(LirNet("hybrid", LIR_BINS, TINY_LIR), {"steps": 0}).save(path)
