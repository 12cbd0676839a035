"""Range-image segmentation models: SqueezeSeg, SqueezeSegV2, the recurrent CRF, losses, complexity.

Entry points: :func:`build_model` / :func:`model_from_config` (registry), :class:`RangeSegmenter`,
:class:`RecurrentCRF`, :func:`focal_loss`, :func:`model_complexity`, :func:`save_weights` /
:func:`load_weights` (weights files with a checksummed manifest). See docs/models.md.

The names load on first use (PEP 562): importing a torch-free module of this package, such as the label-field
segmenter in :mod:`.scan_segmenters`, must not import torch (a node labelling from a field starts in
a second, not after torch's import).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perception_ws.models.complexity import Complexity, model_complexity
    from perception_ws.models.crf import CRFConfig, RecurrentCRF
    from perception_ws.models.losses import SegmentationLoss, cross_entropy_loss, focal_loss
    from perception_ws.models.registry import MODELS, build_model, model_from_config
    from perception_ws.models.segmenter import RangeSegmenter
    from perception_ws.models.weights import load_weights, read_manifest, save_weights

#: public name -> the module that defines it.
_HOMES = {
    "Complexity": "complexity",
    "model_complexity": "complexity",
    "CRFConfig": "crf",
    "RecurrentCRF": "crf",
    "SegmentationLoss": "losses",
    "cross_entropy_loss": "losses",
    "focal_loss": "losses",
    "MODELS": "registry",
    "build_model": "registry",
    "model_from_config": "registry",
    "RangeSegmenter": "segmenter",
    "load_weights": "weights",
    "read_manifest": "weights",
    "save_weights": "weights",
}

__all__ = [
    "MODELS",
    "CRFConfig",
    "Complexity",
    "RangeSegmenter",
    "RecurrentCRF",
    "SegmentationLoss",
    "build_model",
    "cross_entropy_loss",
    "focal_loss",
    "load_weights",
    "model_complexity",
    "model_from_config",
    "read_manifest",
    "save_weights",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
