"""Score a segmentation network on labelled scans: class- and instance-level P/R/IoU (docs/algorithms.md §8), runtime.

For every frame of a source (any reader of :mod:`perception_ws.io`):

1. the view (:func:`prepare_frame`): a source that stores its range image with a pixel per point (the
   released SqueezeSeg ``.npy`` frames, front 90 deg, 64 x 512; simulated datasets, their stored sweep) is
   fed as stored; a KITTI object frame is projected to the front 90 deg at 512 columns (its boxes, hence its
   labels, exist only inside the camera's view); any other scan (SemanticKITTI, odometry, PCD) to the full
   turn at 2048 columns (the same 0.176 deg column pitch, which the width-agnostic model was trained at).
   ``fov_deg`` forces a view (512 columns per 90 deg). Only the points in the view are scored, and of a
   SemanticKITTI-labelled scan only the labelled ones (learning id 0 "unlabeled" carries no ground truth);
2. the prediction: the network (and its CRF) on the image, through the pipeline's own
   :class:`~perception_ws.models.network_segmenter.NetworkSegmenter` (batch norm folded, channels-last: what the node
   runs), pixel classes carried back to every scored point (:meth:`Projection.labels_to_points`); a point-voxel
   network (SPVCNN, SPVNAS) labels the scored points themselves, through the node's
   :class:`~perception_ws.models.point_segmenter.PointSegmenter` (no image, no hidden points; of a SqueezeSeg
   ``.npy`` frame the points are its pixels);
3. class-level scores over points, summed over frames (KITTI-3, the background included as SqueezeSeg
   does); instance-level scores with predicted instances from per-class DBSCAN of the predicted labels
   (:func:`~perception_ws.instances.cluster_by_class`, radius 0.3 m, 20 points); the ground-truth
   instances are the source's own ids (KITTI boxes, SemanticKITTI and simulator instance ids), or, where a
   source has none (the SqueezeSeg frames), the same DBSCAN run on the ground-truth labels;
4. detections scored as boxes, where the source has ground-truth boxes (KITTI object label_2, simulated
   datasets: :mod:`perception_ws.detection_eval`): the node's detection stage (ground removal, clustering, box
   fitting of :class:`~perception_ws.pipeline.Pipeline`, with the ``detection.*`` settings of the given
   :class:`~perception_ws.config.PipelineConfig`) on the predicted labels of the scored points, matched per class
   at BEV IoU >= 0.5, >= 0.25 and centre in box (:mod:`perception_ws.detection_metrics`).

Runtime, per frame, mean ± std: ``network`` is the segmenter alone (forward, CRF, softmax/argmax);
``frame`` adds the view (projection) and carrying the labels back to the points. Reading files and scoring
are left out of both. The first frame is run once untimed first (kernel compilation, allocator warm-up).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perception_ws.calib.sensors import load_sensor
from perception_ws.config import PipelineConfig
from perception_ws.config.perception import SegmenterConfig
from perception_ws.detection_eval import BOX_SOURCES, BoxSource, LabelDetector, box_truth
from perception_ws.detection_metrics import DetectionMetrics
from perception_ws.errors import DatasetError, PerceptionError
from perception_ws.instances import ClusterConfig, cluster_by_class
from perception_ws.io.registry import Dataset, find_reader, open_dataset
from perception_ws.labels import KITTI3
from perception_ws.metrics import ClassMetrics, InstanceMetrics, RuntimeStats, Scores, format_table
from perception_ws.models.weights import json_safe
from perception_ws.projection import RowSource, project, range_image
from perception_ws.scan import Scan

if TYPE_CHECKING:
    from torch import nn

    from perception_ws.models.spvnas.point_model import PointVoxelSegmenter

#: the KITTI / SqueezeSeg range image: 512 columns over the front 90 degrees.
KITTI_FOV_DEG = 90.0
KITTI_WIDTH = 512
FULL_TURN_WIDTH = 2048
DEFAULT_SENSOR = "hdl64e"
OBJECT_CLASSES = tuple(KITTI3.names[i] for i in KITTI3.object_ids)
SEMANTIC_UNLABELED = 0


@dataclass(frozen=True, eq=False)
class EvalFrame:
    """One frame as the evaluation sees it: the network's input and the scored points."""

    name: str
    #: (H, W, 6) float32 x, y, z, intensity, range, mask; empty pixels 0.
    image: np.ndarray
    #: (M, 3) float32 coordinates of the scored points (in view, labelled).
    xyz: np.ndarray
    #: (M,) float32 intensity of the scored points (0 where the scan has none): a point network's input.
    intensity: np.ndarray
    #: (M,) KITTI-3 ground truth of the scored points; None for an unlabelled scan.
    labels: np.ndarray | None
    #: (M,) ground-truth instance ids (0: none); None where the source has no instance ids.
    instances: np.ndarray | None
    #: (H, W) class image -> (M,) class of every scored point.
    to_points: Callable[[np.ndarray], np.ndarray]
    #: which view this is, in words.
    view: str


