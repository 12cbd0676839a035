"""Points as lines of text, one per point (the ascii flavours of PCD and PLY)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np

from perception_ws.errors import CloudFormatError


def format_text_rows(records: np.ndarray) -> bytes:
    """One line per record, values separated by spaces; sub-array fields give one value per element.

    Floats are written in their shortest form that reads back to the identical value (numpy's
    repr), so a text round trip is exact except for the payload bits of NaNs.
    """
    if len(records) == 0:
        return b""
    columns: list[np.ndarray] = []
    for name in records.dtype.names or ():
        values = records[name].reshape(len(records), -1)
        columns.extend(values[:, k].astype(str) for k in range(values.shape[1]))
    lines = columns[0]
    for column in columns[1:]:
        lines = np.char.add(np.char.add(lines, " "), column)
    return ("\n".join(lines.tolist()) + "\n").encode("ascii")


def parse_text_rows(
    text: bytes | bytearray | memoryview,
    dtype: np.dtype,
    rows: int,
    what: str,
    usecols: Sequence[int] | None = None,
    skiprows: int = 0,
) -> np.ndarray:
    """``rows`` records of ``dtype`` from whitespace-separated text (after ``skiprows`` lines).

    ``what`` names the source in the error raised when the text is malformed or too short.
    """
    if rows == 0:
        return np.zeros(0, dtype=dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below instead
            records = np.loadtxt(
                io.StringIO(bytes(text).decode("ascii")),
                dtype=dtype,
                comments=None,
                usecols=usecols,
                skiprows=skiprows,
                max_rows=rows,
                ndmin=1,
            )
    except (ValueError, UnicodeDecodeError, OverflowError) as err:
        raise CloudFormatError(f"{what}: text data does not match the header: {err}") from None
    if len(records) != rows:
        raise CloudFormatError(f"{what}: text data is truncated: {len(records)} rows, expected {rows}")
    return records
