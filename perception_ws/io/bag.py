"""Bags: rosbag2 (sqlite3 or MCAP, a folder or a bare storage file) and ROS 1 ``.bag``, through ``rosbags``.

:func:`open_bag` reads the PointCloud2 messages of one topic as scans, or, in a bag recorded as raw Velodyne
packets (``velodyne_msgs/msg/VelodyneScan``, a scan a message), those decoded into points
(:mod:`perception_ws.io.velodyne_packets`; a PointCloud2 topic is preferred where a bag has both). Opening scans
the topic once to index its messages (connection and timestamp of each; the clouds themselves are not kept), so
``dataset[i]`` later reads exactly one message. Every other topic is listed in ``notes`` as skipped; messages of
types no typestore knows are never deserialized, so they cannot break opening.

:class:`BagWriter` and :func:`write_bag` write rosbag2 bags (MCAP by default); the bag appears at
its path only once it is complete.

An MCAP file cut short (its writer killed, as ``perception record`` can be: :mod:`perception_ws.io.mcap_stream`)
is read up to the cut, from a repaired copy in a temporary folder, with a note saying how many messages
were recovered.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, overload

import numpy as np

from perception_ws.cloud import from_msg, pack, stamp_to_ns, stamp_to_sec_nanosec
from perception_ws.errors import DatasetError, PerceptionError
from perception_ws.io.atomic import atomic_folder
from perception_ws.io.registry import register
from perception_ws.io.velodyne_packets import MESSAGE_DEFINITIONS as PACKET_DEFINITIONS
from perception_ws.io.velodyne_packets import SCAN_TYPE as PACKETS_TYPE
from perception_ws.io.velodyne_packets import decode_message
from perception_ws.scan import Scan

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Writer
    from rosbags.typesys.store import Typestore

CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
#: message definitions for rosbag2 bags that do not embed them (older recorders); PointCloud2 is the
#: same in every ROS 2 distribution.
ROS2_STORE = "ros2_kilted"  # a rosbags.typesys.Stores value (rosbags is imported on first use: it is slow)
_STORAGE_SUFFIXES = (".db3", ".mcap")
BagStorage = Literal["mcap", "sqlite3"]
_PLUGINS = ("mcap", "sqlite3")


class BagDataset(Sequence[Scan]):
    """The PointCloud2 messages of one topic of a bag, read lazily, one :class:`Scan` each.

    Usable as a context manager; :meth:`close` releases the open bag files (they are reopened on
    demand, also after a fork).
    """

    def __init__(self, path: str | Path, topic: str | None = None) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        self.topic: str | None = None
        self._sources = _bag_sources(self.path)
        self._lock = threading.Lock()
        self._reader: AnyReader | None = None
        self._pid = 0
        #: per cloud message: (position of its connection in ``reader.connections``, which is the same every
        #: time the bag is opened; log timestamp; rank among the messages of that connection and timestamp)
        self._index: list[tuple[int, int, int]] = []
        with self._errors_named("cannot be opened as a bag"):
            self._sources = _recovered(self._sources, self.notes)
            self._select_topic(topic)
            self._build_index()

    # -- Sequence ---------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def __getitem__(self, index: int) -> Scan: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Scan]: ...

    def __getitem__(self, index: int | slice) -> Scan | Sequence[Scan]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.path}: message {index} of topic {self.topic} out of range (0..{len(self) - 1})")
        index %= len(self)
        position, timestamp, rank = self._index[index]
        with self._errors_named(f"topic {self.topic} message {index} cannot be read"), self._lock:
            reader = self._open_reader()
            connection = reader.connections[position]
            found = [
                raw for _, _, raw in reader.messages(connections=[connection], start=timestamp, stop=timestamp + 1)
            ]
            if len(found) <= rank:
                raise DatasetError(f"{self.path}: message {index} of topic {self.topic} vanished from the bag")
            message = reader.deserialize(found[rank], connection.msgtype)
        return self._scan_of(message, index)

    def __iter__(self) -> Iterator[Scan]:
        """Read the topic in one pass (faster than indexing message by message).

        The pass has its own reader, so indexing the dataset inside the loop is fine.
        """
        if not self._index:
            return
        with self._errors_named(f"topic {self.topic} cannot be read"):
            stream = _open_any_reader(self._sources)
        try:
            positions = {position for position, _, _ in self._index}
            messages = stream.messages(connections=[stream.connections[p] for p in sorted(positions)])
            for index in range(len(self._index)):
                with self._errors_named(f"topic {self.topic} message {index} cannot be read"):
                    item = next(messages, None)
                    if item is None:
                        raise DatasetError(
                            f"{self.path}: topic {self.topic} ended after {index} of {len(self)} messages"
                        )
                    connection, _, raw = item
                    message = stream.deserialize(raw, connection.msgtype)
                yield self._scan_of(message, index)
        finally:
            stream.close()

    # -- resources --------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._reader is not None and self._pid == os.getpid():
                self._reader.close()
            self._reader = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------------------

    def _open_reader(self) -> AnyReader:
        if self._reader is None or self._pid != os.getpid():  # a forked child must not share the parent's files
            reader = _open_any_reader(self._sources)
            self._reader, self._pid = reader, os.getpid()
        return self._reader

    def _select_topic(self, topic: str | None) -> None:
        reader = self._open_reader()
        topics = {name: (info.msgtype or "(mixed types)", info.msgcount) for name, info in reader.topics.items()}
        clouds = {name: count for name, (msgtype, count) in topics.items() if msgtype == CLOUD_TYPE}
        packets = {name: count for name, (msgtype, count) in topics.items() if msgtype == PACKETS_TYPE}
        if topic is not None:
            if topic not in topics:
                raise DatasetError(
                    f"{self.path}: no topic {topic!r}; PointCloud2 topics: {sorted(clouds) or 'none'}; "
                    f"all topics: {sorted(topics)}"
                )
            if topic not in clouds and topic not in packets:
                raise DatasetError(
                    f"{self.path}: topic {topic!r} holds {topics[topic][0]}, not {CLOUD_TYPE} (or {PACKETS_TYPE})"
                )
            self.topic = topic
        elif clouds or packets:
            readable = clouds or packets  # clouds first: already decoded, by the sensor's own driver
            kind = "PointCloud2" if clouds else "VelodyneScan"
            self.topic = max(sorted(readable), key=lambda name: readable[name])
            if len(readable) > 1:
                listed = ", ".join(f"{name} ({count} messages)" for name, count in sorted(readable.items()))
                self.notes.append(
                    f"{len(readable)} {kind} topics: {listed}; reading {self.topic}, the one with the most "
                    "messages (pass topic= to choose)"
                )
        else:
            self.notes.append(f"holds no {CLOUD_TYPE} topic (nor raw Velodyne packets, {PACKETS_TYPE})")
        if self.topic in packets:
            self.notes.append(
                f"topic {self.topic} holds raw Velodyne packets ({PACKETS_TYPE}): decoded here, one scan a message "
                "(VLP-16 and VLP-32C)"
            )
        for name, (msgtype, count) in sorted(topics.items()):
            if name != self.topic:
                why = "another topic of scans" if name in clouds or name in packets else f"not a {CLOUD_TYPE}"
                self.notes.append(f"skipped topic {name} ({msgtype}, {count} messages): {why}")

    def _build_index(self) -> None:
        if self.topic is None:
            return
        reader = self._open_reader()
        position_of = {id(c): p for p, c in enumerate(reader.connections) if c.topic == self.topic}
        connections = [reader.connections[p] for p in position_of.values()]
        ranks: Counter[tuple[int, int]] = Counter()
        for connection, timestamp, _ in reader.messages(connections=connections):
            key = (position_of[id(connection)], timestamp)
            self._index.append((*key, ranks[key]))
            ranks[key] += 1

    def _scan_of(self, message: Any, index: int) -> Scan:
        if hasattr(message, "packets"):  # a VelodyneScan: its data packets decoded
            with self._errors_named(f"topic {self.topic} message {index}"):
                decoded = decode_message(message, "VelodyneScan")
            return Scan(
                points=decoded.points,
                name=f"{self.topic}#{index}",
                frame_id=str(message.header.frame_id),
                stamp_ns=stamp_to_ns(message.header.stamp),
                sensor=decoded.sensor,
            )
        # rosbags hands out a read-only, possibly unaligned view of the raw bytes: one aligned memcpy of
        # the data makes the points writable and independent of the bag (copying the structured view
        # field by field is several times slower)
        message.data = np.array(message.data, dtype=np.uint8)
        with self._errors_named(f"topic {self.topic} message {index} is not a valid PointCloud2"):
            points = from_msg(message).reshape(-1)
        stamp = message.header.stamp
        return Scan(
            points=points,
            name=f"{self.topic}#{index}",
            frame_id=str(message.header.frame_id),
            stamp_ns=stamp_to_ns(stamp),
        )

    def _errors_named(self, what: str) -> AbstractContextManager[None]:
        return _named_errors(self.path, what)


@functools.cache
def _cloud_typestore() -> Typestore:
    """The definitions a bag without embedded ones needs here: PointCloud2 and what it contains, and the raw
    Velodyne packets.

    AnyReader copies its default typestore on every open; the full ROS 2 store (160+ types) makes
    that cost ~0.3 s, these six types (PointCloud2 and its parts, the two velodyne_msgs types) almost nothing.
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    full = get_typestore(Stores(ROS2_STORE))
    needed = (CLOUD_TYPE, "sensor_msgs/msg/PointField", "std_msgs/msg/Header", "builtin_interfaces/msg/Time")
    store = get_typestore(Stores.EMPTY)
    store.register({name: full.fielddefs[name] for name in needed})
    for name, text in PACKET_DEFINITIONS.items():  # velodyne_msgs is no ROS 2 core package: its two types here
        store.register(get_types_from_msg(text, name))
    return store


