"""What the live demo recorded, read back from its MCAP: the summary table and the pictures.

Latency is measured per frame at the recorder, on one clock: from the arrival of the scan to the arrival
of its Detection3DArray, both as the middleware received them (the bag's log times; the order the
recorder's callbacks ran in could put the answer first). It does not use the stamp, which runs behind
the wall clock when the simulator runs slower than real time. A frame is dropped when the simulator
published it (its ground-truth message is in the bag) but no detections came back for its stamp: the
perception node works latest-only, so a scan that arrives while it is busy replaces the waiting one
(counted by the node), or best-effort transport lost it.

Segmentation: per class, the points the perception node labelled (its labelled cloud) against the
simulator's ground-truth ``label`` field of the same scan (its input cloud, recorded too), summed over
every answered frame (:class:`perception_ws.metrics.ClassMetrics`). Found: a ground-truth object with
>= :data:`FOUND_MIN_POINTS` points is found when a detection of its class has its centre inside the
object's box (grown by :data:`FOUND_MARGIN_M`); a detection is true when its centre lies in a
ground-truth box of its class (:func:`true_detections`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from perception_ws.boxes import Box3D
from perception_ws.demo.options import INPUT_TOPIC, DemoOptions, SegmenterChoice, real_time_factor
from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3
from perception_ws.metrics import ClassMetrics, Scores

FOUND_MIN_POINTS = 50
FOUND_MARGIN_M = 0.5
Stamp = tuple[int, int]


@dataclass
class Recorded:
    """The messages of one demo bag, by topic kind and input stamp."""

    truth: dict[Stamp, Any] = field(default_factory=dict)
    detections: dict[Stamp, Any] = field(default_factory=dict)
    tracks: dict[Stamp, Any] = field(default_factory=dict)
    overlays: dict[Stamp, Any] = field(default_factory=dict)
    latency_ms: dict[Stamp, float] = field(default_factory=dict)
    truth_arrival_ns: dict[Stamp, int] = field(default_factory=dict)  # recorder clock
    scan_arrival_ns: dict[Stamp, int] = field(default_factory=dict)  # recorder clock
    diagnostics: dict[str, dict[str, str]] = field(default_factory=dict)  # last status per node name


def _stamp(msg: Any) -> Stamp:
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)


def read_bag(path: Path, scan_topic: str) -> Recorded:
    """Every message of the demo bag but the clouds (large: :func:`read_clouds` reads those wanted); of
    the scans on ``scan_topic`` only when each arrived.
    """
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader

    from perception_ws.io.bag import cdr_header_stamp
    from perception_ws.nodes.replay import ros_message_class

    out = Recorded()
    arrivals: dict[Stamp, int] = {}
    with AnyReader([path]) as reader:
        for connection, log_ns, raw in reader.messages():
            topic, cls = connection.topic, ros_message_class(connection.msgtype)
            if topic == scan_topic:
                out.scan_arrival_ns[cdr_header_stamp(raw)] = log_ns
            if cls is None or connection.msgtype == "sensor_msgs/msg/PointCloud2":
                continue
            msg: Any = deserialize_message(bytes(raw), cls)
            if topic.endswith("ground_truth/boxes"):
                out.truth[_stamp(msg)] = msg
                out.truth_arrival_ns[_stamp(msg)] = log_ns
            elif topic.endswith("/detections"):
                out.detections[_stamp(msg)] = msg
                arrivals[_stamp(msg)] = log_ns
            elif topic.endswith("/tracks"):
                out.tracks[_stamp(msg)] = msg
            elif topic.endswith("/overlay"):
                out.overlays[_stamp(msg)] = msg
            elif topic.endswith("diagnostics"):
                for status in msg.status:
                    out.diagnostics[str(status.name)] = {kv.key: kv.value for kv in status.values}
    out.latency_ms = {s: (t - out.scan_arrival_ns[s]) / 1e6 for s, t in arrivals.items() if s in out.scan_arrival_ns}
    return out


def read_clouds(path: Path, topic: str, stamps: set[Stamp], keep: Any = None) -> dict[Stamp, Any]:
    """The clouds on ``topic`` of the demo bag whose stamps are in ``stamps`` (or ``keep(cloud)`` of each,
    to hold less than every cloud in memory).
    """
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import PointCloud2

    out: dict[Stamp, Any] = {}
    with AnyReader([path]) as reader:
        wanted = [c for c in reader.connections if c.topic == topic]
        if not wanted:  # (an empty list would read every connection)
            return out
        for _, _, raw in reader.messages(connections=wanted):
            cloud = deserialize_message(bytes(raw), PointCloud2)
            if _stamp(cloud) in stamps:
                out[_stamp(cloud)] = cloud if keep is None else keep(cloud)
    return out


def label_field(cloud: Any) -> np.ndarray:
    """The ``label`` field of a PointCloud2, flat."""
    from perception_ws.cloud import from_msg

    return np.asarray(from_msg(cloud)["label"]).reshape(-1).astype(np.int64)


def segmentation_scores(truth: dict[Stamp, np.ndarray], labelled: dict[Stamp, np.ndarray]) -> ClassMetrics:
    """Class scores of the labelled clouds against the ground-truth labels, over the stamps both have."""
    metrics = ClassMetrics(KITTI3)
    for stamp in sorted(set(truth) & set(labelled)):
        if truth[stamp].shape != labelled[stamp].shape:
            raise PerceptionError(
                f"demo: the labelled cloud of stamp {stamp} has {labelled[stamp].size} points, its scan "
                f"{truth[stamp].size}; the perception node must keep every point in order"
            )
        metrics.update(truth[stamp], labelled[stamp])
    return metrics


def found_share(truth: list[Box3D], detections: list[Box3D]) -> tuple[int, int]:
    """(found, countable) ground-truth objects of one frame; see the module doc."""
    countable = [box for box in truth if box.num_points >= FOUND_MIN_POINTS]
    found = 0
    for box in countable:
        centres = np.array([d.center for d in detections if d.label == box.label]).reshape(-1, 3)
        found += bool(len(centres)) and bool(box.contains(centres, margin=FOUND_MARGIN_M).any())
    return found, len(countable)


def track_velocity_errors(truth: list[Box3D], tracks: list[Box3D]) -> list[float]:
    """|v_track - v_truth| (m/s, ground plane) of each confirmed track of one frame whose centre lies in a
    ground-truth box of its class (grown by :data:`FOUND_MARGIN_M`); the simulator's boxes carry the actors'
    velocities over the ground, in the LiDAR's axes.
    """
    errors = []
    for track in tracks:
        centre = track.center.reshape(1, 3)
        owner = next((t for t in truth if t.label == track.label and t.contains(centre, FOUND_MARGIN_M)[0]), None)
        if owner is not None:
            errors.append(float(np.linalg.norm(track.velocity[:2] - owner.velocity[:2])))
    return errors


def true_detections(truth: list[Box3D], detections: list[Box3D]) -> int:
    """Detections of one frame whose centre lies in a ground-truth box of their class (of any size, grown by
    :data:`FOUND_MARGIN_M`); the others are false positives.
    """
    hits = 0
    for box in detections:
        same = [t for t in truth if t.label == box.label]
        hits += any(bool(t.contains(np.asarray(box.center).reshape(1, 3), margin=FOUND_MARGIN_M)[0]) for t in same)
    return hits


def picture_indices(frames: int, pictures: int) -> list[int]:
    """Frame numbers to draw: spread over the run, the later ones first to show confirmed tracks."""
    if pictures <= 0 or frames <= 0:
        return []
    return sorted({round(float(i)) for i in np.linspace(min(frames - 1, 3), frames - 1, pictures)})


def draw_frame(
    path: Path,
    title: str,
    cloud: Any,
    boxes: tuple[list[Box3D], list[Box3D], list[Box3D]],
    truth_labels: np.ndarray | None,
) -> Path:
    """Three bird's-eye views of one frame: the node's labels with its detections, with its confirmed
    tracks, and the ground-truth labels (the labelled cloud's own when not recorded) with the true boxes.
    """
    from matplotlib.figure import Figure

    from perception_ws.cloud import from_msg, xyz_array
    from perception_ws.viz.bev import auto_extent, draw_bev, figure_to_rgb

    points = from_msg(cloud).reshape(-1)
    xyz, labels = xyz_array(points), points["label"].astype(np.int64)
    truth = labels if truth_labels is None else truth_labels
    near = np.abs(xyz[:, :2]).max(axis=1) < 40.0  # the street around the car, where the objects are
    extent = auto_extent(xyz[near], boxes[2], limit=40.0)
    fig = Figure(figsize=(18, 6.8), dpi=100)
    panels = (
        ("node's labels + detections", labels, boxes[0]),
        ("node's labels + confirmed tracks", labels, boxes[1]),
        ("ground-truth labels + boxes", truth, boxes[2]),
    )
    for i, (name, ids, shown) in enumerate(panels):
        ax = fig.add_axes((0.03 + i * 0.33, 0.06, 0.29, 0.83))
        draw_bev(ax, xyz[near], labels=ids[near], class_set=KITTI3, boxes=shown, extent=extent, point_size=0.8,
                 legend="inside" if i == 0 else None, fontsize=6.0)  # fmt: skip
        ax.set_title(f"{name}: {len(shown)}")
    fig.suptitle(title)
    PILImage.fromarray(figure_to_rgb(fig)).save(path)
    return path


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50:.0f} / p90 {p90:.0f} / p99 {p99:.0f} / max {max(values):.0f} ms"


def _percent(value: float) -> str:
    return "-" if np.isnan(value) else f"{100.0 * value:.1f}"


def _segmentation_lines(metrics: ClassMetrics, segmenter: SegmenterChoice) -> list[str]:
    if not metrics.frames:
        return ["segmentation         - (no answered frame has both clouds in the bag)"]
    scores: dict[str, Scores] = metrics.scores()
    objects = [KITTI3.names[c] for c in KITTI3.object_ids]
    iou = ", ".join(f"{name} {_percent(scores[name].iou)}" for name in objects)
    pr = ", ".join(f"{name} {_percent(scores[name].precision)}/{_percent(scores[name].recall)}" for name in objects)
    points = int(metrics.confusion.sum())
    why = " (the labels segmenter copies them: 100 by construction)" if segmenter.kind == "labels" else ""
    return [
        f"segmentation IoU %   {iou}; mean {_percent(metrics.mean().iou)}{why}",
        f"  precision/recall % {pr}",
        f"  scored             every point of {metrics.frames} answered frames ({points / 1e6:.1f} M points) against "
        "the simulator's ground-truth labels",
    ]


def _velocity_line(errors: list[float]) -> str:
    if not errors:
        return "  track velocity     no confirmed track inside a ground-truth box"
    return (
        f"  track velocity     median error {np.median(errors):.2f} m/s over {len(errors)} track-frames (confirmed "
        "tracks inside a ground-truth box; tracked in odom, the car's pose from /tf)"
    )


def _pace_lines(rec: Recorded, options: DemoOptions, factor: float, perception: dict[str, str]) -> list[str]:
    """What the simulator sent, how fast, and what that means for the latest-only perception node."""
    order = sorted(rec.truth)
    arrivals = sorted(rec.truth_arrival_ns.values())
    sent_hz = (len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) / 1e9) if len(arrivals) > 1 else 0.0
    sensor = f"{len(order)} scans of a {options.rate_hz:g} Hz sensor sent at {sent_hz:.2f} Hz"
    if factor == 1.0:
        return [f"pace                 {sensor} (real time; a scan not rendered in time skips ticks)"]
    lines = [
        f"pace                 {sensor}: {factor:g}x real time (stamps and scene motion stay "
        f"{1.0 / options.rate_hz:.2f} s apart), so the model keeps up"
    ]
    processing = float(perception.get("processing_ms_p50", "nan"))
    if processing > 0:
        period_ms = 1e3 / options.rate_hz
        lines.append(
            f"  in real time       a scan every {period_ms:.0f} ms against {processing:.0f} ms to label one: the node "
            f"would answer at most about 1 in {int(np.ceil(processing / period_ms))} and drop the rest"
        )
    return lines


def report(
    bag: Path, out: Path, options: DemoOptions, segmenter: SegmenterChoice, counts: dict[str, int], wall_s: float
) -> int:
    """Write the pictures and summary.txt under ``out``, print the summary; 0 when frames came back, else 1."""
    from perception_ws.nodes.conversions import detection_boxes, track_boxes

    labelled_topic = next(t for t in counts if t.endswith("/labelled_points"))
    rec = read_bag(bag, INPUT_TOPIC)
    order = sorted(rec.truth)
    answered = [s for s in order if s in rec.detections]
    drawn = [answered[i] for i in picture_indices(len(answered), options.pictures)]
    truth_labels = read_clouds(bag, INPUT_TOPIC, set(answered), label_field)
    node_labels = read_clouds(bag, labelled_topic, set(answered), label_field)
    segmentation = segmentation_scores(truth_labels, node_labels)
    clouds = read_clouds(bag, labelled_topic, set(drawn))
    latencies = [rec.latency_ms[s] for s in answered if s in rec.latency_ms]
    per_class: dict[str, int] = defaultdict(int)
    found = countable = true = 0
    track_ids: set[int] = set()
    velocity_errors: list[float] = []
    for stamp in answered:
        boxes = detection_boxes(rec.detections[stamp])
        for box in boxes:
            per_class[box.name or KITTI3.names[box.label]] += 1
        f, c = found_share(detection_boxes(rec.truth[stamp]), boxes)
        found, countable = found + f, countable + c
        true += true_detections(detection_boxes(rec.truth[stamp]), boxes)
        if stamp in rec.tracks:
            tracked = track_boxes(rec.tracks[stamp])
            track_ids |= {b.track_id for b in tracked}
            velocity_errors += track_velocity_errors(detection_boxes(rec.truth[stamp]), tracked)
    truth_objects = sum(len(rec.truth[s].detections) for s in order)
    pictures: list[Path] = []
    segmenter_name = f"'{segmenter.kind}'" + (f" ({segmenter.model})" if segmenter.model else "")
    for stamp in drawn:
        if stamp not in clouds:
            continue
        index = order.index(stamp)
        detected = detection_boxes(rec.detections[stamp])
        tracked = track_boxes(rec.tracks[stamp]) if stamp in rec.tracks else []
        truth = detection_boxes(rec.truth[stamp])
        one = segmentation_scores({stamp: truth_labels[stamp]}, {stamp: node_labels[stamp]}) if (
            stamp in truth_labels and stamp in node_labels) else None  # fmt: skip
        car_iou = f"; car IoU this frame {_percent(one.scores()['car'].iou)} %" if one is not None else ""
        title = f"frame {index}: segmenter {segmenter_name}, seed {options.seed}{car_iou}"
        frame_boxes = (detected, tracked, truth)
        path = out / f"frame_{index:03d}.png"
        pictures.append(draw_frame(path, title, clouds[stamp], frame_boxes, truth_labels.get(stamp)))
        if stamp in rec.overlays:
            pictures.append(_save_overlay(rec.overlays[stamp], out / f"overlay_{index:03d}.png"))
    perception = next((v for k, v in rec.diagnostics.items() if k.startswith("perception_node")), {})
    dropped = len(order) - len(answered)
    replaced = int(perception.get("frames_dropped", "0"))
    lines = [
        f"segmenter            {segmenter.kind}"
        + (f" ({segmenter.model} on {segmenter.device})" if segmenter.model else "")
        + f": {segmenter.reason}",
        f"simulator            seed {options.seed}, hdl64e x {options.columns} columns, camera "
        f"{'on' if options.camera else 'off'}",
        *_pace_lines(rec, options, real_time_factor(options, segmenter), perception),
        f"frames answered      {len(answered)} of {len(order)} ({dropped} dropped)",
        f"  drops              latest-only: a scan arriving while the node is busy replaces the waiting one (no "
        f"queue); {min(replaced, dropped)} replaced while busy, {max(dropped - replaced, 0)} lost otherwise",
        f"perception node      processing {perception.get('processing_ms_p50', '-')} ms p50 per scan, "
        f"{perception.get('frames_failed', '-')} failed",
        f"latency scan->dets   {_percentiles(latencies)} (scan in -> its detections in, at the recorder)",
        *_segmentation_lines(segmentation, segmenter),
        f"objects detected     {sum(per_class.values())} ({_counts(sorted(per_class.items()))}); "
        f"ground truth {truth_objects} boxes (any size)",
        f"  true detections    {true} of {sum(per_class.values())}"
        + (f" ({100.0 * true / sum(per_class.values()):.0f} %)" if per_class else "")
        + " have their centre in a ground-truth box of their class; the rest are false positives",
        f"found (>= {FOUND_MIN_POINTS} points)   {found} of {countable} ground-truth objects"
        + (f" ({100.0 * found / countable:.0f} %)" if countable else ""),
        f"tracks confirmed     {len(track_ids)} distinct ids",
        _velocity_line(velocity_errors),
        f"camera overlays      {len(rec.overlays)}",
        f"bag                  {bag} ({bag.stat().st_size / 1e6:.0f} MB; messages: {_counts(counts.items())})",
        f"pictures             {', '.join(p.name for p in pictures) or 'none'} in {out}/",
        f"wall time            {wall_s:.1f} s (graph start to stop)",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    (out / "summary.txt").write_text(text + "\n")
    return 0 if answered else 1


def _counts(items: Any) -> str:
    return ", ".join(f"{key} {value}" for key, value in items)


def _save_overlay(msg: Any, path: Path) -> Path:
    from perception_ws.nodes.image_intake import accept_image

    PILImage.fromarray(np.ascontiguousarray(accept_image(msg))).save(path)
    return path
