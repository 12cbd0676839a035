"""Trained weights on disk: ``NAME.pt`` (the state dict only) beside ``NAME.json`` (its manifest).

The manifest says what the file is and where it came from, so a weights file is never a mystery::

    {"format": "perception-weights/1", "file": "NAME.pt", "bytes": 1234, "sha256": "…",
     "model": {…model.config…}, "training": {"data": …, "steps": …, …}, "scores": {…},
     "created_utc": "…", "torch": "2.x"}

``model`` rebuilds the architecture (:func:`~perception_ws.models.registry.model_from_config`);
``training`` must name at least the ``data`` and the ``steps``; ``scores`` holds the evaluation on the
real frames (e.g. ``{source: EvaluationResult.to_json()}``). Both files are written atomically.

:func:`load_weights` checks, in this order, and raises one :class:`WeightsError` naming the file for
the first problem: file and manifest present and readable; size (a truncated file); sha256 (a corrupt
or replaced file); the state dict readable with ``torch.load(weights_only=True)``; its keys and shapes
matching the manifest's model config. ``None`` loads the shipped default, ``weights/default.pt``.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from perception_ws.errors import PerceptionError, WeightsError
from perception_ws.io.atomic import atomic_file

if TYPE_CHECKING:
    from torch import nn

    from perception_ws.config import PipelineConfig
    from perception_ws.models.segmenter import RangeSegmenter
    from perception_ws.models.spvnas.point_model import PointVoxelSegmenter

_Model = TypeVar("_Model", bound="nn.Module")

FORMAT = "perception-weights/1"
#: the weights that ship with the package; ``load_weights(None)`` loads ``default.pt`` from here.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.pt"
#: keys every ``training`` record must have.
TRAINING_KEYS = ("data", "steps")
_SHOWN = 5  # mismatching keys named in an error message


def shipped_weights(sensor_name: str) -> Path:
    """The shipped weights for a sensor: ``weights/<sensor>.pt`` where one was adapted to it (e.g. ``vlp16``),
    else ``default.pt`` (the HDL-64E model). ``sensor_name``: a :class:`SensorModel`'s name.
    """
    own = WEIGHTS_DIR / f"{sensor_name}.pt"
    return own if own.is_file() and manifest_path(own).is_file() else DEFAULT_WEIGHTS


def weights_for(config: PipelineConfig) -> Path:
    """``segmenter.weights``, else the shipped weights of the config's sensor (:func:`shipped_weights`)."""
    from perception_ws.calib.sensors import load_sensor

    if config.segmenter.weights:
        return Path(config.segmenter.weights)
    return shipped_weights(load_sensor(config.sensor.model).name)


def manifest_path(weights: str | Path) -> Path:
    """The manifest beside a weights file (``x.pt`` -> ``x.json``)."""
    return Path(weights).with_suffix(".json")


def json_safe(value: Any) -> Any:
    """``value`` with tuples as lists and non-finite floats as None (strict JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_weights(
    model: RangeSegmenter | PointVoxelSegmenter,
    path: str | Path,
    *,
    training: Mapping[str, Any],
    scores: Mapping[str, Any],
) -> Path:
    """Write ``model``'s state dict to ``path`` (``.pt``) and its manifest beside it; returns the ``.pt`` path.

    ``training``: JSON-safe, with at least ``data`` (what it was trained on) and ``steps``; add what helps
    (epochs, batch size, learning rate, seed, adaptation steps …). ``scores``: JSON-safe evaluation results.
    """
    target = Path(path)
    config = getattr(model, "config", None)
    if not isinstance(config, Mapping):
        raise WeightsError(f"{target}: {type(model).__name__} has no .config dict; save a RangeSegmenter")
    return write_state(model.state_dict(), target, model_config=config, training=training, scores=scores)


def write_state(
    state: Mapping[str, Any],
    path: str | Path,
    *,
    model_config: Mapping[str, Any],
    training: Mapping[str, Any],
    scores: Mapping[str, Any],
    file_format: str = FORMAT,
) -> Path:
    """Write a state dict and its manifest (``file_format``, ``model_config`` under ``model``); the ``.pt`` path.

    :func:`save_weights` for any network that rebuilds from a JSON config (e.g. the LIR network).
    """
    import torch

    target = Path(path)
    if target.suffix != ".pt":
        raise WeightsError(f"{target}: a weights file must end in .pt (its manifest goes beside it as .json)")
    missing = [k for k in TRAINING_KEYS if k not in training]
    if missing:
        raise WeightsError(f"{target}: the training record lacks {missing}; expected at least {list(TRAINING_KEYS)}")
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    data = buffer.getvalue()
    manifest = {
        "format": file_format,
        "file": target.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "model": json_safe(dict(model_config)),
        "training": json_safe(dict(training)),
        "scores": json_safe(dict(scores)),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
    }
    try:
        text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{target}: training or scores are not JSON-safe ({exc})") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as handle:
        handle.write(data)
    with atomic_file(manifest_path(target)) as handle:  # written last: a manifest means the .pt is complete
        handle.write(text.encode())
    return target


def read_manifest(path: str | Path, file_format: str = FORMAT) -> dict[str, Any]:
    """The manifest of the weights file ``path`` (the ``.pt`` or the ``.json``), checked for its keys."""
    where = manifest_path(path)
    if not where.is_file():
        raise WeightsError(f"{Path(path)}: no manifest {where.name} beside it; save weights with save_weights()")
    try:
        manifest = json.loads(where.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WeightsError(f"{where}: cannot read the weights manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != file_format:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise WeightsError(f"{where}: format {found!r}; expected {file_format!r}")
    lacking = [k for k in ("bytes", "sha256", "model") if k not in manifest]
    if lacking:
        raise WeightsError(f"{where}: the manifest lacks {lacking}")
    return manifest


def load_weights(path: str | Path | None = None, device: str = "cpu") -> RangeSegmenter:
    """The model saved at ``path`` (None: the shipped default), on ``device``, in eval mode; see the module doc."""
    from perception_ws.models.registry import model_from_config

    return _load_model(resolve_weights(path), model_from_config, device)


def load_point_weights(path: str | Path, device: str = "cpu") -> PointVoxelSegmenter:
    """The SPVCNN / SPVNAS network saved at ``path`` (checked as :func:`load_weights` checks), in eval mode."""
    from perception_ws.models.spvnas.point_model import point_model_from_config

    return _load_model(existing_weights_file(path), point_model_from_config, device)


def weights_model_name(path: str | Path) -> str:
    """The architecture a weights file's manifest names (``squeezesegv2``, ``spvnas`` …), read without torch."""
    return str(read_manifest(existing_weights_file(path)).get("model", {}).get("name", ""))