def _open_any_reader(sources: list[Path]) -> AnyReader:
    from rosbags.highlevel import AnyReader

    reader = AnyReader(sources, default_typestore=_cloud_typestore())
    reader.open()
    return reader


@contextmanager
def _named_errors(path: Path, what: str) -> Iterator[None]:
    """Turns whatever ``rosbags`` (or sqlite, or a corrupt file) raises into one error naming the bag."""
    try:
        yield
    except PerceptionError as err:
        if str(path) in str(err):
            raise
        raise type(err)(f"{path}: {what}: {err}") from None
    except Exception as err:
        raise DatasetError(f"{path}: {what}: {type(err).__name__}: {err}") from err


def open_bag(path: str | Path, topic: str | None = None) -> BagDataset:
    """The PointCloud2 messages of a bag as scans (``topic=None``: the cloud topic with the most messages)."""
    return BagDataset(path, topic)


class BagWriter:
    """Write scans and other messages into a new rosbag2 bag; it appears at ``path`` only when complete.

    ``with BagWriter(path) as bag: bag.write_scan("/points", scan)``; other messages go through
    :meth:`write` with a message built from :attr:`typestore`.
    """

    def __init__(self, path: str | Path, storage: BagStorage = "mcap") -> None:
        from rosbags.typesys import Stores, get_typestore

        if storage not in _PLUGINS:
            raise DatasetError(f"{path}: storage {storage!r}; expected one of {', '.join(_PLUGINS)}")
        self.path = Path(path)
        self.storage = storage
        self.typestore: Typestore = get_typestore(Stores(ROS2_STORE))
        self._connections: dict[str, Connection] = {}
        self._stack: ExitStack | None = None
        self._writer: Writer | None = None

    def __enter__(self) -> Self:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if self.path.exists():
            raise DatasetError(f"{self.path}: exists already; a bag is never written over an existing path")
        with ExitStack() as stack:
            scratch = stack.enter_context(atomic_folder(self.path))
            plugin = StoragePlugin[self.storage.upper()]
            self._writer = stack.enter_context(Writer(scratch, version=Writer.VERSION_LATEST, storage_plugin=plugin))
            self._stack = stack.pop_all()  # on success, keep both open until __exit__
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # the rosbags writer closes (or aborts on error), then the folder is renamed into place (or removed)
        stack, self._stack, self._writer = self._stack, None, None
        if stack is not None:
            stack.__exit__(exc_type, exc, tb)

    def write(self, topic: str, msgtype: str, message: Any, timestamp_ns: int) -> None:
        """Append one message (an instance of ``self.typestore.types[msgtype]``) logged at ``timestamp_ns``."""
        with _named_errors(self.path, f"cannot write a {msgtype} to topic {topic}"):
            data = self.typestore.serialize_cdr(message, msgtype)
        self.write_serialized(topic, msgtype, data, timestamp_ns)

    def write_serialized(self, topic: str, msgtype: str, data: bytes | memoryview, timestamp_ns: int) -> None:
        """Append one message already serialized as CDR (as a raw ROS 2 subscription receives it), unchanged.

        ``msgtype`` must be known to :attr:`typestore` (register a package's own types there first): the
        bag stores its definition.
        """
        if self._writer is None:
            raise DatasetError(f"{self.path}: BagWriter is not open; use it in a with block")
        connection = self._connections.get(topic)
        if connection is not None and connection.msgtype != msgtype:
            raise DatasetError(f"{self.path}: topic {topic} holds {connection.msgtype}; cannot also write {msgtype}")
        with _named_errors(self.path, f"cannot write a {msgtype} to topic {topic}"):
            if connection is None:
                connection = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
                self._connections[topic] = connection
            self._writer.write(connection, int(timestamp_ns), data)

    def write_scan(self, topic: str, scan: Scan, timestamp_ns: int | None = None) -> None:
        """Append ``scan`` as a PointCloud2; stamped (header and log time) with its ``stamp_ns`` unless given."""
        stamp = scan.stamp_ns if timestamp_ns is None else timestamp_ns
        if stamp is None:
            raise DatasetError(f"{self.path}: scan {scan.name!r} has no stamp_ns; pass timestamp_ns")
        self.write(topic, CLOUD_TYPE, self.cloud_message(scan.points, scan.frame_id, stamp), stamp)

    def cloud_message(self, points: Any, frame_id: str, stamp_ns: int) -> Any:
        """A rosbags PointCloud2 of ``points`` (structured array) for :meth:`write`."""
        return cloud_message(self.typestore, points, frame_id, stamp_ns)