#: a predictor: classes (M,) of a frame's scored points. :class:`NetworkPredictor` is the real one.
Predict = Callable[[EvalFrame], np.ndarray]


def view_of(scan: Scan, fov_deg: float | None = None) -> tuple[float, int] | None:
    """(field of view in degrees, columns) to project ``scan`` to, or None to use its stored range image."""
    if fov_deg is not None:
        if not 0 < fov_deg <= 360:
            raise PerceptionError(f"fov_deg {fov_deg!r}: expected a width in degrees in (0, 360]")
        return float(fov_deg), max(1, round(fov_deg * KITTI_WIDTH / KITTI_FOV_DEG))
    if scan.range_image is not None and scan.pixels is not None:
        return None
    if scan.boxes or (scan.calib is not None and scan.image is not None):
        return KITTI_FOV_DEG, KITTI_WIDTH  # KITTI object frames: labelled inside the camera's view only
    return 360.0, FULL_TURN_WIDTH


def prepare_frame(
    scan: Scan, fov_deg: float | None = None, sensor: str | None = None, row_source: RowSource = "auto"
) -> EvalFrame:
    """The view of ``scan`` to evaluate (see the module doc); ``sensor`` when the scan names none."""
    view = view_of(scan, fov_deg)
    if view is None:
        assert scan.range_image is not None and scan.pixels is not None  # view_of checked
        height, width = scan.range_image.shape[:2]
        image = range_image(scan.points, scan.pixels, height, width)
        rows, cols = scan.pixels[:, 0], scan.pixels[:, 1]
        scored = np.ones(len(scan), dtype=bool)
        to_all: Callable[[np.ndarray], np.ndarray] = lambda classes: classes[rows, cols]  # noqa: E731
        described = f"the stored {height} x {width} range image"
    else:
        fov, width = view
        model = load_sensor(scan.sensor or sensor or DEFAULT_SENSOR)
        projection = project(scan, model, fov_deg=fov, width=width, row_source=row_source)
        image = projection.image
        scored = projection.in_view.copy()
        to_all = projection.labels_to_points
        described = f"{model.name} {projection.height} x {width}, {fov:g} deg centred on +x"
    if scan.labels is not None and scan.semantic is not None:
        scored &= scan.semantic != SEMANTIC_UNLABELED
    index = np.flatnonzero(scored)
    return EvalFrame(
        name=scan.name,
        image=image,
        xyz=scan.xyz[index],
        intensity=_intensity(scan)[index],
        labels=None if scan.labels is None else np.asarray(scan.labels)[index].astype(np.int64),
        instances=None if scan.instances is None else np.asarray(scan.instances)[index].astype(np.int64),
        to_points=lambda classes: to_all(classes)[index],
        view=described,
    )


