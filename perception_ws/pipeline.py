"""`Pipeline`: the whole perception algorithm on one scan, readable top to bottom (docs/design.md, data flow).

    points ──► range image (projection) ──► class per pixel (network + CRF) ──► class per point
           ──► objects (ground removal, per-class clustering, box fitting) ──► instance id per point
           ──► tracks (Kalman filter + assignment)

The segmenter is pluggable (``segmenter.kind``): ``model`` runs the network (trained weights are
required: a missing or bad weights file is a :class:`~perception_ws.errors.WeightsError`); ``labels``
takes the class ids the input already carries in a field (ground truth, or labels from elsewhere),
which lets the rest of the pipeline run on labelled data without weights; ``none`` labels every point
0 (nothing is detected: the plumbing alone, e.g. to measure it). The same object serves the ROS
node, the CLI and the benchmarks, so what is measured is what runs. No ROS in here.

Tracking frame: without a pose the tracker works in the sensor frame, so on a moving vehicle a parked
car moves and track velocities are relative to the ego. Given ``fixed_from_sensor`` (4x4, sensor ->
a fixed frame such as ``odom`` at the scan's stamp), the detections are tracked in the fixed frame and
the tracks are turned back into the sensor frame: every output stays in the scan's frame, but a
track's velocity (and acceleration) is its motion over the ground, in sensor axes (as the simulator's
ground truth). With ``tracking.odometry: lidar`` and no pose given, the pipeline finds the pose itself
from the scans (:mod:`perception_ws.odometry`, ICP scan to scan) and tracks in that frame. A pipeline
never mixes frames: a scan tracked in another frame than the one before (a pose given after none, or
the other way round) resets the tracker first, as time going backwards does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from perception_ws.boxes import Box3D, transform_box
from perception_ws.calib.camera import Extrinsic
from perception_ws.calib.sensors import load_sensor
from perception_ws.cloud import as_structured, finite_mask, xyz_array
from perception_ws.config import PipelineConfig
from perception_ws.instances import DetectConfig, Tracker, detect, ground_mask
from perception_ws.instances.consistency import consistent_labels
from perception_ws.kernels.box_points import first_box_ids
from perception_ws.labels import ClassSet
from perception_ws.odometry import ScanOdometry
from perception_ws.projection import Projection, project
from perception_ws.timing import stage

if TYPE_CHECKING:
    from torch import nn

    from perception_ws.device_runtime import PinnedTransfers
    from perception_ws.models.network_segmenter import NetworkSegmenter
    from perception_ws.models.scan_segmenters import Segmenter

#: stage names in the order they run (keys of :attr:`PipelineResult.timings_ms`, plus "total"). Parts of a stage
#: follow it: ``network`` and ``crf`` (the torch network segmenter's) are inside ``segmentation``; ``ground``,
#: ``clustering`` and ``boxes`` inside ``detection`` (``ground`` beside ``segmentation`` instead when the network
#: runs on a GPU: see ``Pipeline._ground_ahead``).
STAGES = (
    "projection",
    "segmentation",
    "network",
    "crf",
    "back_projection",
    "detection",
    "ground",
    "clustering",
    "boxes",
    "instances",
    "odometry",
    "tracking",
)
#: points this close outside a fitted box still belong to it (box edges are fitted to the points).
_BOX_MARGIN_M = 0.01
TrackStateName = Literal["tentative", "confirmed", "lost"]
#: where the tracker works: the scan's frame, a fixed frame the caller gives the pose in, or lidar odometry's
TrackingFrame = Literal["sensor", "given", "odometry"]


@dataclass(frozen=True)
class TrackInfo:
    """One live track after an update: its filtered box and where it is in its life cycle."""

    box: Box3D
    state: TrackStateName
    #: scans since the track was created (1 on its first scan) and how many of them it was matched in.
    age: int
    hits: int
    #: filtered acceleration of the box centre (m/s^2); zero with the constant-velocity model.
    acceleration: np.ndarray


@dataclass
class PipelineResult:
    """Everything the pipeline found in one scan; per-point arrays follow the input's point order."""

    #: (N,) uint16 class id per input point (ids of ``class_set``; 0 for points with NaN/Inf coordinates).
    labels: np.ndarray
    #: (N,) uint32 instance per point: k means ``detections[k - 1]``; 0 for points of no detection.
    instances: np.ndarray
    detections: list[Box3D]
    #: the tracks the tracker reports (confirmed ones matched in this scan, plus lost ones if configured).
    tracks: list[Box3D]
    #: every live track, tentative, confirmed and lost alike, by id.
    live_tracks: list[TrackInfo]
    #: milliseconds per stage (:data:`STAGES`, a skipped stage is absent) and "total".
    timings_ms: dict[str, float]
    class_set: ClassSet
    #: input points with finite coordinates (the others are left out of every stage).
    num_valid: int = 0
    #: the tracker was reset before this scan: time went backwards (e.g. a bag looped), or the tracking frame
    #: changed (a scan with ``fixed_from_sensor`` after one without, or the other way round).
    tracker_reset: bool = False
    #: the sensor's pose (4x4, scan frame -> odometry's frame) lidar odometry found for this scan (its frame starts
    #: at the first scan, and again after a tracker reset); None without lidar odometry (tracking.odometry none).
    odometry_pose: np.ndarray | None = None


