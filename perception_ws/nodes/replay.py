"""Replay a bag over ROS 2 with its original timing: ``perception replay BAG [--rate R] [--loop] …``.

Reads a rosbag2 bag (sqlite3 or MCAP) or a ROS 1 ``.bag`` with ``rosbags`` and publishes every topic whose
message type rclpy can import here, as the serialized bytes from the bag (no deserialisation for
rosbag2; ROS 1 messages are converted to CDR by rosbags). Messages leave at their log times, spaced by
``1 / rate``, with ``/clock`` (rosgraph_msgs/Clock, the bag's time) before each one and at least every
:data:`CLOCK_PERIOD_S` in between, so nodes with ``use_sim_time`` follow the bag.

QoS: every publisher is reliable (a best-effort publisher would drop clouds under load, and a reliable
one also serves best-effort subscribers such as the SensorData input of the perception node), keeps
the last N messages where N is the depth the recorder saw offered (default :data:`DEFAULT_DEPTH`), and
is transient-local when the recording says the topic was (latched ROS 1 topics), and always for
``/tf_static`` (ROS 2 latches it; ``perception record`` does not store the offered QoS).

Raw Velodyne packets (``velodyne_msgs/msg/VelodyneScan``) go out decoded, as PointCloud2
(:mod:`perception_ws.io.velodyne_packets`), on ``.../velodyne_points`` for a ``.../velodyne_packets`` topic (else on
``TOPIC/points``; ``--remap`` chooses another) where velodyne_msgs is not installed (it is no ROS 2 core package);
where it is, they go out as they are, for the user's own driver. Topics of other types not importable here are
listed and skipped; a bag with nothing to publish is refused with a :class:`~perception_ws.errors.DatasetError`.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perception_ws.cloud import stamp_to_ns
from perception_ws.errors import DatasetError
from perception_ws.io.bag import (
    CLOUD_TYPE,
    ROS2_STORE,
    _bag_sources,
    _cloud_typestore,
    _named_errors,
    _recovered,
    cloud_message,
)
from perception_ws.io.velodyne_packets import MESSAGE_DEFINITIONS as PACKET_DEFINITIONS
from perception_ws.io.velodyne_packets import SCAN_TYPE as PACKETS_TYPE
from perception_ws.io.velodyne_packets import decode_message

if TYPE_CHECKING:
    from rclpy.node import Node
    from rclpy.publisher import Publisher
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import Connection

#: queue depth of a publisher when the bag does not say what its recorder was offered.
DEFAULT_DEPTH = 10
#: longest bag-time gap without a /clock message (seconds of wall time).
CLOCK_PERIOD_S = 0.05
#: how long the end of a replay waits for reliable subscribers to acknowledge the last messages.
ACK_TIMEOUT_S = 2.0
CLOCK_TOPIC = "/clock"

Convert = Callable[[bytes], bytes]


@dataclass(frozen=True)
class ReplayTopic:
    """One topic to republish: where it came from, where it goes, and how its bytes become CDR."""

    source: str
    target: str
    msgtype: str
    msg_class: type
    depth: int
    transient_local: bool
    convert: Convert
    #: how the messages change on the way, in words ("" when they go out as recorded)
    change: str = ""


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay publishes: the topics it keeps, and a reason for each it leaves out."""

    topics: dict[str, ReplayTopic]  # by source topic
    skipped: list[str]  # one line per topic left out, with the reason


def parse_remaps(remaps: Sequence[str]) -> dict[str, str]:
    """``["/points:=/lidar/points"]`` -> ``{"/points": "/lidar/points"}``; a malformed one is an error."""
    out: dict[str, str] = {}
    for remap in remaps:
        source, sep, target = remap.partition(":=")
        if not sep or not source or not target:
            raise DatasetError(f"remap {remap!r}: expected FROM:=TO, e.g. /points:=/lidar/points")
        out[source] = target
    return out


