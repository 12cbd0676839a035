"""One MCAP of a labelling run: per frame, in order, the labelled cloud, the detections (the project's and
vision_msgs'), the tracks and the markers, on the perception node's output topics and built by the node's own
message code (:mod:`perception_ws.nodes.conversions`, :mod:`perception_ws.nodes.markers`), so RViz, Foxglove
and `perception replay` see what the node would have published.

Tracks are made here, after the frame loop, from the stored detections of every frame in order
(:meth:`Pipeline.track`): frames may be labelled in any order (resumed, sharded) yet tracked as a sequence.
With ``--shard`` the tracks span the shard's frames only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from perception_ws.config.perception import TopicsConfig
from perception_ws.io.registry import Dataset
from perception_ws.labelling.results import FrameResult
from perception_ws.pipeline import Pipeline


def write_mcap(
    path: Path,
    dataset: Dataset,
    frames: Sequence[int],
    result_of: Callable[[int], FrameResult],
    pipeline: Pipeline,
    marker_style: str = "line_list",
) -> None:
    """Write the bare MCAP file ``path`` (replacing an older one only once the new one is complete)."""
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from perception_ws.io.bag import BagWriter
    from perception_ws.nodes.conversions import detections_msg, labelled_cloud_msg, tracks_msg, vision_detections_msg
    from perception_ws.nodes.markers import markers_msg
    from perception_ws.nodes.record import OUTPUT_TYPES, VISION_DETECTIONS_TYPE, bag_destination, register_project_types

    topics = TopicsConfig()
    classes = pipeline.class_set
    # a complete file appears beside the old one, then replaces it (bag_destination never writes over a path)
    scratch = path.with_name(f".{path.stem}.partial.mcap")
    scratch.unlink(missing_ok=True)  # left by a run killed between the two renames
    with bag_destination(scratch) as destination, BagWriter(destination, "mcap") as bag:
        register_project_types(bag.typestore)
        for index in frames:
            scan, result = dataset[index], result_of(index)
            tracks, live, _ = pipeline.track(scan.points, result.detections, result.stamp_ns / 1e9)
            sec, nanosec = divmod(result.stamp_ns, 1_000_000_000)
            header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=scan.frame_id)
            messages = {
                "labelled_cloud": labelled_cloud_msg(header, scan.points, result.labels, result.instances),
                "detections": detections_msg(header, result.detections, classes),
                "vision_detections": vision_detections_msg(header, result.detections, classes),
                "tracks": tracks_msg(header, live, classes),
                "markers": markers_msg(header, result.detections, tracks, classes, marker_style),
            }
            for key, message in messages.items():
                bag.write_serialized(
                    "/" + getattr(topics, key).lstrip("/"),
                    {**OUTPUT_TYPES, "vision_detections": VISION_DETECTIONS_TYPE}[key],
                    serialize_message(message),
                    result.stamp_ns,
                )
    scratch.replace(path)
