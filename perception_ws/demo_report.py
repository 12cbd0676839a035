"""What the live demo recorded, read back from its MCAP: the summary table and the pictures.

Latency is measured per frame from the scan's stamp (the wall time the simulator handed the scan
over) to the arrival of its Detection3DArray at the recorder, both on this machine's clock. A frame is
dropped when the simulator published it (its ground-truth message is in the bag) but no detections
came back for its stamp (the perception node skipped it while busy, or best-effort transport lost it).
Found: a ground-truth object with >= :data:`FOUND_MIN_POINTS` points is found when a detection of its
class has its centre inside the object's box (grown by :data:`FOUND_MARGIN_M`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image as PILImage

from perception_ws.boxes import Box3D
from perception_ws.labels import KITTI3

if TYPE_CHECKING:
    from perception_ws.demo_live import DemoOptions, SegmenterChoice

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
    diagnostics: dict[str, dict[str, str]] = field(default_factory=dict)  # last status per node name


def _stamp(msg: Any) -> Stamp:
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)


def read_bag(path: Path) -> Recorded:
    """Every message of the demo bag but the labelled clouds (large: :func:`read_clouds` reads those wanted)."""
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader

    from perception_ws.nodes.replay import ros_message_class

    out = Recorded()
    with AnyReader([path]) as reader:
        for connection, log_ns, raw in reader.messages():
            topic, cls = connection.topic, ros_message_class(connection.msgtype)
            if cls is None or topic.endswith("/labelled_points"):
                continue
            msg: Any = deserialize_message(bytes(raw), cls)
            if topic.endswith("ground_truth/boxes"):
                out.truth[_stamp(msg)] = msg
            elif topic.endswith("/detections"):
                stamp = _stamp(msg)
                out.detections[stamp] = msg
                out.latency_ms[stamp] = (log_ns - (stamp[0] * 1_000_000_000 + stamp[1])) / 1e6
            elif topic.endswith("/tracks"):
                out.tracks[_stamp(msg)] = msg
            elif topic.endswith("/overlay"):
                out.overlays[_stamp(msg)] = msg
            elif topic.endswith("diagnostics"):
                for status in msg.status:
                    out.diagnostics[str(status.name)] = {kv.key: kv.value for kv in status.values}
    return out


def read_clouds(path: Path, stamps: set[Stamp]) -> dict[Stamp, Any]:
    """The labelled clouds of the demo bag whose stamps are in ``stamps``."""
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import PointCloud2

    out: dict[Stamp, Any] = {}
    with AnyReader([path]) as reader:
        wanted = [c for c in reader.connections if c.topic.endswith("/labelled_points")]
        for _, _, raw in reader.messages(connections=wanted):
            cloud = deserialize_message(bytes(raw), PointCloud2)
            if _stamp(cloud) in stamps:
                out[_stamp(cloud)] = cloud
    return out


def found_share(truth: list[Box3D], detections: list[Box3D]) -> tuple[int, int]:
    """(found, countable) ground-truth objects of one frame; see the module doc."""
    countable = [box for box in truth if box.num_points >= FOUND_MIN_POINTS]
    found = 0
    for box in countable:
        centres = np.array([d.center for d in detections if d.label == box.label]).reshape(-1, 3)
        found += bool(len(centres)) and bool(box.contains(centres, margin=FOUND_MARGIN_M).any())
    return found, len(countable)


def track_boxes(msg: Any) -> list[Box3D]:
    """The confirmed tracks of a TrackArray as boxes (named by class and id)."""
    from perception_ws.msg import Track

    return [
        Box3D(
            center=np.array([t.center.x, t.center.y, t.center.z]),
            size=np.array([t.size.x, t.size.y, t.size.z]),
            yaw=float(t.yaw),
            label=int(t.class_id),
            name=str(t.class_name),
            track_id=int(t.track_id),
            velocity=np.array([t.velocity.x, t.velocity.y, t.velocity.z]),
        )
        for t in msg.tracks
        if t.state == Track.STATE_CONFIRMED
    ]


def picture_indices(frames: int, pictures: int) -> list[int]:
    """Frame numbers to draw: spread over the run, the later ones first to show confirmed tracks."""
    if pictures <= 0 or frames <= 0:
        return []
    return sorted({round(float(i)) for i in np.linspace(min(frames - 1, 3), frames - 1, pictures)})


def draw_frame(
    path: Path, title: str, cloud: Any, detections: list[Box3D], tracks: list[Box3D], truth: list[Box3D]
) -> Path:
    """Three bird's-eye views of one frame: labels + detections, labels + tracks, labels + ground truth."""
    from matplotlib.figure import Figure

    from perception_ws.cloud import from_msg, xyz_array
    from perception_ws.viz.bev import auto_extent, draw_bev, figure_to_rgb

    points = from_msg(cloud).reshape(-1)
    xyz, labels = xyz_array(points), points["label"].astype(np.int64)
    near = np.abs(xyz[:, :2]).max(axis=1) < 40.0  # the street around the car, where the objects are
    xyz, labels = xyz[near], labels[near]
    extent = auto_extent(xyz, truth, limit=40.0)
    fig = Figure(figsize=(18, 6.5), dpi=80)
    panels = (("detections", detections), ("tracks (confirmed)", tracks), ("ground truth", truth))
    for i, (name, boxes) in enumerate(panels):
        ax = fig.add_axes((0.03 + i * 0.33, 0.06, 0.29, 0.84))
        draw_bev(ax, xyz, labels=labels, class_set=KITTI3, boxes=boxes, extent=extent, point_size=0.6,
                 legend="inside" if i == 0 else None, fontsize=6.0)  # fmt: skip
        ax.set_title(f"{name}: {len(boxes)}")
    fig.suptitle(title)
    PILImage.fromarray(figure_to_rgb(fig)).save(path)
    return path


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50:.0f} / p90 {p90:.0f} / p99 {p99:.0f} / max {max(values):.0f} ms"