def ros_message_class(msgtype: str) -> type | None:
    """The rclpy class of ``pkg/msg/Name``, or None when its package is not importable here."""
    package, _, name = msgtype.partition("/msg/")
    if not name:
        return None
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name, None)
    except ImportError:
        return None


def plan_replay(reader: AnyReader, topics: Sequence[str] = (), remaps: Sequence[str] = ()) -> ReplayPlan:
    """What of the bag open in ``reader`` can be replayed here (all topics, or only ``topics``)."""
    renames = parse_remaps(remaps)
    present = {c.topic for c in reader.connections}
    unknown = [t for t in topics if t not in present]
    if unknown:
        raise DatasetError(f"no topic {', '.join(unknown)} in the bag; its topics: {', '.join(sorted(present))}")
    chosen: dict[str, ReplayTopic] = {}
    skipped: list[str] = []
    for connection in reader.connections:
        if (topics and connection.topic not in topics) or connection.topic in chosen:
            continue
        count = reader.topics[connection.topic].msgcount
        what = f"{connection.topic} ({connection.msgtype}, {count} messages)"
        if connection.topic == CLOCK_TOPIC:
            skipped.append(f"{what}: the replay publishes its own /clock")
        elif connection.msgtype == PACKETS_TYPE and ros_message_class(PACKETS_TYPE) is None:
            chosen[connection.topic] = _decoded_packets(reader, connection, renames)
        elif (msg_class := ros_message_class(connection.msgtype)) is None:
            package = connection.msgtype.split("/")[0]
            skipped.append(f"{what}: message package {package!r} is not installed here")
        else:
            convert = _converter(reader, connection)
            if convert is None:
                skipped.append(f"{what}: no ROS 2 definition of this ROS 1 type to convert it to")
                continue
            depth, transient_local = _offered_qos(connection)
            transient_local |= connection.topic == "/tf_static"  # latched by convention, whatever was recorded
            target = renames.get(connection.topic, connection.topic)
            chosen[connection.topic] = ReplayTopic(
                connection.topic, target, connection.msgtype, msg_class, depth, transient_local, convert
            )
    return ReplayPlan(chosen, skipped)


def decoded_cloud_topic(packets_topic: str) -> str:
    """Where a packet topic's decoded clouds go: the velodyne driver's names (``velodyne_packets`` ->
    ``velodyne_points``), else ``TOPIC/points``.
    """
    head, _, last = packets_topic.rpartition("/")
    if last == "velodyne_packets":
        return f"{head}/velodyne_points"
    return f"{packets_topic}/points"


def _decoded_packets(reader: AnyReader, connection: Connection, renames: dict[str, str]) -> ReplayTopic:
    """A raw Velodyne packet topic, to go out as the PointCloud2 of its decoded points."""
    cloud_class = ros_message_class(CLOUD_TYPE)
    assert cloud_class is not None  # sensor_msgs is part of every ROS 2 install
    depth, _ = _offered_qos(connection)
    target = renames.get(connection.topic, decoded_cloud_topic(connection.topic))
    convert = _packets_to_cloud(reader, connection)
    change = "raw Velodyne packets decoded to PointCloud2"
    return ReplayTopic(connection.topic, target, CLOUD_TYPE, cloud_class, depth, False, convert, change)


def _packets_to_cloud(reader: AnyReader, connection: Connection) -> Convert:
    """Stored VelodyneScan bytes -> the CDR of a PointCloud2 of its decoded points, same header."""
    store = _cloud_typestore()

    def convert(raw: bytes) -> bytes:
        scan: Any = reader.deserialize(raw, connection.msgtype)
        decoded = decode_message(scan, f"{connection.topic} (VelodyneScan)")
        cloud = cloud_message(store, decoded.points, scan.header.frame_id, stamp_to_ns(scan.header.stamp))
        return bytes(store.serialize_cdr(cloud, CLOUD_TYPE))

    return convert


