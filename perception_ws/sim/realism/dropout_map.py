r"""Measured dropout map: how often each pixel of a real sweep is empty, ``eps(row, azimuth)`` (docs/algorithms.md §5).

SqueezeSeg's noise augmentation drops each simulated pixel with the probability that the same pixel
is empty in real scans. Here that probability is measured on real HDL-64E scans placed in a
full-turn range image (:mod:`perception_ws.sim.realism.real_views`, 64 x 2048): for each pixel, the share
of the frames covering it in which it holds no return.

A few dozen frames are far too few for a per-pixel estimate (with 25 frames one pixel's frequency
has a standard error near 0.1), but the pattern is mostly per ring and per azimuth sector: the top
rings see sky over the road, the bottom rings lose the returns the roof and bonnet of the recording
car block (behind the car, and a narrow sector ahead), and everywhere a few per cent of the firings
fall between two 0.176-degree columns. So the map averages, per row, over sectors of
``sector_columns`` adjacent columns (16 by default: 2.8 degrees, a few hundred samples per cell),
and is stored at one value per sector; :class:`~perception_ws.sim.sensor.noise.PixelDropout` resamples it
to a sweep's columns.

The map shipped in ``perception_ws/sim/data/hdl64e_dropout.npz`` is regenerated with::

    python -m perception_ws.sim.realism.dropout_map --real ../shared/data/real \
        --out perception_ws/sim/data/hdl64e_dropout.npz
"""

from __future__ import annotations

import argparse
import importlib.resources
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception_ws.errors import DatasetError
from perception_ws.io.atomic import atomic_file
from perception_ws.sim.realism.real_views import RangeView, real_views
from perception_ws.sim.sensor.noise import PixelDropout

#: the shipped map, inside the package.
SHIPPED = "hdl64e_dropout.npz"
DEFAULT_COLUMNS = 2048
DEFAULT_SECTOR_COLUMNS = 16
#: beams below this elevation can hit the recording car (roof, bonnet, sensor rig) ...
EGO_ELEVATION_DEG = -8.0
#: ... and a sector of such a beam counts as blocked by it when it is empty at least this often in real
#: scans (by chance, a low beam over the street is empty a few per cent of the time).
EGO_EMPTY = 0.5
#: the quantile over a row's sectors that :meth:`DropoutMap.background` takes as the row's random dropout.
BACKGROUND_QUANTILE = 0.25


@dataclass(frozen=True, eq=False)
class DropoutMap:
    """``empty[row, sector]``: the measured frequency with which a pixel is empty, over the full turn."""

    #: (rows, sectors) float32 in 0..1; sector 0 starts at +180 degrees, sectors run clockwise.
    empty: np.ndarray
    #: (rows, sectors) number of pixel observations behind each value.
    samples: np.ndarray
    sensor: str
    #: how it was made: sources, frames, smoothing.
    note: str = ""
    frames: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        e = np.asarray(self.empty)
        if e.ndim != 2 or e.size == 0 or not np.all((e >= 0) & (e <= 1)):
            raise DatasetError(f"dropout map: 'empty' must be a 2-D array of frequencies in 0..1; got shape {e.shape}")
        if np.shape(self.samples) != e.shape:
            raise DatasetError(f"dropout map: 'samples' has shape {np.shape(self.samples)}; expected {e.shape}")

    @property
    def rows(self) -> int:
        return int(self.empty.shape[0])

    @property
    def sectors(self) -> int:
        return int(self.empty.shape[1])

    def pixel_dropout(self) -> PixelDropout:
        """The dropout model that drops simulated pixels with this map's probabilities."""
        return PixelDropout(self.empty, fov_deg=360.0)

    def ego_occlusion(self, elevations_deg: Sequence[float] | np.ndarray) -> PixelDropout:
        """The returns the recording car itself blocks: this map's probabilities in the sectors of the low
        beams that are mostly empty (see :data:`EGO_EMPTY`), zero elsewhere.

        Added to :class:`~perception_ws.sim.sensor.noise.PhysicalDropout`, which knows nothing of the car the
        sensor sits on: real HDL-64E scans lose up to half of the bottom rings behind and just ahead of it.
        """
        low = np.asarray(elevations_deg, dtype=np.float64) < EGO_ELEVATION_DEG
        if len(low) != self.rows:
            raise DatasetError(f"dropout map: {len(low)} beam elevations for a map of {self.rows} rows")
        blocked = low[:, None] & (self.empty >= EGO_EMPTY)
        return PixelDropout(np.where(blocked, self.empty, 0.0), fov_deg=360.0)

    def background(self, quantile: float = BACKGROUND_QUANTILE) -> PixelDropout:
        """The returns every beam loses wherever it points: per row, a low quantile of this map over the
        sectors (sky and the recording car leave the emptiest sectors out of it). Real HDL-64E rows are 3-8 %
        empty even over the street; SqueezeSegV2's CAM exists to be robust to exactly this noise.
        """
        per_row = np.quantile(self.empty, quantile, axis=1)
        return PixelDropout(per_row[:, None], fov_deg=360.0)

    def save(self, path: str | Path) -> Path:
        """Write the map as a compressed ``.npz`` (atomically)."""
        target = Path(path)
        meta = {"sensor": self.sensor, "note": self.note, "frames": list(self.frames)}
        with atomic_file(target) as handle:
            np.savez_compressed(
                handle,
                empty=self.empty.astype(np.float32),
                samples=self.samples.astype(np.int32),
                meta=np.array(json.dumps(meta)),
            )
        return target

    @classmethod
    def load(cls, path: str | Path | None = None) -> DropoutMap:
        """A map written by :meth:`save`; ``None``: the one shipped with the package (HDL-64E, KITTI)."""
        try:
            if path is None:
                data = importlib.resources.files("perception_ws.sim").joinpath("data").joinpath(SHIPPED).read_bytes()
                where = f"perception_ws/sim/data/{SHIPPED}"
                archive = np.load(io.BytesIO(data), allow_pickle=False)
            else:
                where = str(path)
                archive = np.load(Path(path), allow_pickle=False)
            with archive:
                meta = json.loads(str(archive["meta"]))
                empty, samples = archive["empty"], archive["samples"]
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"{where}: cannot read a dropout map (expected empty, samples, meta; {exc})") from None
        return cls(empty, samples, str(meta["sensor"]), str(meta.get("note", "")), tuple(meta.get("frames", ())))