def report(
    bag: Path, out: Path, options: DemoOptions, segmenter: SegmenterChoice, counts: dict[str, int], wall_s: float
) -> int:
    """Write the pictures and summary.txt under ``out``, print the summary; 0 when frames came back, else 1."""
    from perception_ws.nodes.fusion_node import detection_boxes

    rec = read_bag(bag)
    order = sorted(rec.truth)
    answered = [s for s in order if s in rec.detections]
    drawn = [answered[i] for i in picture_indices(len(answered), options.pictures)]
    clouds = read_clouds(bag, set(drawn))
    latencies = [rec.latency_ms[s] for s in answered]
    per_class: dict[str, int] = defaultdict(int)
    found = countable = 0
    track_ids: set[int] = set()
    for stamp in answered:
        boxes = detection_boxes(rec.detections[stamp])
        for box in boxes:
            per_class[box.name or KITTI3.names[box.label]] += 1
        f, c = found_share(detection_boxes(rec.truth[stamp]), boxes)
        found, countable = found + f, countable + c
        if stamp in rec.tracks:
            track_ids |= {b.track_id for b in track_boxes(rec.tracks[stamp])}
    truth_objects = sum(len(rec.truth[s].detections) for s in order)
    pictures: list[Path] = []
    for stamp in drawn:
        if stamp not in clouds:
            continue
        index = order.index(stamp)
        detected = detection_boxes(rec.detections[stamp])
        tracked = track_boxes(rec.tracks[stamp]) if stamp in rec.tracks else []
        title = f"frame {index}: segmenter '{segmenter.kind}', seed {options.seed}"
        truth = detection_boxes(rec.truth[stamp])
        pictures.append(draw_frame(out / f"frame_{index:03d}.png", title, clouds[stamp], detected, tracked, truth))
        if stamp in rec.overlays:
            pictures.append(_save_overlay(rec.overlays[stamp], out / f"overlay_{index:03d}.png"))
    span_s = (order[-1][0] - order[0][0] + (order[-1][1] - order[0][1]) / 1e9) if len(order) > 1 else 0.0
    sim_rate = (len(order) - 1) / span_s if span_s > 0 else 0.0
    perception = next((v for k, v in rec.diagnostics.items() if k.startswith("perception_node")), {})
    lines = [
        f"segmenter            {segmenter.kind}"
        + (f" ({segmenter.model})" if segmenter.model else "")
        + f": {segmenter.reason}",
        f"simulator            seed {options.seed}, hdl64e x {options.columns} columns, camera "
        f"{'on' if options.camera else 'off'}; {len(order)} frames at {sim_rate:.2f} Hz (target {options.rate_hz:g})",
        f"frames answered      {len(answered)} of {len(order)} ({len(order) - len(answered)} dropped)",
        f"perception node      processing {perception.get('processing_ms_p50', '-')} ms p50, "
        f"{perception.get('frames_dropped', '-')} dropped while busy, {perception.get('frames_failed', '-')} failed",
        f"latency stamp->dets  {_percentiles(latencies)}",
        f"objects detected     {sum(per_class.values())} ({_counts(sorted(per_class.items()))}); "
        f"ground truth {truth_objects} boxes",
        f"found (>= {FOUND_MIN_POINTS} points)   {found} of {countable} ground-truth objects"
        + (f" ({100.0 * found / countable:.0f} %)" if countable else ""),
        f"tracks confirmed     {len(track_ids)} distinct ids",
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
