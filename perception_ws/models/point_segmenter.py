"""The point-voxel networks (SPVCNN, SPVNAS) as a pipeline segmenter (``segmenter.model: spvcnn|spvnas``).

:class:`PointSegmenter` labels every point of a cloud directly: no range image, no projection, no hidden points
(the range-image :class:`~perception_ws.models.network_segmenter.NetworkSegmenter`'s path). :func:`load_point_network`
loads the weights ``segmenter.weights`` names and refuses, in one line, a file of another family or model.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from perception_ws.cloud import as_structured, finite_mask, xyz_array
from perception_ws.config.perception import PipelineConfig, Precision, SegmenterConfig
from perception_ws.errors import WeightsError
from perception_ws.labels import ClassSet
from perception_ws.models.network_segmenter import PRECISION_DTYPES, effective_precision
from perception_ws.models.spvnas.point_model import PointVoxelSegmenter
from perception_ws.models.weights import check_weights_model, load_point_weights
from perception_ws.torch_device import device_clock


class PointSegmenter:
    """An SPVCNN / SPVNAS network: a class id per point of the cloud (0 where a point is not finite)."""

    #: the pipeline hands this segmenter the cloud itself (see Pipeline._classes)
    reads: Literal["points"] = "points"
    #: calls of the segmenter a pipeline warm-up makes (a network replayed as CUDA graphs needs 3)
    warm_up_calls: int = 1

    def __init__(
        self,
        network: PointVoxelSegmenter,
        device: str,
        class_set: ClassSet,
        threads: int = 0,
        precision: Precision = "fp32",
    ) -> None:
        if network.num_classes != len(class_set):
            raise WeightsError(
                f"the {network.name} network predicts {network.num_classes} classes but class_set {class_set.name} "
                f"has {len(class_set)}; use weights trained for this class set"
            )
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise WeightsError(f"segmenter.device = {device!r} but torch sees no CUDA device; use 'cpu'")
        if threads > 0:  # process-wide: torch has one intra-op pool
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        #: bf16 / fp16: the sparse convs' matmuls run under autocast (the gathers, scatters and hashing stay exact)
        self.precision = effective_precision(precision, self.device)
        self.summary = f"{network.name} on {device}, {self.precision}, voxels {network.voxel_size:g} m" + (
            f" (asked for {precision}: not supported natively here)" if self.precision != precision else ""
        )
        #: milliseconds of the last call's network run (the pipeline reports it beside its own stages)
        self.stage_ms: dict[str, float] = {}

    def segment_points(self, cloud: np.ndarray) -> np.ndarray:
        """(N,) class ids of the cloud's points; intensity 0 where the cloud has no such field."""
        structured = as_structured(cloud)
        names = structured.dtype.names or ()
        intensity = structured["intensity"].reshape(-1) if "intensity" in names else np.zeros(structured.size)
        finite = finite_mask(structured).reshape(-1)
        labels = np.zeros(structured.size, dtype=np.int64)
        labels[finite] = self.classify(xyz_array(structured)[finite], np.asarray(intensity)[finite])
        return labels

    def classify(self, xyz: np.ndarray, intensity: np.ndarray) -> np.ndarray:
        """(N,) class ids of finite points ``xyz`` (N, 3) metres with ``intensity`` (N,)."""
        if len(xyz) == 0:
            return np.zeros(0, dtype=np.int64)
        points = torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32)).to(self.device)
        feats = torch.cat([points, torch.from_numpy(intensity.astype(np.float32)).to(self.device)[:, None]], 1)
        dtype = PRECISION_DTYPES[self.precision]
        with torch.inference_mode(), torch.autocast(self.device.type, dtype, enabled=dtype != torch.float32):
            start = device_clock(self.device)
            classes = self.network.forward_points(points, feats).float().argmax(dim=1)
            self.stage_ms = {"network": (device_clock(self.device) - start) * 1e3}
        return classes.cpu().numpy().astype(np.int64)


def point_segmenter(network: PointVoxelSegmenter, settings: SegmenterConfig, class_set: ClassSet) -> PointSegmenter:
    """The point segmenter the ``segmenter.*`` settings describe (device, threads, precision), running ``network``."""
    return PointSegmenter(network, settings.device, class_set, threads=settings.threads, precision=settings.precision)


def load_point_network(config: PipelineConfig) -> PointVoxelSegmenter:
    """The ``segmenter.model`` network from ``segmenter.weights`` (point models ship no default weights)."""
    settings = config.segmenter
    if not settings.weights:
        raise WeightsError(
            f"segmenter.model {settings.model!r} needs segmenter.weights: a .pt trained with `perception train "
            f"--model {settings.model}` (or exported by `perception search`); none ship with the package"
        )
    check_weights_model(settings.weights, settings.model)
    return load_point_weights(settings.weights, device=settings.device)
