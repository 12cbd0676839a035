"""MCAP written as it goes, so that a killed writer leaves a file that can be recovered.

:class:`McapStreamWriter` writes a ROS 2 MCAP file (https://mcap.dev/spec) in place: the header, each
schema and channel as it appears (outside chunks, so a cut file still holds them before their
messages), and the messages in uncompressed chunks, each handed to the OS (not only buffered in this
process) once it holds :data:`CHUNK_BYTES` or is :data:`CHUNK_SECONDS` old. :meth:`close` appends the
summary and footer that make the file complete and indexed. A process killed before that (SIGKILL, the
OOM killer) leaves every chunk written so far, followed by a cut tail.

:func:`read_cut_mcap` reads such a file's complete records up to the cut and :func:`repair_mcap` writes them,
in log-time order, as a complete MCAP that any reader opens (the project's bag reader does it on its own:
:mod:`perception_ws.io.bag`).
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Self

MAGIC = b"\x89MCAP0\r\n"
HEADER, FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK, MESSAGE_INDEX, CHUNK_INDEX = 1, 2, 3, 4, 5, 6, 7, 8
STATISTICS, SUMMARY_OFFSET, DATA_END = 0x0B, 0x0E, 0x0F
#: a chunk is written out once it holds this many bytes of records ...
CHUNK_BYTES = 1 << 20
#: ... or once its first message is this old (a slow topic still reaches the file within a second).
CHUNK_SECONDS = 1.0


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data)) + data


def _record(opcode: int, content: bytes) -> bytes:
    return struct.pack("<BQ", opcode, len(content)) + content


@dataclass(frozen=True)
class Schema:
    """An MCAP schema record: a message type's definition, referred to by its channels."""

    id: int
    name: str
    encoding: str
    data: bytes

    def record(self) -> bytes:
        return _record(
            SCHEMA,
            struct.pack("<H", self.id) + _string(self.name) + _string(self.encoding) + _bytes32(self.data),
        )


@dataclass(frozen=True)
class Channel:
    """An MCAP channel record: one topic and the schema of its messages."""

    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: dict[str, str] = field(default_factory=dict)

    def record(self) -> bytes:
        pairs = b"".join(_string(k) + _string(v) for k, v in self.metadata.items())
        head = struct.pack("<HH", self.id, self.schema_id) + _string(self.topic) + _string(self.message_encoding)
        return _record(CHANNEL, head + _bytes32(pairs))


