"""Record topics to MCAP as they arrive: ``perception record --out run.mcap [--topics …] [--duration S]``.

Raw subscriptions hand over each message's serialized CDR bytes, which go into the bag unchanged (no
deserialisation, no re-serialisation). By default the perception node's outputs are recorded, named
by the config schema (:class:`perception_ws.config.perception.TopicsConfig`), and ``/tf_static`` (subscribed
transient local, as ROS 2 latches it: a recorder started late still gets it); other topics get their type from
the ROS graph once a publisher appears.

``--out`` ending in ``.mcap`` gives one bare MCAP file, written in place as messages arrive
(:class:`~perception_ws.io.mcap_stream.McapStreamWriter`): a recorder killed without a chance to stop
(SIGKILL, the OOM killer) leaves what it had written, at most about a second short, which the project's
bag reader recovers (``perception info`` says so). It is complete and indexed once recording stops
cleanly (``--duration`` reached, Ctrl-C or SIGTERM). Anything else gives a rosbag2 folder, written through
:class:`~perception_ws.io.bag.BagWriter` beside its destination, which appears there only when complete.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perception_ws.config import PerceptionConfig
from perception_ws.errors import DatasetError
from perception_ws.io.bag import BagWriter
from perception_ws.io.mcap_stream import McapStreamWriter
from perception_ws.nodes.replay import ros_message_class

if TYPE_CHECKING:
    from rclpy.node import Node
    from rosbags.typesys.store import Typestore

#: message type of each output of the perception node, by the schema's topic key.
OUTPUT_TYPES = {
    "labelled_cloud": "sensor_msgs/msg/PointCloud2",
    "detections": "perception_ws/msg/Detection3DArray",
    "tracks": "perception_ws/msg/TrackArray",
    "markers": "visualization_msgs/msg/MarkerArray",
    "diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}
#: the type of the perception node's ``topics.vision_detections`` (not recorded by default: the same boxes as
#: ``detections``; name it in ``--topics`` to record it).
VISION_DETECTIONS_TYPE = "vision_msgs/msg/Detection3DArray"
#: seconds between looks at the ROS graph for the types of topics not yet subscribed.
DISCOVERY_PERIOD_S = 0.2
#: the transforms, recorded by default: static ones (latched, transient local, by ROS 2 convention) and moving ones
#: (the vehicle in ``odom``), so a replay shows the outputs where they were.
TF_STATIC_TOPIC, TF_TOPIC, TF_TYPE = "/tf_static", "/tf", "tf2_msgs/msg/TFMessage"


def default_topics(config: PerceptionConfig | None = None) -> dict[str, str]:
    """Topic name (as the node names it) -> message type of every output of the perception node, and the TF topics."""
    topics = (config or PerceptionConfig()).topics
    outputs = {getattr(topics, key): msgtype for key, msgtype in OUTPUT_TYPES.items()}
    return {**outputs, TF_STATIC_TOPIC: TF_TYPE, TF_TOPIC: TF_TYPE}


def _msg_folder(package: str, source_tree: Path) -> Path:
    """The .msg folder of ``package``: ``source_tree`` in this repository, else share/PACKAGE/msg of a ROS install."""
    if source_tree.is_dir():
        return source_tree
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(package)) / "msg"


@functools.cache
def _project_types() -> dict[str, Any]:
    from rosbags.typesys import get_types_from_msg

    repo = Path(__file__).resolve().parents[2]
    # the project's messages, and vision_msgs' (the detections the node also publishes; rosbags lacks them)
    folders = {"perception_ws": repo / "msg", "vision_msgs": repo / "interfaces" / "vision_msgs" / "msg"}
    types: dict[str, Any] = {}
    for package, source_tree in folders.items():
        for path in sorted(_msg_folder(package, source_tree).glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"{package}/msg/{path.stem}"))
    return types


def register_project_types(typestore: Typestore) -> None:
    """Add perception_ws/msg/* (Detection3D, Track, …) and vision_msgs' detections to a rosbags typestore, so bags
    can hold them.
    """
    typestore.register(_project_types())


class McapRecording:
    """What :class:`Recorder` writes to (as to a :class:`BagWriter`): an MCAP file written in place as it goes."""

    def __init__(self, path: Path) -> None:
        from rosbags.typesys import Stores, get_typestore

        from perception_ws.io.bag import ROS2_STORE

        self.typestore: Typestore = get_typestore(Stores(ROS2_STORE))
        self.writer = McapStreamWriter(path)
        self._channels: dict[str, int] = {}
        self._schemas: dict[str, int] = {}

    def write_serialized(self, topic: str, msgtype: str, data: bytes | memoryview, timestamp_ns: int) -> None:
        if topic not in self._channels:
            if msgtype not in self._schemas:
                msgdef, _ = self.typestore.generate_msgdef(msgtype, ros_version=2)
                self._schemas[msgtype] = self.writer.add_schema(msgtype, "ros2msg", msgdef.encode())
            self._channels[topic] = self.writer.add_channel(self._schemas[msgtype], topic, "cdr", {})
        self.writer.write(self._channels[topic], timestamp_ns, data)

    def poll(self) -> None:
        self.writer.poll()

    def close(self) -> None:
        self.writer.close()


@contextmanager
def open_recording(out: Path) -> Iterator[BagWriter | McapRecording]:
    """``x.mcap``: an :class:`McapRecording` at ``out``, finalised when the block ends (also on an error: what
    was recorded is kept); else a rosbag2 folder that appears at ``out`` when the block succeeds.
    """
    if out.exists():
        raise DatasetError(f"{out}: exists already; a recording is never written over an existing path")
    if out.suffix != ".mcap":
        with BagWriter(out, "mcap") as bag:
            yield bag
        return
    recording = McapRecording(out)
    try:
        yield recording
    finally:
        recording.close()


class Recorder:
    """Raw subscriptions of ``node`` that append every message to an open :class:`BagWriter` (or
    :class:`McapRecording`).

    ``best_effort``: topics whose publishers are best effort (sensor data): a reliable subscription
    would not match them, so these are subscribed best effort.
    """

    def __init__(
        self,
        node: Node,
        bag: BagWriter | McapRecording,
        topics: dict[str, str | None],
        best_effort: Collection[str] = (),
    ) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        self.node, self.bag = node, bag
        # reliable: every message of a reliable publisher; a best-effort publisher matches only `best_effort` topics
        self._qos = QoSProfile(
            depth=100,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        self._best_effort_qos = QoSProfile(
            depth=100,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
        )
        # /tf_static: what its broadcasters latched before the recorder joined, too
        self._latched_qos = QoSProfile(
            depth=100,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._best_effort = {node.resolve_topic_name(name) for name in best_effort}
        self.pending = {node.resolve_topic_name(name): msgtype for name, msgtype in topics.items()}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()  # the bag is written from subscription callbacks
        self._subscriptions: list[Any] = []
        self._subscribe_known()
        if self.pending:
            node.create_timer(DISCOVERY_PERIOD_S, self._subscribe_known)

    def _subscribe_known(self) -> None:
        graph = {name: types for name, types in self.node.get_topic_names_and_types()}
        for topic, msgtype in list(self.pending.items()):
            if msgtype is None and len(graph.get(topic, [])) == 1:
                msgtype = graph[topic][0]
            if msgtype is None:
                continue
            cls = ros_message_class(msgtype)
            if cls is None:
                raise DatasetError(f"topic {topic}: message type {msgtype} is not importable here; cannot record it")
            if msgtype not in self.bag.typestore.fielddefs:
                raise DatasetError(f"topic {topic}: no message definition of {msgtype} to store in the bag")
            callback = functools.partial(self._write, topic, msgtype)
            qos = self._best_effort_qos if topic in self._best_effort else self._qos
            qos = self._latched_qos if topic == TF_STATIC_TOPIC else qos
            self._subscriptions.append(self.node.create_subscription(cls, topic, callback, qos, raw=True))
            self.counts[topic] = 0
            del self.pending[topic]

    def _write(self, topic: str, msgtype: str, data: bytes, info: Mapping[str, Any]) -> None:
        # log time = when the middleware received the message, not when this callback ran: the executor
        # may run a later message's callback first, which would reorder arrivals (the demo's latency)
        received_ns = int(info.get("received_timestamp") or 0) or time.time_ns()
        with self._lock:
            self.bag.write_serialized(topic, msgtype, data, received_ns)
            self.counts[topic] += 1


@contextmanager
def bag_destination(out: Path) -> Iterator[Path]:
    """Where BagWriter should write for ``out``: itself (a rosbag2 folder), or for ``x.mcap`` a scratch
    folder whose one MCAP file is moved to ``out`` when the block succeeds.
    """
    if out.exists():
        raise DatasetError(f"{out}: exists already; a recording is never written over an existing path")
    if out.suffix != ".mcap":
        yield out
        return
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield scratch / "bag"
        (storage,) = (scratch / "bag").glob("*.mcap")
        os.rename(storage, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


#: on stop, messages the middleware has already received (and acknowledged to their publishers) are still taken
#: into the recording until none has come for DRAIN_QUIET_S, for at most DRAIN_LIMIT_S.
DRAIN_QUIET_S, DRAIN_LIMIT_S = 0.3, 3.0


def _drain(executor: Any, recorder: Recorder) -> None:
    """Write what the middleware already holds before stopping: a reliable publisher counts a message as
    delivered once the recorder's DDS reader has it, before any callback ran, so stopping at once would lose it.
    """
    end = time.monotonic() + DRAIN_LIMIT_S
    seen, quiet_since = sum(recorder.counts.values()), time.monotonic()
    while time.monotonic() < end and time.monotonic() - quiet_since < DRAIN_QUIET_S:
        executor.spin_once(timeout_sec=0.05)
        total = sum(recorder.counts.values())
        if total != seen:
            seen, quiet_since = total, time.monotonic()


def record(
    out: str | Path,
    topics: Sequence[str] = (),
    duration_s: float | None = None,
    config: PerceptionConfig | None = None,
    log: Callable[[str], Any] = print,
) -> dict[str, int]:
    """Record until ``duration_s`` passes or SIGINT/SIGTERM; returns messages per topic."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    out = Path(out)
    wanted: dict[str, str | None] = dict(default_topics(config)) if not topics else dict.fromkeys(topics)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_recording(out) as bag:
            register_project_types(bag.typestore)
            rclpy.init(args=[], signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
            try:
                node = Node("record")
                recorder = Recorder(node, bag, wanted)
                executor = SingleThreadedExecutor()
                executor.add_node(node)
                log(f"record: {', '.join(sorted(wanted))} -> {out} (Ctrl-C stops)")
                deadline = None if duration_s is None else time.monotonic() + duration_s
                while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                    executor.spin_once(timeout_sec=0.1)
                    if isinstance(bag, McapRecording):  # a rare topic's messages still reach the file soon
                        bag.poll()
                _drain(executor, recorder)
                node.destroy_node()
            finally:
                rclpy.try_shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    missing = ", ".join(sorted(recorder.pending))
    log(f"record: wrote {out}: {recorder.counts}" + (f"; never seen (no publisher): {missing}" if missing else ""))
    return recorder.counts