def cloud_message(typestore: Typestore, points: Any, frame_id: str, stamp_ns: int) -> Any:
    """A PointCloud2 of ``points`` (structured array) as a message of ``typestore`` (rosbags' classes)."""
    types = typestore.types
    packed = pack(points)
    sec, nanosec = stamp_to_sec_nanosec(stamp_ns)
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )
    return types[CLOUD_TYPE](
        header=header, data=packed.data, **packed.message_fields(types["sensor_msgs/msg/PointField"])
    )


def write_bag(
    path: str | Path,
    scans: Iterable[Scan],
    topic: str = "/points",
    storage: BagStorage = "mcap",
    period_ns: int = 100_000_000,
) -> Path:
    """Write ``scans`` as PointCloud2 messages on ``topic`` into a new rosbag2 bag folder ``path``.

    A scan without ``stamp_ns`` is stamped ``index * period_ns``. Returns the bag's path.
    """
    with BagWriter(path, storage) as bag:
        for index, scan in enumerate(scans):
            bag.write_scan(topic, scan, index * period_ns if scan.stamp_ns is None else None)
    return Path(path)


# -- registry -----------------------------------------------------------------------------------------------------


def _bag_sources(path: Path) -> list[Path]:
    """What to hand to AnyReader: a rosbag2 folder, its storage files when it has no metadata, or a file."""
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return [path]
        files = sorted(p for p in path.iterdir() if p.suffix in _STORAGE_SUFFIXES and p.is_file())
        if files:
            return files
        raise DatasetError(f"{path}: not a bag folder (no metadata.yaml, no .db3 or .mcap file)")
    if path.is_file() and path.suffix in (*_STORAGE_SUFFIXES, ".bag"):
        return [path]
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    raise DatasetError(f"{path}: not a bag (expected a rosbag2 folder or a .db3, .mcap or .bag file)")