def _bytes32(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


@dataclass
class _Chunk:
    records: bytearray = field(default_factory=bytearray)
    start: int = 2**64 - 1
    end: int = 0
    opened: float = 0.0
    index: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # channel -> (log time, offset)


class McapStreamWriter:
    """Writes an MCAP file at ``path`` (which must not exist) as messages come; see the module notes."""

    def __init__(self, path: str | Path, profile: str = "ros2", library: str = "perception_ws") -> None:
        self.path = Path(path)
        self._file: BinaryIO = self.path.open("xb")
        self._file.write(MAGIC + _record(HEADER, _string(profile) + _string(library)))
        self.schemas: list[Schema] = []
        self.channels: list[Channel] = []
        self.counts: dict[int, int] = {}
        self._chunk = _Chunk()
        self._chunk_indexes: list[bytes] = []
        self._start, self._end = 2**64 - 1, 0
        self._flush()

    def add_schema(self, name: str, encoding: str, data: bytes) -> int:
        schema = Schema(len(self.schemas) + 1, name, encoding, data)
        self.schemas.append(schema)
        self._close_chunk()  # the schema goes before any message that needs it
        self._file.write(schema.record())
        self._flush()
        return schema.id

    def add_channel(self, schema_id: int, topic: str, message_encoding: str, metadata: dict[str, str]) -> int:
        channel = Channel(len(self.channels) + 1, schema_id, topic, message_encoding, dict(metadata))
        self.channels.append(channel)
        self.counts[channel.id] = 0
        self._close_chunk()
        self._file.write(channel.record())
        self._flush()
        return channel.id

    def write(self, channel_id: int, log_time: int, data: bytes | memoryview) -> None:
        chunk = self._chunk
        if not chunk.records:
            chunk.opened = time.monotonic()
        chunk.index.setdefault(channel_id, []).append((log_time, len(chunk.records)))
        content = struct.pack("<HIQQ", channel_id, 0, log_time, log_time) + bytes(data)
        chunk.records += _record(MESSAGE, content)
        chunk.start, chunk.end = min(chunk.start, log_time), max(chunk.end, log_time)
        self.counts[channel_id] += 1
        if len(chunk.records) >= CHUNK_BYTES or time.monotonic() - chunk.opened >= CHUNK_SECONDS:
            self._close_chunk()

    def poll(self) -> None:
        """Write out a chunk that has waited :data:`CHUNK_SECONDS` (call it now and then when messages are rare)."""
        if self._chunk.records and time.monotonic() - self._chunk.opened >= CHUNK_SECONDS:
            self._close_chunk()

    def close(self) -> None:
        """Write the last chunk, the summary and the footer: a complete, indexed MCAP."""
        if self._file.closed:
            return
        self._close_chunk()
        self._file.write(_record(DATA_END, struct.pack("<I", 0)))
        summary_start = self._file.tell()
        groups: list[tuple[int, int, int]] = []  # (opcode, start, length) of each group of summary records
        for opcode, records in (
            (SCHEMA, [s.record() for s in self.schemas]),
            (CHANNEL, [c.record() for c in self.channels]),
            (CHUNK_INDEX, self._chunk_indexes),
            (STATISTICS, [self._statistics()]),
        ):
            if records:
                start = self._file.tell()
                self._file.write(b"".join(records))
                groups.append((opcode, start, self._file.tell() - start))
        offsets_start = self._file.tell()
        for opcode, start, length in groups:
            self._file.write(_record(SUMMARY_OFFSET, struct.pack("<BQQ", opcode, start, length)))
        self._file.write(_record(FOOTER, struct.pack("<QQI", summary_start, offsets_start, 0)) + MAGIC)
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _statistics(self) -> bytes:
        counts = b"".join(struct.pack("<HQ", cid, n) for cid, n in sorted(self.counts.items()))
        total = sum(self.counts.values())
        start, end = (self._start, self._end) if total else (0, 0)
        head = struct.pack(
            "<QHIIIIQQ", total, len(self.schemas), len(self.channels), 0, 0, len(self._chunk_indexes), start, end
        )
        return _record(STATISTICS, head + _bytes32(counts))

    def _close_chunk(self) -> None:
        chunk = self._chunk
        if not chunk.records:
            return
        self._chunk = _Chunk()
        data = bytes(chunk.records)
        head = struct.pack("<QQQI", chunk.start, chunk.end, len(data), zlib.crc32(data))
        chunk_start = self._file.tell()
        out = bytearray(_record(CHUNK, head + _string("") + struct.pack("<Q", len(data)) + data))
        offsets: dict[int, int] = {}
        for channel_id, entries in chunk.index.items():
            offsets[channel_id] = chunk_start + len(out)
            pairs = b"".join(struct.pack("<QQ", t, o) for t, o in entries)
            out += _record(MESSAGE_INDEX, struct.pack("<H", channel_id) + _bytes32(pairs))
        chunk_length = len(_record(CHUNK, b"")) + len(head) + 4 + 8 + len(data)
        self._file.write(out)  # one write: a kill leaves the chunk with its indexes, or a cut tail
        self._flush()
        offset_map = b"".join(struct.pack("<HQ", cid, off) for cid, off in offsets.items())
        self._chunk_indexes.append(
            _record(
                CHUNK_INDEX,
                struct.pack("<QQQQ", chunk.start, chunk.end, chunk_start, chunk_length)
                + _bytes32(offset_map)
                + struct.pack("<Q", len(out) - chunk_length)
                + _string("")
                + struct.pack("<QQ", len(data), len(data)),
            )
        )
        self._start, self._end = min(self._start, chunk.start), max(self._end, chunk.end)

    def _flush(self) -> None:
        self._file.flush()  # into the OS: it outlives this process (no fsync: a power cut is not the concern)


@dataclass
class CutMcap:
    """The complete records of an MCAP file up to where it ends (or is cut)."""

    schemas: list[Schema]
    channels: list[Channel]
    messages: list[tuple[int, int, bytes]]  # (channel id, log time, data)
    complete: bool  # the file ends with its footer


def read_cut_mcap(path: str | Path) -> CutMcap:
    """Every schema, channel and message of ``path`` (chunks unpacked) that was written whole before the cut."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC) or data[len(MAGIC) : len(MAGIC) + 1] != bytes([HEADER]):
        raise ValueError("not an MCAP file (no magic and header record at its start)")
    result = CutMcap([], [], [], complete=data.endswith(MAGIC) and len(data) >= 2 * len(MAGIC) + 9 + 20)
    _records(memoryview(data), len(MAGIC), result, nested=False)
    return result


def _records(data: memoryview, position: int, into: CutMcap, *, nested: bool) -> None:
    while position + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, position)
        if not (HEADER <= opcode <= 0x10 or opcode >= 0x80):  # reserved opcodes: damage, not a cut
            raise ValueError(f"invalid MCAP record opcode {opcode:#x} at byte {position}")
        body = position + 9
        if body + length > len(data):
            return  # the cut: this record was not written whole
        content = data[body : body + length]
        if opcode == SCHEMA:
            (sid,) = struct.unpack_from("<H", content)
            name, at = _read_string(content, 2)
            encoding, at = _read_string(content, at)
            (size,) = struct.unpack_from("<I", content, at)
            into.schemas.append(Schema(sid, name, encoding, bytes(content[at + 4 : at + 4 + size])))
        elif opcode == CHANNEL:
            cid, sid = struct.unpack_from("<HH", content)
            topic, at = _read_string(content, 4)
            encoding, at = _read_string(content, at)
            (size,) = struct.unpack_from("<I", content, at)
            metadata, end, at = {}, at + 4 + size, at + 4
            while at < end:
                key, at = _read_string(content, at)
                metadata[key], at = _read_string(content, at)
            into.channels.append(Channel(cid, sid, topic, encoding, metadata))
        elif opcode == MESSAGE:
            cid, _, log_time = struct.unpack_from("<HIQ", content)
            into.messages.append((cid, log_time, bytes(content[22:])))
        elif opcode == CHUNK and not nested:
            compression, at = _read_string(content, 28)
            (size,) = struct.unpack_from("<Q", content, at)
            if compression == "":  # what this module writes; rosbags' zstd chunks come with a footer
                _records(content[at + 8 : at + 8 + size], 0, into, nested=True)
        elif opcode in (DATA_END, FOOTER):
            return
        position = body + length


def _read_string(data: memoryview, at: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("<I", data, at)
    return bytes(data[at + 4 : at + 4 + size]).decode(), at + 4 + size


def repair_mcap(source: str | Path, destination: str | Path) -> CutMcap:
    """Write what :func:`read_cut_mcap` finds in ``source`` to ``destination`` as a complete MCAP, the messages
    in log-time order; returns what was found.
    """
    found = read_cut_mcap(source)
    with McapStreamWriter(destination) as writer:
        schema_ids = {s.id: writer.add_schema(s.name, s.encoding, s.data) for s in found.schemas}
        channel_ids = {
            c.id: writer.add_channel(schema_ids.get(c.schema_id, 0), c.topic, c.message_encoding, c.metadata)
            for c in found.channels
        }
        for channel, log_time, payload in sorted(found.messages, key=lambda m: m[1]):
            if channel in channel_ids:
                writer.write(channel_ids[channel], log_time, payload)
    return found
