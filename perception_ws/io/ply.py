"""PLY point clouds: the ``vertex`` element with any scalar properties, ascii or binary (either endianness).

Other elements (faces, edges, ...) are skipped. In binary files the vertices are found by skipping
the fixed-size elements stored before them; a list element (like ``face``) stored *before* the
vertices is refused, because its length can only be learned by walking it record by record.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from perception_ws.cloud import as_structured, packed_records
from perception_ws.errors import CloudFormatError, DatasetError
from perception_ws.io.atomic import atomic_file
from perception_ws.io.registry import ListDataset, register
from perception_ws.io.text_rows import format_text_rows, parse_text_rows
from perception_ws.scan import Scan

PlyEncoding = Literal["ascii", "binary_little_endian", "binary_big_endian"]
_ENCODINGS: dict[str, Literal["<", ">"]] = {"ascii": "<", "binary_little_endian": "<", "binary_big_endian": ">"}
#: PLY scalar type names (both spellings of the specification) and their numpy type.
_PLY_TYPES: dict[str, str] = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_PLY_NAME_OF = {
    "i1": "char",
    "u1": "uchar",
    "i2": "short",
    "u2": "ushort",
    "i4": "int",
    "u4": "uint",
    "f4": "float",
    "f8": "double",
}
_MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class PlyElement:
    """One element declared in a PLY header: its name, record count and properties."""

    name: str
    count: int
    #: (property name, numpy type code such as "f4") for scalar properties, in file order.
    properties: tuple[tuple[str, str], ...]
    #: names of list properties (their records have no fixed size).
    lists: tuple[str, ...]


def read_ply(path: str | Path) -> np.ndarray:
    """The ``vertex`` element of a PLY file as a 1-D structured array in native byte order."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{file}: no such file") from None
    except OSError as err:
        raise DatasetError(f"{file}: cannot be read: {err.strerror}") from None
    encoding, elements, body_start = _parse_header(raw, file)
    index = next((i for i, e in enumerate(elements) if e.name == "vertex"), None)
    if index is None:
        raise CloudFormatError(f"{file}: PLY has no vertex element (elements: {[e.name for e in elements]})")
    vertex = elements[index]
    if vertex.lists:
        raise CloudFormatError(f"{file}: PLY vertex property {vertex.lists[0]!r} is a list; expected scalars only")
    order = _ENCODINGS[encoding]
    dtype = np.dtype([(name, order + code) for name, code in vertex.properties])
    body = memoryview(raw)[body_start:]
    if encoding == "ascii":
        skip = sum(e.count for e in elements[:index])
        return parse_text_rows(body, dtype, vertex.count, f"{file}: ascii PLY", skiprows=skip)
    offset = 0
    for before in elements[:index]:
        if before.lists:
            raise CloudFormatError(
                f"{file}: binary PLY stores list element {before.name!r} before the vertices; not supported"
            )
        offset += before.count * np.dtype([(n, order + c) for n, c in before.properties]).itemsize
    need = offset + vertex.count * dtype.itemsize
    if len(body) < need:
        raise CloudFormatError(f"{file}: binary PLY data is truncated: {len(body)} bytes, the vertices need {need}")
    points = np.frombuffer(body, dtype=dtype, count=vertex.count, offset=offset)
    return points.astype(dtype.newbyteorder("="))  # native order, writable, independent of the file bytes


