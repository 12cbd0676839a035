"""The segmenters a :class:`~perception_ws.pipeline.Pipeline` runs (``segmenter.kind``).

``model``: :class:`~perception_ws.models.network_segmenter.NetworkSegmenter`, the range-image network with its
CRF, class and confidence per pixel (or, with ``segmenter.runtime: onnxruntime`` or ``openvino``, the exported
network in :class:`~perception_ws.models.onnx_segmenter.OnnxSegmenter`); ``labels``: :class:`LabelFieldSegmenter`, the
class ids the input carries in a field; ``none``: :class:`NoSegmenter`, every point class 0. With
``segmenter.model: spvcnn|spvnas``, ``model`` is :class:`~perception_ws.models.point_segmenter.PointSegmenter`, a
class per point straight from the points.
:func:`make_segmenter` picks one. This module does not import torch: a pipeline labelling from a field never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np

from perception_ws.config.perception import PipelineConfig
from perception_ws.errors import CloudFormatError, WeightsError
from perception_ws.labels import ClassSet
from perception_ws.models.families import is_point_model

if TYPE_CHECKING:
    from torch import nn

    from perception_ws.models.network_segmenter import NetworkSegmenter
    from perception_ws.models.onnx_segmenter import OnnxSegmenter
    from perception_ws.models.point_segmenter import PointSegmenter


class LabelFieldSegmenter:
    """Class ids the input already carries, in the field ``label_field`` (validated against the class set)."""

    reads: Literal["points"] = "points"
    #: calls of the segmenter a pipeline warm-up makes (a network replayed as CUDA graphs needs 3)
    warm_up_calls: int = 1

    def __init__(self, label_field: str, class_set: ClassSet) -> None:
        self.label_field = label_field
        self.class_set = class_set

    def segment_points(self, cloud: np.ndarray) -> np.ndarray:
        names = cloud.dtype.names or ()
        if self.label_field not in names:
            raise CloudFormatError(
                f"segmenter 'labels': the cloud has no field {self.label_field!r} (fields: {list(names)}); "
                "publish class ids in it, or set segmenter.label_field / segmenter.kind"
            )
        values = cloud[self.label_field]
        integral = values.dtype.kind in "iu" or (
            values.dtype.kind == "f" and bool(np.all(np.isfinite(values) & (values == np.round(values))))
        )
        if values.ndim != 1 or not integral:
            raise CloudFormatError(
                f"segmenter 'labels': field {self.label_field!r} of type {values.dtype} holds no class ids; "
                "expected one integer per point"
            )
        if len(values) and (values.min() < 0 or values.max() >= len(self.class_set)):
            raise CloudFormatError(
                f"segmenter 'labels': field {self.label_field!r} holds ids {values.min():g}..{values.max():g}; "
                f"class set {self.class_set.name} has ids 0..{len(self.class_set) - 1}"
            )
        return values.astype(np.int64)


class NoSegmenter:
    """Every point class 0 (nothing to detect): the plumbing without any model."""

    reads: Literal["points"] = "points"
    #: calls of the segmenter a pipeline warm-up makes (a network replayed as CUDA graphs needs 3)
    warm_up_calls: int = 1

    def segment_points(self, cloud: np.ndarray) -> np.ndarray:
        return np.zeros(len(cloud), dtype=np.int64)


#: every segmenter a pipeline may run (a string: the network segmenters are only imported for type checking).
Segmenter: TypeAlias = "NetworkSegmenter | OnnxSegmenter | PointSegmenter | LabelFieldSegmenter | NoSegmenter"


def make_segmenter(config: PipelineConfig, network: nn.Module | None = None) -> Segmenter:
    """The segmenter ``config.segmenter.kind`` selects (loading weights for ``model`` unless given one)."""
    settings = config.segmenter
    if settings.kind == "labels":
        return LabelFieldSegmenter(settings.label_field, config.classes)
    if settings.kind == "none":
        return NoSegmenter()
    if settings.runtime != "torch":
        from perception_ws.models.onnx_segmenter import load_onnx_segmenter  # no torch on this path

        return load_onnx_segmenter(config)
    if is_point_model(settings.model):
        from perception_ws.models.point_segmenter import load_point_network, point_segmenter
        from perception_ws.models.spvnas.point_model import PointVoxelSegmenter

        if network is not None and not isinstance(network, PointVoxelSegmenter):
            raise WeightsError(f"segmenter.model {settings.model!r} needs a point-voxel network; got {type(network)}")
        return point_segmenter(network or load_point_network(config), settings, config.classes)
    from perception_ws.models.network_segmenter import load_network, network_segmenter  # torch: only for a model

    return network_segmenter(network or load_network(config), settings, config.classes)
