"""A saved LIR network on disk, torch-free: the ``lir:PATH`` intensity mode names one.

``NAME.pt`` (state dict) beside ``NAME.json`` (manifest), as :mod:`perception_ws.models.weights` writes
segmentation weights, under its own format name so neither loader takes the other's file.
"""

from __future__ import annotations

from pathlib import Path

from perception_ws.models.weights import existing_weights_file, read_manifest

LIR_FORMAT = "perception-lir/1"
LIR_PREFIX = "lir:"


def lir_mode_path(mode: str) -> Path | None:
    """The file an intensity mode ``lir:PATH`` names; None for any other mode."""
    return Path(mode[len(LIR_PREFIX) :]) if mode.startswith(LIR_PREFIX) else None


def check_lir_file(path: str | Path) -> Path:
    """``path`` as an existing LIR ``.pt`` with a readable LIR manifest; else one WeightsError naming it."""
    weights = existing_weights_file(path)
    read_manifest(weights, LIR_FORMAT)
    return weights
