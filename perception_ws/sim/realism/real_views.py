"""Scans as full-turn range-image views: the common ground on which real and simulated sweeps are measured.

The dropout map (:mod:`perception_ws.sim.realism.dropout_map`) and the realism report
(:mod:`perception_ws.sim.realism.compare`) both need, per frame, which pixel of a ``rows x columns`` full-turn
range image holds a return (the column layout of :mod:`perception_ws.projection`: column 0 at +180
degrees, clockwise) and which columns the frame covers at all:

* SqueezeSeg's front-view frames (64 x 512 over the front 90 degrees) are used pixel for pixel: at
  2048 columns per turn a column is 0.176 degrees wide, exactly one SqueezeSeg column, so the frame
  fills the middle quarter of the turn and only those columns count as seen;
* scans that carry a full-turn range image (generated simulator frames) use it as it is;
* every other scan is projected: KITTI ``.bin`` files by their storage order (exact rings, also on
  motion-compensated scans), clouds that are not stored ring by ring (PCD sequences) by the beam
  table, and clouds with a ring field (simulated scans) by that field.

:func:`real_views` walks a folder of real data and keeps the scans of one sensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception_ws.calib.sensors import SensorModel, get_sensor
from perception_ws.errors import CloudFormatError, DatasetError, PerceptionError, ProjectionError
from perception_ws.io import open_dataset
from perception_ws.projection import RING_FIELDS, project
from perception_ws.scan import Scan

#: the field of view of a SqueezeSeg-style front-view frame.
FRONT_FOV_DEG = 90.0
#: a scan without a sensor name counts as the wanted sensor when its beam-table projection fills at
#: least this share of the rows, each to at least ``_ROW_FILL`` (a 16- or 32-beam cloud leaves rows empty).
_ROWS_FILLED, _ROW_FILL = 0.9, 0.25


@dataclass(frozen=True, eq=False)
class RangeView:
    """One frame as a full-turn range image: ranges where a return is, which columns the frame covers."""

    name: str
    #: (H, W) float32 metres from the sensor origin; 0 where the pixel is empty.
    range: np.ndarray
    #: (W,) bool: the columns this frame covers (all for a full turn).
    seen: np.ndarray
    scan: Scan

    @property
    def valid(self) -> np.ndarray:
        """(H, W) bool: the pixel holds a return."""
        return self.range > 0


def scan_view(scan: Scan, sensor: SensorModel | str = "hdl64e", columns: int = 2048) -> RangeView:
    """The full-turn view of ``scan`` (see the module doc for how each kind of scan is placed)."""
    model = get_sensor(sensor) if isinstance(sensor, str) else sensor
    if scan.range_image is not None:
        return _range_image_view(scan, model, columns)
    names = scan.points.dtype.names or ()
    has_ring = any(f in names for f in RING_FIELDS)
    try:
        projection = project(scan, model, fov_deg=360.0, width=columns, row_source="auto" if has_ring else "order")
    except (ProjectionError, CloudFormatError):  # not stored ring by ring: the nearest beam of the table
        projection = project(scan, model, fov_deg=360.0, width=columns, row_source="table")
    return RangeView(scan.name, projection.image[:, :, 4].copy(), np.ones(columns, dtype=bool), scan)


def _front_columns(columns: int) -> np.ndarray:
    seen = np.zeros(columns, dtype=bool)
    start = round((180.0 - FRONT_FOV_DEG / 2) / 360.0 * columns)
    seen[start : start + round(columns * FRONT_FOV_DEG / 360.0)] = True
    return seen


def _range_image_view(scan: Scan, model: SensorModel, columns: int) -> RangeView:
    """A scan that carries its range image: a full turn (generated sim frames) or the front 90 degrees
    (SqueezeSeg / GTA-LiDAR); every layout keeps the range in the channel before the last.
    """
    image = np.asarray(scan.range_image)
    rows, width = image.shape[:2]
    if rows == model.height and width == columns:
        return RangeView(scan.name, image[:, :, -2].copy(), np.ones(columns, dtype=bool), scan)
    if rows != model.height or width * 360.0 / FRONT_FOV_DEG != columns:
        raise DatasetError(
            f"scan {scan.name!r}: a {rows} x {width} range image does not fit a {model.height} x {columns} full turn; "
            f"expected {model.height} rows and {columns} columns (a full turn) or {columns * FRONT_FOV_DEG / 360:g} "
            f"(the front {FRONT_FOV_DEG:g} degrees)"
        )
    seen = _front_columns(columns)
    out = np.zeros((rows, columns), dtype=np.float32)
    out[:, seen] = image[:, :, -2]
    return RangeView(scan.name, out, seen, scan)


def looks_like(scan: Scan, model: SensorModel, columns: int = 2048) -> bool:
    """Whether a scan without a sensor name fills ``model``'s rows the way a scan of that sensor would."""
    if scan.range_image is not None:
        return int(scan.range_image.shape[0]) == model.height
    rows = project(scan, model, fov_deg=360.0, width=columns, row_source="table").image[:, :, 5].mean(axis=1)
    return bool(np.mean(rows >= _ROW_FILL) >= _ROWS_FILLED)


def real_sources(folder: Path) -> list[Path]:
    """What to open under ``folder``: its sub-folders that a reader understands, else ``folder`` itself."""
    from perception_ws.io.registry import find_reader

    if folder.is_file():
        return [folder]
    subfolders = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            find_reader(child)
        except DatasetError:
            continue
        subfolders.append(child)
    return subfolders or [folder]


def real_views(folder: str | Path, sensor: str = "hdl64e", columns: int = 2048) -> tuple[list[RangeView], list[str]]:
    """The views of every scan of ``sensor`` under ``folder``, and notes on what was left out and why.

    Scans named as another sensor are left out; scans with no sensor name are kept when they look
    like ``sensor`` (:func:`looks_like`). Raises :class:`DatasetError` when no scan is left.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder of real scans")
    model = get_sensor(sensor)
    views: list[RangeView] = []
    notes: list[str] = []
    for source in real_sources(root):
        label = source.relative_to(root).as_posix() if source != root else root.name
        try:
            dataset = open_dataset(source)
        except PerceptionError as error:
            notes.append(f"{label}: skipped ({error})")
            continue
        kept = 0
        for scan in dataset:
            if scan.sensor not in (None, model.name) or (scan.sensor is None and not looks_like(scan, model, columns)):
                continue
            view = scan_view(scan, model, columns)
            views.append(RangeView(f"{label}/{scan.name}", view.range, view.seen, scan))
            kept += 1
        if kept < len(dataset):
            notes.append(f"{label}: {len(dataset) - kept} of {len(dataset)} scans are not {model.name} scans; left out")
    if not views:
        raise DatasetError(f"{root}: holds no {model.name} scans ({'; '.join(notes) or 'nothing readable'})")
    return views, notes