class Pipeline:
    """``Pipeline(config).process(points, stamp_s[, fixed_from_sensor]) -> PipelineResult``; see the module doc.

    ``network``: an already built segmentation model to run instead of loading weights (e.g. one being
    trained); only used when ``segmenter.kind`` is ``model``.
    """

    def __init__(self, config: PipelineConfig | None = None, network: nn.Module | None = None) -> None:
        from perception_ws.models.scan_segmenters import make_segmenter  # a model segmenter loads torch when built

        self.config = config or PipelineConfig()
        self.class_set = self.config.classes
        self.sensor = load_sensor(self.config.sensor.model)
        self.detect_config = self.config.detect_config()
        self.segmenter: Segmenter = make_segmenter(self.config, network)
        #: segmenter.projection device: the network segmenter, and the pinned buffers between the host and its device
        self._on_device: tuple[NetworkSegmenter, PinnedTransfers] | None = None
        if self.config.segmenter.projection == "device":
            self._on_device = _device_path(self.segmenter)
        #: ground removal needs the coordinates only: while a GPU segments the scan, a CPU thread removes the
        #: ground (on a CPU the network already has every core, so it stays in line there)
        segmenter = self.config.segmenter
        on_gpu = segmenter.kind == "model" and segmenter.device != "cpu"
        self._ground_ahead = ThreadPoolExecutor(1, "ground") if on_gpu and self.detect_config.remove_ground else None
        self.tracker = Tracker(self.config.tracking.tracker_config()) if self.config.tracking.enabled else None
        lidar_odometry = self.tracker is not None and self.config.tracking.odometry == "lidar"
        #: the sensor's motion from the scans themselves (tracking.odometry: lidar), when no pose is given
        self.odometry = ScanOdometry() if lidar_odometry else None
        self._frame = 0
        self._odometry_pose: np.ndarray | None = None  # what lidar odometry found for the scan in process
        self._last_stamp_s: float | None = None
        self._tracking_frame: TrackingFrame | None = None  # the frame the tracks are in; None: none since a reset
        self._born: dict[int, int] = {}  # track id -> frame it was created in (for TrackInfo.age)

    def process(
        self, points: Any, stamp_s: float, fixed_from_sensor: np.ndarray | None = None, track: bool = True
    ) -> PipelineResult:
        """Run every stage on one scan (a structured array, an (N, 3|4) array or a Scan) taken at ``stamp_s``.

        ``fixed_from_sensor``: the sensor's pose (4x4) in a fixed frame at ``stamp_s``, to track in that frame
        (see the module doc); a malformed pose is a CalibrationError. ``track=False`` leaves the tracker out of
        this scan (untouched; no tracks reported), e.g. while the fixed frame's pose is not known yet.
        """
        pose = None if fixed_from_sensor is None else Extrinsic(fixed_from_sensor, "fixed_from_sensor")
        cloud = as_structured(points).reshape(-1)
        finite = finite_mask(cloud)
        timings: dict[str, float] = {}
        start = time.perf_counter()

        # 1-3. semantic class of every point (and, with the network on a GPU, the ground meanwhile)
        xyz, keep = _finite_xyz(cloud, finite)
        ground = self._ground_ahead.submit(_timed_ground, xyz, self.detect_config) if self._ground_ahead else None
        labels, confidence = self._classes(cloud, finite, timings)
        # 4. objects: per-class clustering (after ground removal, if configured), one fitted box per object;
        #    with detection.consistent_labels, a detected class stays only on the points of its detections
        detections, instances, labels = self._objects(cloud, (xyz, keep), labels, confidence, timings, ground)

        # 5. tracks (in the fixed frame if given one or odometry finds one, reported in the sensor frame)
        tracks: list[Box3D] = []
        back: np.ndarray | None = None  # the tracking frame -> the sensor frame (None: the same)
        reset = False
        self._odometry_pose = None
        if self.tracker is not None and track:
            tracks, back, reset = self._track(cloud[finite], detections, stamp_s, pose, timings)
        timings["total"] = (time.perf_counter() - start) * 1e3
        self._frame += 1
        return PipelineResult(
            labels=labels,
            instances=instances,
            detections=detections,
            tracks=tracks,
            live_tracks=self._live_tracks(back) if track else [],
            timings_ms=timings,
            class_set=self.class_set,
            num_valid=int(finite.sum()),
            tracker_reset=reset,
            odometry_pose=self._odometry_pose,
        )

    def process_batch(self, scans: Sequence[Any], stamps_s: Sequence[float]) -> list[PipelineResult]:
        """:meth:`process` with ``track=False`` on several scans, the network run once on all their range
        images: offline labelling on a GPU, which one scan at a time leaves mostly idle. Each result is what
        ``process(scan, stamp, track=False)`` gives (up to float rounding in the batched network kernels);
        a scan's ``segmentation`` time is its share of the batch's.
        """
        if len(scans) != len(stamps_s):
            raise ValueError(f"process_batch: {len(scans)} scans but {len(stamps_s)} stamps")
        if self.segmenter.reads != "range_image" or len(scans) < 2:
            return [self.process(scan, stamp, track=False) for scan, stamp in zip(scans, stamps_s, strict=True)]
        clouds = [as_structured(scan).reshape(-1) for scan in scans]
        timings: list[dict[str, float]] = [{} for _ in clouds]
        projections = [self._project(cloud, times) for cloud, times in zip(clouds, timings, strict=True)]
        shared: dict[str, float] = {}
        with stage(shared, "segmentation"):  # one call: every image has the config's height and width
            classes, confidences = self.segmenter.segment_images(np.stack([p.image for p in projections]))
        shared.update(_segmenter_parts(self.segmenter))
        results = []
        for i, (cloud, projection, times) in enumerate(zip(clouds, projections, timings, strict=True)):
            begin = time.perf_counter()
            times.update({name: ms / len(clouds) for name, ms in shared.items()})
            finite = finite_mask(cloud)
            labels, confidence = self._back_project(projection, classes[i], confidences[i], finite, times)
            detections, instances, labels = self._objects(cloud, _finite_xyz(cloud, finite), labels, confidence, times)
            own_ms = (time.perf_counter() - begin) * 1e3 + times["projection"]
            times["total"] = own_ms + times["segmentation"]
            self._frame += 1
            results.append(
                PipelineResult(
                    labels=labels,
                    instances=instances,
                    detections=detections,
                    tracks=[],
                    live_tracks=[],
                    timings_ms=times,
                    class_set=self.class_set,
                    num_valid=int(finite.sum()),
                    tracker_reset=False,
                    odometry_pose=None,
                )
            )
        return results

    def track(
        self, points: Any, detections: list[Box3D], stamp_s: float, fixed_from_sensor: np.ndarray | None = None
    ) -> tuple[list[Box3D], list[TrackInfo], bool]:
        """The tracking stage alone, on detections :meth:`process` found with ``track=False`` earlier.

        ``points``: the scan the detections came from (lidar odometry reads it). Returns what ``process``
        would have reported: (tracks, live tracks, tracker reset); nothing without tracking enabled.
        Offline labelling detects frames in any order (resumed, sharded) and tracks them in order here.
        """
        if self.tracker is None:
            return [], [], False
        pose = None if fixed_from_sensor is None else Extrinsic(fixed_from_sensor, "fixed_from_sensor")
        cloud = as_structured(points).reshape(-1)
        tracks, back, reset = self._track(cloud[finite_mask(cloud)], detections, stamp_s, pose, {})
        self._frame += 1
        return tracks, self._live_tracks(back), reset

    def _track(
        self,
        cloud: np.ndarray,
        detections: list[Box3D],
        stamp_s: float,
        pose: Extrinsic | None,
        timings: dict[str, float],
    ) -> tuple[list[Box3D], np.ndarray | None, bool]:
        """The tracker's step: (reported tracks in the sensor frame, tracking frame -> sensor frame, reset?)."""
        assert self.tracker is not None
        frame: TrackingFrame = "given" if pose is not None else "odometry" if self.odometry else "sensor"
        reset = self._reset_if_frame_changed(frame)
        reset = self._reset_if_time_went_back(stamp_s) or reset
        if frame == "odometry":
            assert self.odometry is not None
            with stage(timings, "odometry"):
                pose = Extrinsic(self.odometry.update(xyz_array(cloud)).pose, "lidar odometry")
                self._odometry_pose = pose.matrix
        with stage(timings, "tracking"):
            if pose is None:
                return self.tracker.update(detections, stamp_s), None, reset
            in_fixed = [transform_box(box, pose.matrix) for box in detections]
            sensor_xy = tuple(pose.translation[:2].tolist())  # the tracker's measurement noise is seen from here
            back = pose.inverse().matrix
            tracks = self.tracker.update(in_fixed, stamp_s, sensor_xy)
            return [transform_box(box, back) for box in tracks], back, reset

    @property
    def segmenter_summary(self) -> str:
        """' (network, device, precision)' for a network segmenter, else empty: for start-up log lines."""
        return f" ({self.segmenter.summary})" if self.segmenter.reads == "range_image" else ""

    def warm_up(self) -> None:
        """Run the stateless stages on a small synthetic scan (tracks untouched): numba kernels load and a
        compiled network compiles (about a minute on 2 cores) here, not on the first real scans. A network replayed
        as CUDA graphs runs as many times as it needs to record them (``warm_up_calls``); those graphs are the
        calling thread's, so call this in the thread that will process the scans.
        """
        rng = np.random.default_rng(0)
        field = self.config.segmenter.label_field or "label"  # kind 'labels' reads its class ids from this field
        cloud = np.zeros(4096, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4"), (field, "u2")])
        # a 2 m blob 10 m ahead (inside any field of view), every point of the first object class
        for axis, (low, high) in zip("xyz", ((9.0, 11.0), (-1.0, 1.0), (-1.5, 0.0)), strict=True):
            cloud[axis] = rng.uniform(low, high, len(cloud))
        cloud[field] = min(1, len(self.class_set) - 1)
        finite = finite_mask(cloud)
        for _ in range(self.segmenter.warm_up_calls):
            self._classes(cloud, finite, {})
        # given labels: clusters whatever the network says
        self._objects(cloud, _finite_xyz(cloud, finite), cloud[field], None, {})

    def _classes(
        self, cloud: np.ndarray, finite: np.ndarray, timings: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(N,) uint16 class per point (0 where not finite) and (N,) confidence per point (None without a network)."""
        if self.segmenter.reads != "range_image":
            with stage(timings, "segmentation"):
                labels = self.segmenter.segment_points(cloud)
            return np.where(finite, labels, 0).astype(np.uint16), None
        if self._on_device is not None:
            return self._classes_on_device(cloud, finite, timings)
        projection = self._project(cloud, timings)
        with stage(timings, "segmentation"):
            pixel_classes, pixel_confidence = self.segmenter.segment_image(projection.image)
        timings.update(_segmenter_parts(self.segmenter))
        return self._back_project(projection, pixel_classes, pixel_confidence, finite, timings)

    def _classes_on_device(
        self, cloud: np.ndarray, finite: np.ndarray, timings: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_classes` with the points, range image and labels on the network's device (segmenter.projection:
        device): the same three steps and results; stage times from CUDA events on a GPU, which nothing waits for
        but the download of the labels (the scan's one wait for the device's work; docs/models.md, GPU).
        """
        from perception_ws.device_projection import project_on_device  # torch: only on this path
        from perception_ws.device_runtime import StageClock

        assert self._on_device is not None
        segmenter, transfers = self._on_device
        clock = StageClock(transfers.device, events=True)
        settings = self.config.sensor
        with clock.stage("projection"):
            projection = project_on_device(
                cloud, transfers, self.sensor, settings.fov_deg, settings.width, row_source=settings.row_source
            )
        with clock.stage("segmentation"):
            pixel_classes, pixel_confidence = segmenter.segment_on_device(projection.image, clock)
        with clock.stage("back_projection"):
            point_labels = projection.labels_to_points(pixel_classes)
            point_confidence = projection.pixel_values_to_points(pixel_confidence)
        labels, confidence = transfers.download([point_labels, point_confidence])
        timings.update(clock.read())
        return np.where(finite, labels, 0).astype(np.uint16), confidence

    def _project(self, cloud: np.ndarray, timings: dict[str, float]) -> Projection:
        with stage(timings, "projection"):
            settings = self.config.sensor
            return project(cloud, self.sensor, settings.fov_deg, settings.width, row_source=settings.row_source)

    @staticmethod
    def _back_project(
        projection: Projection,
        pixel_classes: np.ndarray,
        pixel_confidence: np.ndarray,
        finite: np.ndarray,
        timings: dict[str, float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each point takes its pixel's class and confidence (a point out of view, or not finite: class 0)."""
        with stage(timings, "back_projection"):
            labels = projection.labels_to_points(pixel_classes)
            confidence = projection.pixel_values_to_points(pixel_confidence)
        return np.where(finite, labels, 0).astype(np.uint16), confidence

    def _objects(
        self,
        cloud: np.ndarray,
        points: tuple[np.ndarray, np.ndarray | None],
        labels: np.ndarray,
        confidence: np.ndarray | None,
        timings: dict[str, float],
        ground: Future[tuple[np.ndarray, float]] | None = None,
    ) -> tuple[list[Box3D], np.ndarray, np.ndarray]:
        """The detections (boxes), the (N,) uint32 instance id of every point and the labels to publish: with
        ``detection.consistent_labels`` and a network's labels, the points of a detected class outside its
        detections become 0. ``points``: :func:`_finite_xyz` of the cloud; ``ground``: its ground mask and
        milliseconds, being computed on another thread (None: computed here if configured).
        """
        xyz, keep = points
        with stage(timings, "detection"):
            point_labels = labels
            scores = confidence
            if keep is not None:
                point_labels = labels[keep]
                scores = None if confidence is None else confidence[keep]
            mask = None
            if ground is not None:
                mask, timings["ground"] = ground.result()
            detections = detect(xyz, point_labels, self.class_set, self.detect_config, scores, timings, mask)
            detections = [box for box in detections if box.score >= self.config.detection.min_score]
        with stage(timings, "instances"):
            ids = instance_ids(xyz, point_labels, detections)
            if keep is not None:
                instances = np.zeros(len(cloud), dtype=np.uint32)
                instances[keep] = ids
            else:
                instances = ids
            if self.config.segmenter.kind == "model":
                # predicted labels only: labels the input carries (segmenter.kind labels) are published as given
                labels = self.published_labels(labels, instances)
        return detections, instances, labels

    def published_labels(self, labels: np.ndarray, instances: np.ndarray) -> np.ndarray:
        """The labels to publish for predicted ``labels`` and their ``instances``: with
        ``detection.consistent_labels``, a detected class only on its detections' points (others 0).
        """
        if not self.config.detection.consistent_labels:
            return labels
        return consistent_labels(labels, instances, self.class_set, self.detect_config.classes)

    def reset(self) -> None:
        """Forget every track (a new recording starts); track ids keep counting up."""
        if self.tracker is not None:
            self.tracker.reset()
        self._born.clear()
        self._last_stamp_s = None
        self._tracking_frame = None
        if self.odometry is not None:
            self.odometry.reset()

    def _reset_if_time_went_back(self, stamp_s: float) -> bool:
        went_back = self._last_stamp_s is not None and stamp_s < self._last_stamp_s
        if went_back:
            self.reset()
        self._last_stamp_s = stamp_s
        return went_back

    def _reset_if_frame_changed(self, frame: TrackingFrame) -> bool:
        changed = self._tracking_frame is not None and frame != self._tracking_frame
        if changed:
            self.reset()
        self._tracking_frame = frame
        return changed

    def _live_tracks(self, back: np.ndarray | None) -> list[TrackInfo]:
        """Every live track, in the sensor frame (``back``: the tracking frame -> sensor frame, None if the same)."""
        if self.tracker is None:
            return []
        live = sorted(self.tracker.tracks, key=lambda t: t.id)
        ids = {t.id for t in live}
        self._born = {i: f for i, f in self._born.items() if i in ids}
        out = []
        for track in live:
            born = self._born.setdefault(track.id, self._frame - 1)
            acceleration = np.array([*track.acceleration, 0.0])
            box = track.box()
            if back is not None:
                box, acceleration = transform_box(box, back), back[:3, :3] @ acceleration
            out.append(TrackInfo(box, track.state.value, self._frame - born, track.hits, acceleration))
        return out


def _finite_xyz(cloud: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The finite points' coordinates as float64 (N', 3) and the mask that picked them (None: every point)."""
    # masks only where some point is not finite (the usual scan has none): each one copies the array;
    # coordinates leave the structured cloud once, as float32 (as published) widened to float64
    keep = None if finite.all() else finite
    xyz = xyz_array(cloud).astype(np.float64)
    return (xyz, None) if keep is None else (xyz[keep], keep)


def _timed_ground(xyz: np.ndarray, config: DetectConfig) -> tuple[np.ndarray, float]:
    """The ground mask of ``xyz`` and the milliseconds it took (runs on the pipeline's ground thread)."""
    timings: dict[str, float] = {}
    with stage(timings, "ground"):
        mask = ground_mask(xyz, config.ground)
    return mask, timings["ground"]


def instance_ids(xyz: np.ndarray, labels: np.ndarray, detections: list[Box3D]) -> np.ndarray:
    """(N,) uint32: ``k`` for the points of ``detections[k - 1]``'s class inside its box, else 0.

    Instance ids are tied to the published detections (not to the clustering's internal numbering),
    so a consumer joins the labelled cloud with the detection array by index. Where boxes of one class
    overlap, the earlier detection (more points) keeps the point.
    """
    if not detections:
        return np.zeros(len(xyz), dtype=np.uint32)
    # one pass over the points (kernels/box_points.py), testing each against the boxes of its class in order
    return first_box_ids(
        np.asarray(xyz, dtype=np.float64),
        np.asarray(labels),
        np.array([box.label for box in detections], dtype=np.int64),
        np.array([box.center for box in detections]),
        np.array([np.cos(box.yaw) for box in detections]),  # per box, as Box3D.to_local takes them
        np.array([np.sin(box.yaw) for box in detections]),
        np.array([box.size / 2.0 + _BOX_MARGIN_M for box in detections]),
    )


def _device_path(segmenter: Segmenter) -> tuple[NetworkSegmenter, PinnedTransfers]:
    """The torch network segmenter (the config's checks guarantee one) and pinned buffers to and from its device."""
    from perception_ws.device_runtime import PinnedTransfers
    from perception_ws.models.network_segmenter import NetworkSegmenter

    if not isinstance(segmenter, NetworkSegmenter):
        raise TypeError(f"segmenter.projection 'device' needs the torch network segmenter, not {type(segmenter)}")
    return segmenter, PinnedTransfers(segmenter.device)


def _segmenter_parts(segmenter: Segmenter) -> dict[str, float]:
    """The parts of the segmenter's last call it timed itself (the torch network segmenter: ``network`` and ``crf``;
    others: none).
    """
    return dict(getattr(segmenter, "stage_ms", {}))