def _offered_qos(connection: Connection) -> tuple[int, bool]:
    """(queue depth, transient local) from what the recorder saw offered; defaults when not recorded."""
    profiles = getattr(connection.ext, "offered_qos_profiles", None) or []
    latched = bool(getattr(connection.ext, "latching", 0))
    depth = max((int(p.depth) for p in profiles), default=0)
    transient = latched or any(p.durability.name == "TRANSIENT_LOCAL" for p in profiles)
    return (depth if depth > 0 else DEFAULT_DEPTH), transient


def _converter(reader: AnyReader, connection: Connection) -> Convert | None:
    """Bytes as stored -> CDR: as is for rosbag2; rosbags' ROS 1 -> ROS 2 migration for a ROS 1 bag."""
    if reader.is2:
        return bytes
    from rosbags.convert.converter import generate_message_converter
    from rosbags.typesys import Stores, get_typestore

    ros2 = get_typestore(Stores(ROS2_STORE))
    if connection.msgtype not in ros2.fielddefs:
        return None
    migrate = generate_message_converter(
        reader.typestore, ros2, connection.msgtype, connection.msgtype, {}, src_is2=False, dst_is2=True
    )
    return lambda raw: bytes(migrate(raw))


def open_replay_reader(bag: str | Path, notes: list[str] | None = None) -> AnyReader:
    """The bag open for replay; a cut MCAP (a killed recorder's) is read up to the cut, said in ``notes``."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = Path(bag)
    with _named_errors(path, "cannot be opened as a bag"):
        # the ROS 2 definitions stand in for those older rosbag2 bags do not embed (replay needs no more: the
        # bytes are published as they are), and velodyne_msgs' two, for raw packets decoded on the way out
        sources = _recovered(_bag_sources(path), notes if notes is not None else [])
        store = get_typestore(Stores(ROS2_STORE))
        store.register({name: _cloud_typestore().fielddefs[name] for name in PACKET_DEFINITIONS})
        reader = AnyReader(sources, default_typestore=store)
        reader.open()
    return reader


class BagPlayer:
    """Publishes the planned topics of an open bag from ``node``, paced by the bag's log times, until the
    bag ends or ``stop`` is set (by a signal: see :func:`replay`).
    """

    def __init__(
        self,
        node: Node,
        reader: AnyReader,
        plan: ReplayPlan,
        rate: float = 1.0,
        stop: threading.Event | None = None,
    ) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        if not rate > 0:
            raise DatasetError(f"rate {rate!r}: expected a speed factor > 0 (1 = recorded speed)")
        self.node, self.reader, self.plan, self.rate = node, reader, plan, rate
        self.stop = stop if stop is not None else threading.Event()
        self.published = 0
        self.publishers: dict[str, Publisher] = {}
        for topic in plan.topics.values():
            qos = QoSProfile(
                depth=topic.depth,
                history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if topic.transient_local else DurabilityPolicy.VOLATILE,
            )
            self.publishers[topic.source] = node.create_publisher(topic.msg_class, topic.target, qos)
        self._clock_msg = Clock()
        self.clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(depth=1))

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Wait until every replayed topic has a subscriber (True), or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stop.is_set():
            if all(p.get_subscription_count() > 0 for p in self.publishers.values()):
                return True
            self.stop.wait(0.05)
        return False

    def play_once(self) -> int:
        """One pass through the bag; returns the number of messages published (fewer if stopped)."""
        connections = [c for c in self.reader.connections if c.topic in self.plan.topics]
        start_wall: float | None = None
        start_bag = 0
        count = 0
        for connection, timestamp, raw in self._messages(connections):
            if start_wall is None:
                start_wall, start_bag = time.monotonic(), timestamp
            if not self._wait_until(timestamp, start_wall, start_bag):
                break
            self._publish_clock(timestamp)
            self.publishers[connection.topic].publish(self.plan.topics[connection.topic].convert(raw))
            count += 1
        self.published += count
        return count

    def finish(self) -> None:
        """Give reliable subscribers a bounded time to acknowledge what was sent."""
        from rclpy.duration import Duration

        for publisher in (*self.publishers.values(), self.clock_pub):
            publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))

    def _messages(self, connections: list[Connection]) -> Iterator[tuple[Connection, int, bytes]]:
        with _named_errors(Path(str(self.reader.paths[0])), "cannot be read"):
            yield from self.reader.messages(connections=connections)

    def _wait_until(self, bag_time_ns: int, start_wall: float, start_bag: int) -> bool:
        """Sleep until the wall time of ``bag_time_ns``, ticking /clock meanwhile (never past it, so the
        clock only moves forward); False once stopped or the context shut down.
        """
        due = start_wall + (bag_time_ns - start_bag) / 1e9 / self.rate
        while (left := due - time.monotonic()) > 0:
            if self.stop.wait(min(left, CLOCK_PERIOD_S)):
                return False
            elapsed_ns = int((time.monotonic() - start_wall) * self.rate * 1e9)
            self._publish_clock(min(bag_time_ns, start_bag + elapsed_ns))
        return not self.stop.is_set() and self.node.context.ok()

    def _publish_clock(self, bag_time_ns: int) -> None:
        self._clock_msg.clock.sec, self._clock_msg.clock.nanosec = divmod(bag_time_ns, 1_000_000_000)
        self.clock_pub.publish(self._clock_msg)


def replay(
    bag: str | Path,
    rate: float = 1.0,
    loop: bool = False,
    topics: Sequence[str] = (),
    remaps: Sequence[str] = (),
    wait_subscribers_s: float = 0.0,
    log: Callable[[str], Any] = print,
    ros_args: Sequence[str] = (),
) -> int:
    """Run a replay in this process (rclpy is initialised here, with ``ros_args``: ``--ros-args ...`` blocks;
    see :mod:`perception_ws.ros_env`). SIGINT or SIGTERM stops it cleanly (exit status 0), as the nodes stop
    (:mod:`perception_ws.nodes.process`): the signal only sets a flag, publishing ends, then the node is destroyed
    and rclpy shut down. rclpy's own handler would shut the context down under a publish in progress
    ("publisher's context is invalid").
    """
    import rclpy
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    from perception_ws.nodes.process import stop_on_signals

    path = Path(bag)
    notes: list[str] = []
    reader = open_replay_reader(path, notes)
    for note in notes:
        log(f"replay: {note}")
    try:
        with _named_errors(path, "cannot be replayed"):
            plan = plan_replay(reader, topics, remaps)
        for line in plan.skipped:
            log(f"replay: skipped {line}")
        if not plan.topics:
            raise DatasetError(
                f"{path}: no topic can be replayed: {'; '.join(plan.skipped) or 'the bag is empty'} (raw sensor "
                "packets, but for Velodyne VLP-16 / VLP-32C ones, must be decoded to PointCloud2 by the vendor's "
                "driver first)"
            )
        rclpy.init(args=["replay", *ros_args], signal_handler_options=SignalHandlerOptions.NO)
        try:
            with stop_on_signals() as stop:
                node = Node("replay")
                player = BagPlayer(node, reader, plan, rate, stop)
                listed = ", ".join(
                    (f"{t.source}->{t.target}" if t.source != t.target else t.source)
                    + (f" ({t.change})" if t.change else "")
                    for t in plan.topics.values()
                )
                log(f"replay: {path} at rate {rate:g}: {listed}")
                if wait_subscribers_s > 0 and not player.wait_for_subscribers(wait_subscribers_s):
                    log(f"replay: not every topic has a subscriber after {wait_subscribers_s:g} s; starting anyway")
                while player.play_once() and loop and not stop.is_set():
                    pass
                if not stop.is_set():  # stopped: leave now, without waiting for acknowledgements
                    player.finish()
                log(f"replay: published {player.published} messages{' (stopped)' if stop.is_set() else ''}")
                node.destroy_node()
        finally:
            rclpy.try_shutdown()
    finally:
        reader.close()
    return 0
