"""PCD (Point Cloud Library) files, versions 0.6 and 0.7: DATA ascii, binary and binary_compressed.

A PCD file is a text header (FIELDS, SIZE, TYPE, COUNT, WIDTH, HEIGHT, VIEWPOINT, POINTS, DATA)
followed by the points: whitespace-separated text, packed little-endian records, or, for
``binary_compressed``, two uint32 sizes and an LZF stream that holds the points field by field
(all values of the first field, then all of the second, ...). Fields named ``_`` are padding.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from perception_ws.cloud import as_structured, packed_records
from perception_ws.errors import CloudFormatError, DatasetError
from perception_ws.io.atomic import atomic_file
from perception_ws.io.registry import ListDataset, register
from perception_ws.io.text_rows import format_text_rows, parse_text_rows
from perception_ws.scan import Scan

PcdData = Literal["ascii", "binary", "binary_compressed"]
_DATA_KINDS = ("ascii", "binary", "binary_compressed")
_TYPE_SIZES = {"I": (1, 2, 4, 8), "U": (1, 2, 4, 8), "F": (4, 8)}
_PCD_TYPE_OF_KIND = {"i": "I", "u": "U", "f": "F"}
_NUMPY_KIND_OF_TYPE = {"I": "i", "U": "u", "F": "f"}
#: a header longer than this is not a header (protects against reading a large binary file as text).
_MAX_HEADER_BYTES = 1 << 20
IDENTITY_VIEWPOINT = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class PcdHeader:
    """A parsed PCD header; ``data_offset`` is where the point data starts in the file."""

    version: str
    fields: tuple[str, ...]
    sizes: tuple[int, ...]
    types: tuple[str, ...]
    counts: tuple[int, ...]
    width: int
    height: int
    #: sensor pose as tx ty tz qw qx qy qz; read and written, never applied to the points.
    viewpoint: tuple[float, ...]
    points: int
    data: PcdData
    data_offset: int

    @property
    def record_dtype(self) -> np.dtype:
        """One packed little-endian point as stored in the file; ``_`` padding fields take bytes but no name."""
        names: list[str] = []
        formats: list[Any] = []
        offsets: list[int] = []
        offset = 0
        for name, size, kind, count in zip(self.fields, self.sizes, self.types, self.counts, strict=True):
            if name != "_":
                base = np.dtype(f"<{_NUMPY_KIND_OF_TYPE[kind]}{size}")
                names.append(name)
                formats.append(base if count == 1 else (base, (count,)))
                offsets.append(offset)
            offset += size * count
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": offset})

    @property
    def shape(self) -> tuple[int, ...]:
        """``(points,)`` for unorganized clouds, ``(height, width)`` for organized ones."""
        return (self.height, self.width) if self.height > 1 else (self.points,)


def read_pcd_header(path: str | Path) -> PcdHeader:
    """Parse the header of a PCD file (the points are not read)."""
    with _open(Path(path)) as handle:
        return _parse_header(handle, Path(path))


def read_pcd(path: str | Path) -> np.ndarray:
    """The points of a PCD file as a structured array (``(HEIGHT, WIDTH)`` when organized)."""
    file = Path(path)
    with _open(file) as handle:
        header = _parse_header(handle, file)
        body = _read_rest(handle)
    dtype = header.record_dtype
    if header.points == 0:
        return np.zeros(header.shape, dtype=dtype)
    if header.data == "ascii":
        points = _parse_ascii(body, header, file)
    elif header.data == "binary":
        need = header.points * dtype.itemsize
        if len(body) < need:
            raise CloudFormatError(
                f"{file}: binary data is truncated: {len(body)} bytes, expected {header.points} points x "
                f"{dtype.itemsize} bytes = {need}"
            )
        points = np.frombuffer(body, dtype=dtype, count=header.points)  # a writable view of the one read
    else:
        points = _decode_compressed(body, header, file)
    return points.reshape(header.shape)


def write_pcd(
    path: str | Path,
    points: np.ndarray,
    data: PcdData = "binary",
    viewpoint: Sequence[float] = IDENTITY_VIEWPOINT,
) -> None:
    """Write ``points`` (structured, or (N, 3|4) floats) as PCD v0.7; atomic (temp file, then rename).

    Padding between fields is dropped (PCD records are packed); 2-D arrays are written organized.
    """
    if data not in _DATA_KINDS:
        raise CloudFormatError(f"write_pcd: data={data!r}; expected one of {', '.join(_DATA_KINDS)}")
    if len(viewpoint) != 7:
        raise CloudFormatError(f"write_pcd: viewpoint has {len(viewpoint)} numbers, expected 7 (tx ty tz qw qx qy qz)")
    cloud = as_structured(points)
    if cloud.ndim not in (1, 2):
        raise CloudFormatError(f"write_pcd: points have shape {cloud.shape}; expected 1-D or 2-D (height, width)")
    height, width = (1, cloud.shape[0]) if cloud.ndim == 1 else cloud.shape
    layout = _layout_of(cloud.dtype)
    header_text = _header_text(layout, width, height, viewpoint, data)
    packed = packed_records(cloud, "<")
    with atomic_file(path) as handle:
        handle.write(header_text.encode("ascii"))
        if data == "ascii":
            handle.write(format_text_rows(packed))
        elif data == "binary":
            handle.write(packed.tobytes())
        else:
            _write_compressed(handle, packed)


# -- header -------------------------------------------------------------------------------------------------------


def _open(file: Path) -> io.BufferedReader:
    try:
        return file.open("rb")
    except FileNotFoundError:
        raise DatasetError(f"{file}: no such file") from None
    except OSError as err:
        raise DatasetError(f"{file}: cannot be read: {err.strerror}") from None


def _read_rest(handle: io.BufferedReader) -> bytearray:
    """The rest of the file in one read, into a writable buffer the points can be a view of."""
    rest = bytearray(max(0, os.fstat(handle.fileno()).st_size - handle.tell()))
    got = handle.readinto(rest)
    return rest if got == len(rest) else rest[:got]


def _parse_header(handle: io.BufferedReader, file: Path) -> PcdHeader:
    entries: dict[str, list[str]] = {}
    read = 0
    while "DATA" not in entries:
        raw = handle.readline(_MAX_HEADER_BYTES)
        read += len(raw)
        if not raw:
            raise CloudFormatError(f"{file}: PCD header ends without a DATA line")
        if read >= _MAX_HEADER_BYTES:
            raise CloudFormatError(f"{file}: no PCD header found in the first {_MAX_HEADER_BYTES} bytes")
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise CloudFormatError(f"{file}: not a PCD file (non-text byte in header line {raw[:40]!r})") from None
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        entries[key.upper()] = values
    return _header_from(entries, handle.tell(), file)


def _header_from(entries: dict[str, list[str]], data_offset: int, file: Path) -> PcdHeader:
    def need(key: str) -> list[str]:
        if key not in entries:
            raise CloudFormatError(f"{file}: PCD header lacks the {key} line")
        return entries[key]

    version = (entries.get("VERSION") or ["0.7"])[0]
    try:
        version_number = float(version)
    except ValueError:
        version_number = math.nan
    if version_number not in (0.6, 0.7):
        raise CloudFormatError(f"{file}: PCD VERSION {version!r} is not supported; expected 0.6 or 0.7")
    fields = tuple(need("FIELDS"))
    sizes = _ints(need("SIZE"), "SIZE", file)
    types = tuple(t.upper() for t in need("TYPE"))
    counts = _ints(entries.get("COUNT", ["1"] * len(fields)), "COUNT", file)
    if not fields:
        raise CloudFormatError(f"{file}: PCD FIELDS line names no fields")
    for key, values in (("SIZE", sizes), ("TYPE", types), ("COUNT", counts)):
        if len(values) != len(fields):
            raise CloudFormatError(f"{file}: PCD {key} has {len(values)} entries but FIELDS names {len(fields)} fields")
    named = [f for f in fields if f != "_"]
    if len(set(named)) != len(named):
        twice = sorted({f for f in named if named.count(f) > 1})
        raise CloudFormatError(f"{file}: PCD field(s) {', '.join(twice)} appear more than once")
    for name, size, kind, count in zip(fields, sizes, types, counts, strict=True):
        if kind not in _TYPE_SIZES or size not in _TYPE_SIZES[kind]:
            raise CloudFormatError(
                f"{file}: PCD field {name!r} has TYPE {kind} SIZE {size}; expected I or U with size 1, 2, 4, 8 "
                "or F with size 4, 8"
            )
        if count < 1:
            raise CloudFormatError(f"{file}: PCD field {name!r} has COUNT {count}, expected at least 1")
    width = _ints(need("WIDTH"), "WIDTH", file, one=True)[0]
    height = _ints(entries.get("HEIGHT", ["1"]), "HEIGHT", file, one=True)[0]
    points = _ints(entries.get("POINTS", [str(width * height)]), "POINTS", file, one=True)[0]
    if min(width, height, points) < 0 or points != width * height:
        raise CloudFormatError(
            f"{file}: PCD POINTS {points} does not equal WIDTH {width} x HEIGHT {height} (or one is negative)"
        )
    viewpoint = _floats(entries.get("VIEWPOINT", [str(v) for v in IDENTITY_VIEWPOINT]), "VIEWPOINT", file)
    if len(viewpoint) != 7:
        raise CloudFormatError(f"{file}: PCD VIEWPOINT has {len(viewpoint)} numbers, expected 7")
    data = need("DATA")
    kind = data[0].lower() if data else ""
    if kind not in _DATA_KINDS:
        raise CloudFormatError(f"{file}: PCD DATA {' '.join(data)!r}; expected one of {', '.join(_DATA_KINDS)}")
    return PcdHeader(
        version=version,
        fields=fields,
        sizes=sizes,
        types=types,
        counts=counts,
        width=width,
        height=height,
        viewpoint=viewpoint,
        points=points,
        data=kind,  # type: ignore[arg-type]  # checked against _DATA_KINDS above
        data_offset=data_offset,
    )


def _ints(values: list[str], key: str, file: Path, one: bool = False) -> tuple[int, ...]:
    try:
        numbers = tuple(int(v) for v in values)
    except ValueError:
        raise CloudFormatError(f"{file}: PCD {key} {' '.join(values)!r} is not a list of integers") from None
    if one and len(numbers) != 1:
        raise CloudFormatError(f"{file}: PCD {key} {' '.join(values)!r}: expected one integer")
    return numbers


def _floats(values: list[str], key: str, file: Path) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise CloudFormatError(f"{file}: PCD {key} {' '.join(values)!r} is not a list of numbers") from None


# -- data ---------------------------------------------------------------------------------------------------------


def _parse_ascii(body: bytearray, header: PcdHeader, file: Path) -> np.ndarray:
    # read every column (padding ones under stand-in names) so a wrong column count is caught
    names = [f"_{i}" if name == "_" else name for i, name in enumerate(header.fields)]
    text_header = dataclasses.replace(header, fields=tuple(names))
    rows = parse_text_rows(body, text_header.record_dtype, header.points, f"{file}: ascii PCD")
    return rows[[name for name in header.fields if name != "_"]]


def _decode_compressed(body: bytearray, header: PcdHeader, file: Path) -> np.ndarray:
    dtype = header.record_dtype
    if len(body) < 8:
        raise CloudFormatError(f"{file}: binary_compressed data is truncated: no size words after the header")
    compressed_size, size = struct.unpack_from("<II", body)
    if size != header.points * dtype.itemsize:
        raise CloudFormatError(
            f"{file}: binary_compressed data decompresses to {size} bytes, expected {header.points} points x "
            f"{dtype.itemsize} bytes = {header.points * dtype.itemsize}"
        )
    if len(body) - 8 < compressed_size:
        raise CloudFormatError(
            f"{file}: binary_compressed data is truncated: {len(body) - 8} of {compressed_size} compressed bytes"
        )
    from perception_ws.kernels.lzf import lzf_decompress  # numba: imported when first needed

    try:
        planar = lzf_decompress(memoryview(body)[8 : 8 + compressed_size], size)
    except CloudFormatError as err:
        raise CloudFormatError(f"{file}: {err}") from None
    # the stream holds each field's values for all points in turn; interleave them into records
    points = np.empty(header.points, dtype=dtype)
    records = points.view(np.uint8).reshape(header.points, dtype.itemsize)
    offset = 0
    for size_, count in zip(header.sizes, header.counts, strict=True):
        width = size_ * count
        records[:, offset : offset + width] = planar[offset * header.points : (offset + width) * header.points].reshape(
            header.points, width
        )
        offset += width
    return points


def _write_compressed(handle: BinaryIO, packed: np.ndarray) -> None:
    from perception_ws.kernels.lzf import lzf_compress  # numba: imported when first needed

    n, itemsize = len(packed), packed.dtype.itemsize
    records = packed.view(np.uint8).reshape(n, itemsize) if n else np.zeros((0, itemsize), np.uint8)
    starts = [packed.dtype.fields[name][1] for name in packed.dtype.names or ()]  # type: ignore[index]
    bounds = [*starts, itemsize]
    planar = np.concatenate([records[:, a:b].reshape(-1) for a, b in itertools.pairwise(bounds)])
    compressed = lzf_compress(planar)
    handle.write(struct.pack("<II", len(compressed), len(planar)))
    handle.write(compressed)


# -- layout of a structured array in PCD terms --------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # "I", "U" or "F"
    size: int
    count: int


def _layout_of(dtype: np.dtype) -> list[_Field]:
    layout = []
    for name in dtype.names or ():
        field_dtype = dtype[name]
        base = field_dtype.base
        kind = _PCD_TYPE_OF_KIND.get(base.kind, "")
        if base.names is not None or not kind or base.itemsize not in _TYPE_SIZES[kind]:
            raise CloudFormatError(
                f"write_pcd: field {name!r} has type {base}; PCD stores int/uint of 1, 2, 4, 8 bytes and float32/64"
            )
        if not name or name == "_" or any(c.isspace() for c in name):
            raise CloudFormatError(f"write_pcd: field name {name!r} cannot be written to a PCD header")
        layout.append(_Field(name, kind, base.itemsize, math.prod(field_dtype.shape)))
    return layout


def _header_text(layout: list[_Field], width: int, height: int, viewpoint: Sequence[float], data: str) -> str:
    return "\n".join(
        [
            "# .PCD v0.7 - Point Cloud Data file format",
            "VERSION 0.7",
            "FIELDS " + " ".join(f.name for f in layout),
            "SIZE " + " ".join(str(f.size) for f in layout),
            "TYPE " + " ".join(f.kind for f in layout),
            "COUNT " + " ".join(str(f.count) for f in layout),
            f"WIDTH {width}",
            f"HEIGHT {height}",
            "VIEWPOINT " + " ".join(repr(float(v)) for v in viewpoint),
            f"POINTS {width * height}",
            f"DATA {data}",
            "",
        ]
    )


# -- registry -----------------------------------------------------------------------------------------------------


def _is_pcd_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".pcd"


def _pcd_files(folder: Path) -> list[Path] | None:
    """The folder's .pcd files sorted by name, or None if it holds anything else (hidden files aside)."""
    entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
    if not entries or not all(_is_pcd_file(e) for e in entries):
        return None
    return sorted(entries, key=lambda e: e.name)


def _accepts(path: Path) -> bool:
    return _is_pcd_file(path) or (path.is_dir() and _pcd_files(path) is not None)


def _load_scan(file: Path) -> Scan:
    points = read_pcd(file)
    return Scan(points=points.reshape(-1), name=file.stem)


@register("pcd", "a .pcd file, or a folder holding only .pcd files (one scan per file)", _accepts)
def open_pcd(path: Path) -> ListDataset:
    """One scan per PCD file; organized clouds are flattened row by row."""
    if path.is_dir():
        files = _pcd_files(path) or []
    else:
        read_pcd_header(path)  # fail at open, not at the first frame, on a malformed header
        files = [path]
    return ListDataset(path=path, loaders=[functools.partial(_load_scan, f) for f in files])
