"""Input checks shared by the instance stage: one clear error for a malformed cloud or setting."""

from __future__ import annotations

import numpy as np

from perception_ws.errors import CloudFormatError, PerceptionError


def as_xyz(xyz: object, what: str = "points") -> np.ndarray:
    """``xyz`` as a float64 (N, 3) array with finite values (N may be 0), or a CloudFormatError."""
    try:
        pts = np.asarray(xyz, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CloudFormatError(f"{what}: cannot be read as an (N, 3) float array ({exc})") from None
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise CloudFormatError(f"{what}: have shape {pts.shape}, expected (N, 3) x, y, z")
    if np.isfinite(pts).all():  # one flat reduction; rows are only looked at to name the culprits
        return pts
    bad = ~np.isfinite(pts).all(axis=1)
    raise CloudFormatError(
        f"{what}: {int(bad.sum())} point(s) have NaN or Inf coordinates (first at row {int(np.argmax(bad))}); "
        "expected finite x, y, z (drop invalid returns first)"
    )


def as_per_point(values: object, n: int, what: str) -> np.ndarray:
    """A 1-D per-point array of length ``n``, or a CloudFormatError."""
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise CloudFormatError(f"{what}: has shape {arr.shape}, expected ({n},), one entry per point")
    return arr


def positive(value: float, what: str) -> float:
    """A finite number > 0, or a PerceptionError naming the setting."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PerceptionError(f"{what} must be a number > 0; got {value!r}") from None
    if not np.isfinite(number) or number <= 0:
        raise PerceptionError(f"{what} must be a finite number > 0; got {value!r}")
    return number


def positive_int(value: int, what: str) -> int:
    """An integer >= 1, or a PerceptionError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise PerceptionError(f"{what} must be an integer >= 1; got {value!r}")
    return int(value)
