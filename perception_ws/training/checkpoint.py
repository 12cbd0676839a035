"""Checkpoints: everything needed to continue a run exactly, written atomically."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from perception_ws.errors import WeightsError
from perception_ws.io.atomic import atomic_file

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path``; a kill mid-write leaves the previous checkpoint intact."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_file(path) as handle:
        handle.write(buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many kinds for a damaged file
        raise WeightsError(f"{path}: not a readable training checkpoint ({type(error).__name__}: {error})") from None
    missing = {"step", "config", "model", "optimizer"} - set(state if isinstance(state, dict) else {})
    if missing:
        raise WeightsError(f"{path}: not a training checkpoint of perception train (lacks {sorted(missing)})")
    return dict(state)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def parameter_digest(model: nn.Module) -> str:
    """sha256 of every parameter (name order, raw bytes): equal on all ranks iff DDP kept them in step.

    Buffers are left out on purpose: each rank's batch-norm statistics follow its own last batch."""
    digest = hashlib.sha256()
    for name, value in model.named_parameters():
        digest.update(name.encode())
        digest.update(value.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
