"""Checkpoints: everything needed to continue a run exactly, written atomically."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
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
    """The state :func:`save_checkpoint` wrote. Read with ``weights_only=True``: a checkpoint holds tensors,
    numbers, strings and containers only, so a planted pickle (a shared or downloaded run folder) is refused
    before anything in it can run.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise WeightsError(
            f"{path}: refused: it holds Python objects other than tensors and plain data ({_blocked(error)}); "
            "nothing in it was run"
        ) from None
    except Exception as error:  # torch raises many kinds for a damaged file
        raise WeightsError(f"{path}: not a readable training checkpoint ({type(error).__name__}: {error})") from None
    missing = {"step", "config", "model", "optimizer"} - set(state if isinstance(state, dict) else {})
    if missing:
        raise WeightsError(f"{path}: not a training checkpoint of perception train (lacks {sorted(missing)})")
    return dict(state)


def _blocked(error: pickle.UnpicklingError) -> str:
    """What the file tried to load, from torch's long message (e.g. ``loads posix.system``)."""
    named = re.search(r"GLOBAL (\S+)", str(error))
    return f"loads {named.group(1)}" if named else type(error).__name__


def rng_state() -> dict[str, Any]:
    """The torch random generators' state (CPU, and every GPU when there is one), for a checkpoint."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore the state :func:`rng_state` saved, so a resumed run draws what it would have drawn."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def parameter_digest(model: nn.Module) -> str:
    """sha256 of every parameter (name order, raw bytes): equal on all ranks iff DDP kept them in step.

    Buffers are left out on purpose: each rank's batch-norm statistics follow its own last batch.
    """
    digest = hashlib.sha256()
    for name, value in model.named_parameters():
        digest.update(name.encode())
        digest.update(value.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
