"""Model registry: ``build_model(name, num_classes, in_channels, crf, **cfg)`` and back from a config dict.

Known names: ``squeezeseg`` (v1: no batch norm, no CAM, 5 input channels) and ``squeezesegv2`` (batch norm,
CAM, 6 input channels: the mask added). ``model.config`` is a JSON-safe dict from which
:func:`model_from_config` rebuilds the same architecture (load the state dict for the weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from perception_ws.errors import PerceptionError
from perception_ws.models.segmenter import RangeSegmenter


@dataclass(frozen=True)
class ModelSpec:
    """What distinguishes one registered architecture."""

    name: str
    description: str
    in_channels: int
    batch_norm: bool
    cam: bool


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("squeezeseg", "SqueezeSeg (v1): fire encoder-decoder, x y z intensity range", 5, False, False),
        ModelSpec(
            "squeezesegv2", "SqueezeSegV2: + batch norm, CAM, mask channel (x y z intensity range mask)", 6, True, True
        ),
    )
}

#: keys of ``**cfg`` that :func:`build_model` understands.
CONFIG_KEYS = frozenset(
    {
        "dropout",
        "input_mean",
        "input_std",
        "crf_params",
        "xyz_channels",
        "valid_channel",
        "zero_channels",
        "channel_scale",
    }
)


def get_spec(name: str) -> ModelSpec:
    """The architecture called ``name`` (any case); a PerceptionError lists the known ones."""
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise PerceptionError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def build_model(
    name: str, num_classes: int, in_channels: int | None = None, crf: bool = False, **cfg: Any
) -> RangeSegmenter:
    """A fresh (untrained) model. ``in_channels`` defaults to the architecture's (5 for v1, 6 for v2).

    ``cfg``: ``dropout`` (0.5), ``input_mean``/``input_std`` (per-channel lists), ``crf_params`` (a
    :class:`~perception_ws.models.crf.CRFConfig` as dict), ``xyz_channels`` ((0, 1, 2)), ``valid_channel`` (4),
    ``channel_scale`` (1.0: every layer's channels times it, in 1/16 steps).
    """
    spec = get_spec(name)
    unknown = set(cfg) - CONFIG_KEYS
    if unknown:
        raise PerceptionError(f"model {spec.name}: unknown config keys {sorted(unknown)}; known: {sorted(CONFIG_KEYS)}")
    if cfg.get("crf_params") is not None and not crf:
        raise PerceptionError(f"model {spec.name}: crf_params given but crf=False")
    cfg = {k: v for k, v in cfg.items() if v is not None}
    return RangeSegmenter(
        spec.name,
        int(num_classes),
        spec.in_channels if in_channels is None else int(in_channels),
        batch_norm=spec.batch_norm,
        cam=spec.cam,
        crf=crf,
        **cfg,
    )


def model_from_config(config: Mapping[str, Any]) -> RangeSegmenter:
    """Rebuild a model from ``model.config`` (e.g. read back from JSON or a weights manifest)."""
    missing = {"name", "num_classes"} - set(config)
    if missing:
        raise PerceptionError(f"model config lacks {sorted(missing)}; got keys {sorted(config)}")
    rest = {k: v for k, v in config.items() if k not in ("name", "num_classes", "in_channels", "crf")}
    return build_model(
        str(config["name"]),
        int(config["num_classes"]),
        config.get("in_channels"),
        bool(config.get("crf", False)),
        **rest,
    )