def any_model_from_config(config: Mapping[str, Any]) -> RangeSegmenter | PointVoxelSegmenter:
    """A fresh network of either family from a ``model`` config (a manifest's, or a checkpoint's ``model_config``)."""
    from perception_ws.models.families import is_point_model
    from perception_ws.models.registry import model_from_config
    from perception_ws.models.spvnas.point_model import point_model_from_config

    if is_point_model(str(config.get("name", ""))):
        return point_model_from_config(config)
    return model_from_config(config)


def check_weights_model(weights: str, model: str, setting: str = "segmenter.model") -> None:
    """One WeightsError when the weights' manifest names another architecture than ``model`` (the ``setting``)."""
    found = weights_model_name(weights)
    if found != model:
        raise WeightsError(f"weights {weights!r} hold a {found!r} network, but {setting} is {model!r}")


def load_any_weights(path: str | Path | None, device: str = "cpu") -> RangeSegmenter | PointVoxelSegmenter:
    """:func:`load_point_weights` for a point model's file, else :func:`load_weights` (None: the shipped default)."""
    from perception_ws.models.families import is_point_model

    if path is not None and str(path) and is_point_model(weights_model_name(path)):
        return load_point_weights(path, device)
    return load_weights(path, device)


def _load_model(weights: Path, build: Callable[[Mapping[str, Any]], _Model], device: str) -> _Model:
    """The checked state of ``weights`` loaded into ``build(manifest["model"])``, on ``device``, in eval mode."""
    import torch

    manifest, state = read_state(weights)
    try:
        model = build(manifest["model"])
    except (PerceptionError, TypeError, ValueError) as exc:
        raise WeightsError(f"{manifest_path(weights)}: the model config cannot be built ({exc})") from None
    check_state_matches(weights, model.state_dict(), state)
    model.load_state_dict(state)
    try:
        model.to(torch.device(device))
    except (RuntimeError, AssertionError) as exc:  # an unknown device string, or CUDA absent
        raise WeightsError(f"{weights}: cannot move the model to device {device!r} ({exc})") from None
    return model.eval()


def read_state(weights: Path, file_format: str = FORMAT) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """The checked manifest and state dict (tensors, read with ``weights_only=True``) of an existing ``.pt``."""
    import torch

    manifest = read_manifest(weights, file_format)
    data = _read_checked(weights, manifest)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError, EOFError …)
        raise WeightsError(f"{weights}: not a readable torch state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{weights}: holds a {type(state).__name__}, expected a state dict of tensors")
    return manifest, state


def resolve_weights(path: str | Path | None) -> Path:
    """The ``.pt`` that ``path`` names (None or "": the shipped default), checked to exist; else one WeightsError."""
    if path is None or str(path) == "":
        if not DEFAULT_WEIGHTS.is_file():
            raise WeightsError(
                f"no shipped default weights yet: {DEFAULT_WEIGHTS} does not exist; train a model (`perception "
                "train`) and pass its .pt file (--weights / segmenter.weights)"
            )
        return DEFAULT_WEIGHTS
    return existing_weights_file(path)


def existing_weights_file(path: str | Path) -> Path:
    """``path`` as a ``.pt`` (its ``.json`` manifest names it too) that exists; else one WeightsError."""
    weights = Path(path).expanduser()
    if weights.suffix == ".json":
        weights = weights.with_suffix(".pt")
    if not weights.is_file():
        raise WeightsError(f"{weights}: no such weights file")
    return weights


def _read_checked(weights: Path, manifest: Mapping[str, Any]) -> bytes:
    try:
        data = weights.read_bytes()
    except OSError as exc:
        raise WeightsError(f"{weights}: cannot read ({exc})") from None
    if len(data) != manifest["bytes"]:
        kind = "truncated" if len(data) < int(manifest["bytes"]) else "longer than saved"
        raise WeightsError(f"{weights}: {kind}: {len(data)} bytes, the manifest says {manifest['bytes']}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest["sha256"]:
        raise WeightsError(
            f"{weights}: checksum mismatch (sha256 {digest[:16]}…, the manifest says {str(manifest['sha256'])[:16]}…): "
            "the file is corrupt or was replaced"
        )
    return data


def check_state_matches(weights: Path, expected: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """One WeightsError listing missing, unexpected and mis-shaped keys of ``state`` against the config's."""
    problems = []
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    for what, items in (("missing", missing), ("unexpected", extra), ("shape (file vs config)", shapes)):
        if items:
            more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
            problems.append(f"{len(items)} {what}: {', '.join(items[:_SHOWN])}{more}")
    if problems:
        raise WeightsError(
            f"{weights}: the state dict does not match the model config in {manifest_path(weights).name}: "
            + "; ".join(problems)
        )