def measure(views: Sequence[RangeView], sensor: str, sector_columns: int = DEFAULT_SECTOR_COLUMNS) -> DropoutMap:
    """The map of ``views`` (all of one sensor, one width): empty share per row and sector."""
    if not views:
        raise DatasetError("dropout map: no frames to measure")
    rows, columns = views[0].range.shape
    if columns % sector_columns:
        raise DatasetError(f"dropout map: {columns} columns do not split into sectors of {sector_columns}")
    empty = np.zeros((rows, columns), dtype=np.int64)
    seen = np.zeros(columns, dtype=np.int64)
    for view in views:
        if view.range.shape != (rows, columns):
            raise DatasetError(f"dropout map: frame {view.name!r} is {view.range.shape}; expected {(rows, columns)}")
        empty += ~view.valid & view.seen[None, :]
        seen += view.seen
    sectors = columns // sector_columns
    empty_sum = empty.reshape(rows, sectors, sector_columns).sum(axis=2)
    samples = np.broadcast_to(seen.reshape(sectors, sector_columns).sum(axis=1), (rows, sectors)).copy()
    if np.any(samples == 0):
        raise DatasetError("dropout map: some azimuth sectors are covered by no frame; add full-turn scans")
    note = (
        f"empty frequency of each pixel of {len(views)} real {sensor} frames in a {rows} x {columns} full-turn "
        f"range image, averaged per row over sectors of {sector_columns} columns "
        f"({360.0 * sector_columns / columns:.2f} degrees); perception_ws.sim.realism.dropout_map"
    )
    frames = tuple(v.name for v in views)
    return DropoutMap((empty_sum / samples).astype(np.float32), samples, sensor, note, frames)


def measure_folder(
    folder: str | Path,
    sensor: str = "hdl64e",
    columns: int = DEFAULT_COLUMNS,
    sector_columns: int = DEFAULT_SECTOR_COLUMNS,
) -> DropoutMap:
    """Measure the map on every ``sensor`` scan under ``folder`` (e.g. ``shared/data/real``)."""
    views, _ = real_views(folder, sensor, columns)
    return measure(views, sensor, sector_columns)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the dropout map of a folder of real scans and save it (the command in the module doc)."""
    parser = argparse.ArgumentParser(description="measure the per-pixel dropout of real scans (docs/algorithms.md §5)")
    parser.add_argument("--real", required=True, help="folder of real scans (e.g. ../shared/data/real)")
    parser.add_argument("--out", required=True, help=".npz to write")
    parser.add_argument("--sensor", default="hdl64e")
    parser.add_argument("--columns", type=int, default=DEFAULT_COLUMNS)
    parser.add_argument("--sector-columns", type=int, default=DEFAULT_SECTOR_COLUMNS)
    args = parser.parse_args(argv)
    result = measure_folder(args.real, args.sensor, args.columns, args.sector_columns)
    result.save(args.out)
    print(f"wrote {args.out}: {result.rows} x {result.sectors}; {result.note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