def write_ply(path: str | Path, points: np.ndarray, encoding: PlyEncoding = "binary_little_endian") -> None:
    """Write ``points`` (structured, or (N, 3|4) floats) as a PLY vertex element; atomic (temp file, rename).

    Every field must be a scalar of a PLY type (int8..uint32, float32, float64); organized clouds
    are flattened row by row; padding between fields is dropped.
    """
    if encoding not in _ENCODINGS:
        raise CloudFormatError(f"write_ply: encoding={encoding!r}; expected one of {', '.join(_ENCODINGS)}")
    cloud = as_structured(points)
    lines = ["ply", f"format {encoding} 1.0", "comment written by perception_ws", f"element vertex {cloud.size}"]
    for name in cloud.dtype.names or ():
        field = cloud.dtype[name]
        ply_type = _PLY_NAME_OF.get(f"{field.kind}{field.itemsize}") if field.shape == () else None
        if ply_type is None:
            raise CloudFormatError(
                f"write_ply: field {name!r} has type {field}; PLY properties are scalars of int8/16/32, "
                "uint8/16/32, float32 or float64"
            )
        if not name or any(c.isspace() for c in name):
            raise CloudFormatError(f"write_ply: field name {name!r} cannot be written to a PLY header")
        lines.append(f"property {ply_type} {name}")
    lines.append("end_header\n")
    records = packed_records(cloud, _ENCODINGS[encoding])
    with atomic_file(path) as handle:
        handle.write("\n".join(lines).encode("ascii"))
        handle.write(format_text_rows(records) if encoding == "ascii" else records.tobytes())


def _parse_header(raw: bytes, file: Path) -> tuple[str, list[PlyElement], int]:
    end = raw.find(b"end_header", 0, _MAX_HEADER_BYTES)
    if not raw.startswith(b"ply") or end < 0:
        raise CloudFormatError(f"{file}: not a PLY file (no 'ply' magic line or no 'end_header')")
    newline = raw.find(b"\n", end)
    body_start = len(raw) if newline < 0 else newline + 1
    try:
        lines = raw[:end].decode("ascii").splitlines()[1:]
    except UnicodeDecodeError:
        raise CloudFormatError(f"{file}: PLY header is not ASCII text") from None
    encoding = ""
    elements: list[PlyElement] = []
    for number, line in enumerate(lines, start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                encoding = words[1]
                if encoding not in _ENCODINGS or words[2] != "1.0":
                    raise ValueError(f"format {' '.join(words[1:])!r}; expected {', '.join(_ENCODINGS)} 1.0")
            elif words[0] == "element":
                count = int(words[2])
                if count < 0:
                    raise ValueError(f"element {words[1]!r} has a negative count")
                elements.append(PlyElement(words[1], count, (), ()))
            elif words[0] == "property":
                if not elements:
                    raise ValueError("property before any element")
                elements[-1] = _with_property(elements[-1], words)
            else:
                raise ValueError(f"unknown keyword {words[0]!r}")
        except (IndexError, ValueError) as err:
            why = err if isinstance(err, ValueError) else "too few words"
            raise CloudFormatError(f"{file}: PLY header line {number} {line!r}: {why}") from None
    if not encoding:
        raise CloudFormatError(f"{file}: PLY header has no format line")
    return encoding, elements, body_start


def _with_property(element: PlyElement, words: list[str]) -> PlyElement:
    name = words[-1]
    if name in {n for n, _ in element.properties} | set(element.lists):
        raise ValueError(f"property {name!r} appears twice in element {element.name!r}")
    if words[1] == "list":
        if words[2] not in _PLY_TYPES or words[3] not in _PLY_TYPES or len(words) != 5:
            raise ValueError("expected 'property list <count type> <item type> <name>'")
        return PlyElement(element.name, element.count, element.properties, (*element.lists, name))
    if words[1] not in _PLY_TYPES or len(words) != 3:
        raise ValueError(f"property type {words[1]!r}; expected one of {', '.join(_PLY_TYPES)}")
    return PlyElement(element.name, element.count, (*element.properties, (name, _PLY_TYPES[words[1]])), element.lists)


def _is_ply_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".ply"


def _load_scan(file: Path) -> Scan:
    return Scan(points=read_ply(file), name=file.stem)


@register("ply", "a .ply file (its vertex element)", _is_ply_file)
def open_ply(path: Path) -> ListDataset:
    """The reader of one .ply file: a one-frame dataset of its vertices."""
    return ListDataset(path=path, loaders=[functools.partial(_load_scan, path)])
