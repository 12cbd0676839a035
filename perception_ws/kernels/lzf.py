"""LZF (the compression of PCD ``DATA binary_compressed``): numba codec beside a plain Python reference.

The LZF stream is a sequence of runs, each opened by one control byte ``c``:

- ``c < 32``: a literal run; the next ``c + 1`` bytes are copied to the output.
- otherwise a back-reference: length ``L = c >> 5`` (if ``L == 7`` one more byte is added to it),
  then one byte ``lo``; copy ``L + 2`` bytes starting ``((c & 31) << 8) + lo + 1`` bytes back in the
  output. Source and destination may overlap (a run of one repeated byte), so the copy goes byte by
  byte.

The compressor remembers, for a hash of every 3-byte sequence, where it last occurred; when the
bytes there match and lie within the 8 KiB window it emits a back-reference (3 to 264 bytes), else
it extends the current literal run (at most 32 bytes).
"""

from __future__ import annotations

from typing import TypeAlias

import numba as nb
import numpy as np

from perception_ws.errors import CloudFormatError

_MAX_LITERAL = 32
_MAX_OFFSET = 1 << 13
_MAX_MATCH = 7 + 255 + 2
_HASH_BITS = 14

Buffer: TypeAlias = bytes | bytearray | memoryview | np.ndarray


# -- plain Python reference ---------------------------------------------------------------------------------------


def lzf_decompress_reference(data: bytes, size: int) -> bytes:
    """Decompress ``data`` into exactly ``size`` bytes (slow, obviously correct)."""
    out = bytearray()
    i = 0
    while i < len(data):
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            run = data[i : i + ctrl + 1]
            if len(run) != ctrl + 1:
                raise CloudFormatError(f"LZF data is truncated: a literal run at byte {i - 1} passes the end")
            out += run
            i += ctrl + 1
            continue
        length = ctrl >> 5
        if length == 7:
            if i >= len(data):
                raise CloudFormatError("LZF data is truncated inside a back-reference")
            length += data[i]
            i += 1
        if i >= len(data):
            raise CloudFormatError("LZF data is truncated inside a back-reference")
        start = len(out) - ((ctrl & 31) << 8) - data[i] - 1
        i += 1
        if start < 0:
            raise CloudFormatError(f"LZF back-reference at byte {i - 2} points before the start of the output")
        for k in range(length + 2):
            out.append(out[start + k])
    if len(out) != size:
        raise CloudFormatError(f"LZF data decompresses to {len(out)} bytes, expected {size}")
    return bytes(out)


def lzf_compress_reference(data: bytes) -> bytes:
    """Literal-only LZF (valid, never smaller): the simplest stream any decoder must accept."""
    out = bytearray()
    for start in range(0, len(data), _MAX_LITERAL):
        chunk = data[start : start + _MAX_LITERAL]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


# -- numba kernels ------------------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def _decompress_kernel(src: np.ndarray, dst: np.ndarray) -> int:
    """Decode ``src`` into ``dst``; returns bytes written, or -1 truncated, -2 bad reference, -3 overflow."""
    n_src = src.shape[0]
    n_dst = dst.shape[0]
    i = 0
    o = 0
    while i < n_src:
        ctrl = int(src[i])
        i += 1
        if ctrl < 32:
            run = ctrl + 1
            if i + run > n_src:
                return -1
            if o + run > n_dst:
                return -3
            for k in range(run):  # an explicit loop: numba slices cost more than these few bytes
                dst[o + k] = src[i + k]
            i += run
            o += run
        else:
            length = ctrl >> 5
            if length == 7:
                if i >= n_src:
                    return -1
                length += int(src[i])
                i += 1
            if i >= n_src:
                return -1
            ref = o - ((ctrl & 31) << 8) - int(src[i]) - 1
            i += 1
            length += 2
            if ref < 0:
                return -2
            if o + length > n_dst:
                return -3
            for k in range(length):
                dst[o + k] = dst[ref + k]
            o += length
    return o


@nb.njit(cache=True, nogil=True)
def _compress_kernel(src: np.ndarray, dst: np.ndarray) -> int:
    """Encode ``src`` into ``dst`` (large enough for the worst case); returns the bytes written."""
    n = src.shape[0]
    table = np.full(1 << _HASH_BITS, -1, dtype=np.int64)
    o = 0
    lit_start = 0  # first byte of the pending literal run
    i = 0
    while i < n:
        match = 0
        ref = -1
        if i + 2 < n:
            key = (int(src[i]) << 16) | (int(src[i + 1]) << 8) | int(src[i + 2])
            h = ((key * 2654435761) >> 10) & ((1 << _HASH_BITS) - 1)
            ref = table[h]
            table[h] = i
            near = ref >= 0 and i - ref - 1 < _MAX_OFFSET
            if near and src[ref] == src[i] and src[ref + 1] == src[i + 1] and src[ref + 2] == src[i + 2]:
                limit = min(_MAX_MATCH, n - i)
                match = 3
                while match < limit and src[ref + match] == src[i + match]:
                    match += 1
        if match == 0:
            i += 1
            if i - lit_start == _MAX_LITERAL:
                dst[o] = _MAX_LITERAL - 1
                dst[o + 1 : o + 1 + _MAX_LITERAL] = src[lit_start:i]
                o += 1 + _MAX_LITERAL
                lit_start = i
            continue
        if i > lit_start:
            run = i - lit_start
            dst[o] = run - 1
            dst[o + 1 : o + 1 + run] = src[lit_start:i]
            o += 1 + run
        offset = i - ref - 1
        length = match - 2
        if length < 7:
            dst[o] = (length << 5) | (offset >> 8)
            o += 1
        else:
            dst[o] = (7 << 5) | (offset >> 8)
            dst[o + 1] = length - 7
            o += 2
        dst[o] = offset & 255
        o += 1
        i += match
        lit_start = i
    if n > lit_start:
        run = n - lit_start
        dst[o] = run - 1
        dst[o + 1 : o + 1 + run] = src[lit_start:n]
        o += 1 + run
    return o


# -- public API ---------------------------------------------------------------------------------------------------


def lzf_decompress(data: Buffer, size: int) -> np.ndarray:
    """Decompress LZF ``data`` into a new uint8 array of exactly ``size`` bytes."""
    dst = np.empty(size, dtype=np.uint8)
    written = _decompress_kernel(_as_bytes(data), dst)
    if written == -1:
        raise CloudFormatError("LZF data is truncated (a run or back-reference passes its end)")
    if written == -2:
        raise CloudFormatError("LZF data is corrupt: a back-reference points before the start of the output")
    if written == -3 or written != size:
        got = "more than" if written == -3 else f"{written} bytes, not"
        raise CloudFormatError(f"LZF data decompresses to {got} the {size} bytes its header announces")
    return dst


def lzf_compress(data: Buffer) -> bytes:
    """Compress ``data`` with LZF (back-references found through a 3-byte hash table)."""
    src = _as_bytes(data)
    # worst case: all literals, one control byte per 32 bytes
    dst = np.empty(len(src) + len(src) // _MAX_LITERAL + 1, dtype=np.uint8)
    written = _compress_kernel(src, dst)
    return dst[:written].tobytes()


def _as_bytes(data: Buffer) -> np.ndarray:
    """The raw bytes of ``data`` as a contiguous uint8 array (reinterpreted, never value-cast)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)