def _intensity(scan: Scan) -> np.ndarray:
    names = scan.points.dtype.names or ()
    return np.asarray(scan.points["intensity"] if "intensity" in names else np.zeros(len(scan)), dtype=np.float32)


class PointPredictor:
    """Runs a point-voxel network on a frame's scored points, as the node's point segmenter does."""

    def __init__(
        self, network: PointVoxelSegmenter, device: str = "cpu", settings: SegmenterConfig | None = None
    ) -> None:
        from perception_ws.models.point_segmenter import point_segmenter

        settings = (settings or SegmenterConfig()).replace(device=device)
        self.segmenter = point_segmenter(network, settings, KITTI3)
        self.network_ms = RuntimeStats("network")

    def __call__(self, frame: EvalFrame) -> np.ndarray:
        with self.network_ms.timer():
            return self.segmenter.classify(frame.xyz, frame.intensity)


class NetworkPredictor:
    """Runs a network on a frame's image, the way the pipeline does; times the network alone.

    ``settings``: how the network runs (``segmenter.threads``, ``precision``, ``compile``, ``crf_iterations``;
    default: the node's defaults); its device is ``device``.
    """

    def __init__(self, network: nn.Module, device: str = "cpu", settings: SegmenterConfig | None = None) -> None:
        from perception_ws.models.network_segmenter import network_segmenter

        settings = (settings or SegmenterConfig()).replace(device=device)
        self.segmenter = network_segmenter(network, settings, KITTI3)
        self.network_ms = RuntimeStats("network")

    def __call__(self, frame: EvalFrame) -> np.ndarray:
        with self.network_ms.timer():
            classes, _ = self.segmenter.segment_image(frame.image)
        return frame.to_points(classes)


