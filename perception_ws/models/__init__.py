"""Range-image segmentation models: SqueezeSeg, SqueezeSegV2, the recurrent CRF, losses, complexity.

Entry points: :func:`build_model` / :func:`model_from_config` (registry), :class:`RangeSegmenter`,
:class:`RecurrentCRF`, :func:`focal_loss`, :func:`model_complexity`, :func:`save_weights` /
:func:`load_weights` (weights files with a checksummed manifest). See docs/models.md.
"""

from perception_ws.models.complexity import Complexity, model_complexity
from perception_ws.models.crf import CRFConfig, RecurrentCRF
from perception_ws.models.losses import SegmentationLoss, cross_entropy_loss, focal_loss
from perception_ws.models.registry import MODELS, build_model, model_from_config
from perception_ws.models.segmenter import RangeSegmenter
from perception_ws.models.weights import load_weights, read_manifest, save_weights

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