def _recovered(sources: list[Path], notes: list[str]) -> list[Path]:
    """``sources`` with each cut MCAP file (its writer was killed before it finished: see
    :mod:`perception_ws.io.mcap_stream`) replaced by a complete copy of what was written before the cut, in
    a temporary folder removed at exit; one note per recovered file.
    """
    from perception_ws.io.mcap_stream import MAGIC, repair_mcap

    recovered = []
    for source in sources:
        if source.suffix == ".mcap" and source.is_file():
            with source.open("rb") as handle:
                head = handle.read(len(MAGIC))
                handle.seek(max(0, source.stat().st_size - len(MAGIC)))
                tail = handle.read()
            if head == MAGIC and tail != MAGIC:  # an MCAP without its footer: cut
                repaired = Path(tempfile.mkdtemp(prefix="perception_recovered_")) / source.name
                atexit.register(shutil.rmtree, repaired.parent, True)
                try:
                    found = repair_mcap(source, repaired)
                except ValueError:  # damaged, not cut: rosbags' reader says what is wrong
                    recovered.append(source)
                    continue
                notes.append(
                    f"{source.name} was cut (its writer did not finish it): recovered {len(found.messages)} "
                    "messages written before the cut"
                )
                source = repaired
        recovered.append(source)
    return recovered


def _is_bag(path: Path) -> bool:
    if path.is_dir():
        return (path / "metadata.yaml").is_file() or any(p.suffix in _STORAGE_SUFFIXES for p in path.iterdir())
    return path.is_file() and path.suffix in (*_STORAGE_SUFFIXES, ".bag")


@register("bag", "a rosbag2 folder (sqlite3 or MCAP), a .db3 or .mcap file, or a ROS 1 .bag", _is_bag, priority=20)
def _open_registered(path: Path) -> BagDataset:
    return open_bag(path)


def cdr_header_stamp(raw: bytes | memoryview) -> tuple[int, int]:
    """(sec, nanosec) of the ``std_msgs/Header`` a CDR-serialized message starts with (PointCloud2, Image,
    Detection3DArray …), read without deserializing the rest (a cloud's megabytes of points).
    """
    if len(raw) < 12 or bytes(raw[:2]) not in (b"\x00\x00", b"\x00\x01"):
        raise DatasetError(f"not a plain CDR message with a header first ({len(raw)} bytes)")
    order = "<" if raw[1] == 1 else ">"  # encapsulation id: CDR_BE 0, CDR_LE 1
    sec, nanosec = np.frombuffer(raw, dtype=np.dtype(f"{order}i4, {order}u4"), count=1, offset=4)[0]
    return int(sec), int(nanosec)