@dataclass
class EvaluationResult:
    """Scores of one source (fractions; :meth:`to_json` gives percent) and per-frame runtimes."""

    source: str
    reader: str
    frames: int
    labelled_frames: int
    view: str
    #: every KITTI-3 class (unknown included); None when no frame had labels.
    class_level: dict[str, Scores] | None
    #: the object classes; None when no frame had labels or instances were not asked for.
    instance_level: dict[str, Scores] | None
    network_ms: RuntimeStats
    frame_ms: RuntimeStats
    notes: list[str] = field(default_factory=list)
    #: detections scored as boxes; None where the source has no boxes or boxes were not asked for.
    detection: DetectionMetrics | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"frames", "class", "instance", "detection", "runtime_ms": network mean/std, …}``, percent, NaN -> null."""
        return json_safe(
            {
                "frames": self.frames,
                "class": _percent(self.class_level),
                "instance": _percent(self.instance_level),
                "detection": None if self.detection is None else self.detection.to_json(),
                "runtime_ms": {"mean": self.network_ms.mean, "std": self.network_ms.std},
                "runtime_frame_ms": {"mean": self.frame_ms.mean, "std": self.frame_ms.std},
                "labelled_frames": self.labelled_frames,
                "source": self.source,
                "reader": self.reader,
                "view": self.view,
                "notes": self.notes,
            }
        )

    def table(self) -> str:
        """Header lines, the P / R / IoU table (metrics.format_table) and the runtimes."""
        lines = [f"{self.source}: {self.reader}, {self.frames} frame(s), view: {self.view}"]
        if self.class_level is None:
            lines.append("no labels to score: runtime only")
        else:
            lines.append(format_table(self.class_level, self.instance_level, mean_over=OBJECT_CLASSES))
        if self.detection is not None:
            lines.append(self.detection.table())
        if len(self.network_ms):
            lines.append(f"runtime per frame: {self.network_ms.summary()}")
        lines.append(f"runtime per frame: {self.frame_ms.summary()} (frame: view + network + labels to points)")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def evaluate(
    predict: Predict | nn.Module,
    data: str | Path | Dataset,
    *,
    instances: bool = True,
    device: str = "cpu",
    fov_deg: float | None = None,
    sensor: str | None = None,
    row_source: RowSource = "auto",
    max_frames: int | None = None,
    cluster: ClusterConfig | None = None,
    progress: bool = False,
    warmup: bool = True,
    boxes: bool = True,
    detection: PipelineConfig | None = None,
    segmenter: SegmenterConfig | None = None,
    node_labels: bool = False,
) -> EvaluationResult:
    """Evaluate a network (an ``nn.Module`` with 4 KITTI-3 outputs, e.g. from ``load_weights``) or any
    ``predict(frame) -> classes`` on every frame of ``data`` (a path any reader opens, or a Dataset).

    ``boxes``: also score detections as boxes where the source has boxes, made with ``detection``'s
    ``detection.*`` settings (default: the node's defaults); ``cluster`` is the instance-level clustering only.
    ``segmenter``: how a network runs (:class:`NetworkPredictor`). ``node_labels``: score the labels the node
    publishes (``detection``'s detection stage run on the predictions, with its ``consistent_labels``) instead
    of the predictions themselves; boxes are made from the predictions either way.
    """
    from tqdm import tqdm

    if sensor is not None:
        load_sensor(sensor)  # refused now, even where every scan names its own sensor and it goes unused
    dataset, source, reader = _open(data)
    count = len(dataset) if max_frames is None else min(len(dataset), max_frames)
    if count == 0:
        why = "; ".join(dataset.notes) or "it is empty"
        raise DatasetError(f"{source}: no frames to evaluate ({why})")
    predictor = _predictor(predict, device, segmenter)
    if warmup:
        predictor(prepare_frame(dataset[0], fov_deg, sensor, row_source))
    network_ms = RuntimeStats("network")  # stays empty for a predictor that is no network
    if isinstance(predictor, NetworkPredictor | PointPredictor):
        predictor.network_ms = network_ms  # the warm-up run is not counted
    scores = _Scoring(instances, cluster or ClusterConfig())
    box_source = BOX_SOURCES.get(reader) if boxes else None
    box_scores = _BoxScoring(box_source, detection) if box_source is not None else None
    published = LabelDetector(detection) if node_labels else None
    frame_ms = RuntimeStats("frame")
    view = ""
    for index in tqdm(range(count), desc="eval", unit="frame", disable=not progress, file=sys.stderr):
        scan = dataset[index]
        with frame_ms.timer():
            frame = prepare_frame(scan, fov_deg, sensor, row_source)
            predicted = np.asarray(predictor(frame)).astype(np.int64)
        view = frame.view
        scores.add(frame, predicted if published is None else published.labels(frame.xyz, predicted))
        if box_scores is not None:
            box_scores.add(scan, frame, predicted)
    return EvaluationResult(
        source=source,
        reader=reader,
        frames=count,
        labelled_frames=scores.labelled,
        view=view,
        class_level=scores.classes.scores() if scores.labelled else None,
        instance_level=scores.instances.scores() if scores.labelled and instances else None,
        network_ms=network_ms,
        frame_ms=frame_ms,
        notes=[*dataset.notes, *scores.notes(count), *_box_notes(boxes, reader, box_scores), *_label_notes(published)],
        detection=box_scores.metrics if box_scores is not None and box_scores.metrics.frames else None,
    )


class _BoxScoring:
    """Detections of the node's detection stage on the predicted labels, matched to a source's boxes."""

    def __init__(self, source: BoxSource, config: PipelineConfig | None) -> None:
        config = config or PipelineConfig()
        if config.classes != KITTI3:
            raise PerceptionError(
                f"the detection config's class_set is {config.class_set!r}; the evaluation scores KITTI-3 "
                "(class_set kitti3)"
            )
        self.source = source
        self.detector = LabelDetector(config)
        self.metrics = DetectionMetrics(KITTI3)

    def add(self, scan: Scan, frame: EvalFrame, predicted: np.ndarray) -> None:
        truth = box_truth(scan, self.source)
        if truth is not None:
            self.metrics.update(self.detector(frame.xyz, predicted), truth)


def _label_notes(published: LabelDetector | None) -> list[str]:
    if published is None:
        return []
    rule = "on" if published.config.detection.consistent_labels else "off"
    return [f"labels scored as the node publishes them (detection.consistent_labels {rule})"]


def _box_notes(asked: bool, reader: str, scoring: _BoxScoring | None) -> list[str]:
    if not asked:
        return []
    if scoring is None:
        return [f"no boxes: {reader} frames carry no ground-truth boxes, detections are not scored"]
    if scoring.metrics.frames == 0:
        return ["no boxes: no frame had labels, detections are not scored"]
    return []


class _Scoring:
    """Class- and instance-level sums over the labelled frames."""

    def __init__(self, instances: bool, cluster: ClusterConfig) -> None:
        self.classes = ClassMetrics(KITTI3)
        self.instances = InstanceMetrics(KITTI3)
        self.with_instances = instances
        self.cluster = cluster
        self.labelled = 0
        self.derived = 0  # frames whose ground-truth instances came from clustering

    def add(self, frame: EvalFrame, predicted: np.ndarray) -> None:
        if frame.labels is None:
            return
        if predicted.shape != frame.labels.shape:
            raise PerceptionError(
                f"frame {frame.name!r}: the predictor gave {predicted.shape[0]} classes for {len(frame.labels)} "
                "scored points; expected one per point"
            )
        self.labelled += 1
        self.classes.update(frame.labels, predicted)
        if not self.with_instances:
            return
        gt_instances = frame.instances
        if gt_instances is None:
            gt_instances = cluster_by_class(frame.xyz, frame.labels, KITTI3, self.cluster)
            self.derived += 1
        pred_instances = cluster_by_class(frame.xyz, predicted, KITTI3, self.cluster)
        self.instances.update(frame.labels, gt_instances, predicted, pred_instances)

    def notes(self, frames: int) -> list[str]:
        out = []
        if self.labelled == 0:
            out.append("no labels to score in this source: runtime only")
        elif self.labelled < frames:
            out.append(f"{frames - self.labelled} of {frames} frames have no labels: scored {self.labelled}")
        if self.derived:
            out.append(
                f"{self.derived} frame(s) carry no ground-truth instance ids: their instances are DBSCAN clusters "
                "of the ground-truth labels (the same clustering as the predictions)"
            )
        return out


def _open(data: str | Path | Dataset) -> tuple[Dataset, str, str]:
    if isinstance(data, str | Path):
        path = Path(data).expanduser()
        return open_dataset(path), str(path), find_reader(path).name
    return data, str(getattr(data, "path", "")), type(data).__name__


def _predictor(predict: Predict | nn.Module, device: str, settings: SegmenterConfig | None) -> Predict:
    from torch import nn

    if isinstance(predict, nn.Module):
        from perception_ws.models.spvnas.point_model import PointVoxelSegmenter

        if isinstance(predict, PointVoxelSegmenter):
            return PointPredictor(predict, device, settings)
        return NetworkPredictor(predict, device, settings)
    if not callable(predict):
        raise PerceptionError(f"evaluate: expected a network or a predict(frame) callable, got {type(predict)}")
    return predict


def _percent(scores: dict[str, Scores] | None, names: Sequence[str] = OBJECT_CLASSES) -> dict[str, Any] | None:
    if scores is None:
        return None
    out = {}
    for name in names:
        p, r, i = scores[name].as_percent()
        out[name] = {"precision": p, "recall": r, "iou": i}
    return out


__all__ = [
    "EvalFrame",
    "EvaluationResult",
    "NetworkPredictor",
    "Predict",
    "evaluate",
    "prepare_frame",
    "view_of",
]
