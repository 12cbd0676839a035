r"""Measured dropout map: how often each pixel of a real sweep is empty, ``eps(row, azimuth)`` (docs/algorithms.md §5).

SqueezeSeg's noise augmentation drops each simulated pixel with the probability that the same pixel
is empty in real scans. Here that probability is measured on real scans placed in a full-turn range
image (:mod:`perception_ws.sim.realism.real_views`, 64 x 2048 for KITTI's HDL-64E), twice:

* ``empty``: the share of the frames covering a pixel in which it holds no return, whatever the reason;
* ``holes``: the same share counted only over the pixels where a return was expected, a surface being
  there by the pixel's neighbours (:mod:`perception_ws.sim.realism.holes`): sensor dropout alone, not the
  rays that hit nothing in range, which the simulator leaves empty by itself.

``dropout: measured`` drops simulated pixels with :meth:`DropoutMap.measured_dropout`: the holes, and in
the recording car's shadow (:meth:`DropoutMap.ego_occlusion`) the ``empty`` frequency: the car leaves no
neighbours to expect a return by, and the simulator has no car under the sensor.

A few dozen frames are far too few for a per-pixel estimate (with 25 frames one pixel's frequency
has a standard error near 0.1), but the pattern is mostly per ring and per azimuth sector: the top
rings see sky over the road, the bottom rings lose the returns the roof and bonnet of the recording
car block (behind the car, and a narrow sector ahead), and everywhere a few per cent of the firings
fall between two 0.176-degree columns. So the map averages, per row, over sectors of
``sector_columns`` adjacent columns (16 by default: 2.8 degrees, a few hundred samples per cell),
and is stored at one value per sector; :class:`~perception_ws.sim.sensor.noise.PixelDropout` resamples it
to a sweep's columns. Holes are rarer than empty pixels and only counted where a return was expected, so a
cell with fewer than :data:`MIN_EXPECTED` expected pixels (sky, the car's shadow, a single frame's thin
sector) takes its row's median over the well-sampled cells instead (the map's median where a whole row
has none).

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
from typing import Any

import numpy as np

from perception_ws.errors import DatasetError
from perception_ws.io.atomic import atomic_file
from perception_ws.sim.realism.holes import expected_returns
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
#: a cell's hole frequency is its own only when at least this many of its pixels expected a return: half
#: the columns of one frame's sector, so a one-scan sensor profile keeps its own values where the scan saw
#: surfaces; below it one cell's share is noise (at 8 samples a share near 0.05 has a standard error of 0.08).
MIN_EXPECTED = 8
#: what an old map (saved before ``holes`` existed) says in its note when loaded.
OLD_FORMAT_NOTE = (
    "[old format without 'holes': measured dropout uses 'empty', sky included; "
    "regenerate with perception_ws.sim.realism.dropout_map or perception_ws.adapt.sensor_profile]"
)


@dataclass(frozen=True, eq=False)
class DropoutMap:
    """Per (row, sector) over the full turn: how often a pixel is ``empty``, and how often it is one of the
    ``holes`` (empty where a return was expected).
    """

    #: (rows, sectors) float32 in 0..1; sector 0 starts at +180 degrees, sectors run clockwise.
    empty: np.ndarray
    #: (rows, sectors) number of pixel observations behind each ``empty`` value.
    samples: np.ndarray
    sensor: str
    #: how it was made: sources, frames, smoothing.
    note: str = ""
    frames: tuple[str, ...] = field(default=())
    #: (rows, sectors) float32 in 0..1; None in a map saved before holes were measured (then ``empty`` stands in).
    holes: np.ndarray | None = None
    #: (rows, sectors) number of pixels that expected a return, behind each ``holes`` value.
    expected: np.ndarray | None = None

    def __post_init__(self) -> None:
        e = np.asarray(self.empty)
        _check_frequencies("empty", e)
        if np.shape(self.samples) != e.shape:
            raise DatasetError(f"dropout map: 'samples' has shape {np.shape(self.samples)}; expected {e.shape}")
        if (self.holes is None) != (self.expected is None):
            raise DatasetError("dropout map: 'holes' and 'expected' come together; got one without the other")
        if self.holes is not None:
            _check_frequencies("holes", np.asarray(self.holes))
            for name in ("holes", "expected"):
                if np.shape(getattr(self, name)) != e.shape:
                    raise DatasetError(
                        f"dropout map: {name!r} has shape {np.shape(getattr(self, name))}; expected {e.shape}"
                    )

    @property
    def rows(self) -> int:
        return int(self.empty.shape[0])

    @property
    def sectors(self) -> int:
        return int(self.empty.shape[1])

    @property
    def sensor_holes(self) -> np.ndarray:
        """The (rows, sectors) frequency of returns lost where a surface was there; ``empty`` for an old map."""
        return self.empty if self.holes is None else self.holes

    def measured_dropout(self, elevations_deg: Sequence[float] | np.ndarray) -> PixelDropout:
        """What ``dropout: measured`` drops (the one place that decides it): the holes, and in the recording
        car's shadow (:meth:`ego_occlusion`) that sector's ``empty`` frequency, which counts every return lost
        there, holes included (``empty >= holes``, so this is the larger of the two).
        """
        if self.holes is None:  # an old map: as before, its 'empty' stands for everything, the car's shadow too
            return PixelDropout(self.empty, fov_deg=360.0)
        return PixelDropout(np.maximum(self.holes, self._ego_probability(elevations_deg)), fov_deg=360.0)

    def ego_occlusion(self, elevations_deg: Sequence[float] | np.ndarray) -> PixelDropout:
        """The returns the recording car itself blocks: this map's ``empty`` probabilities in the sectors of
        the low beams that are mostly empty (see :data:`EGO_EMPTY`), zero elsewhere.

        Added to :class:`~perception_ws.sim.sensor.noise.PhysicalDropout`, which knows nothing of the car the
        sensor sits on: real HDL-64E scans lose up to half of the bottom rings behind and just ahead of it.
        """
        return PixelDropout(self._ego_probability(elevations_deg), fov_deg=360.0)

    def _ego_probability(self, elevations_deg: Sequence[float] | np.ndarray) -> np.ndarray:
        low = np.asarray(elevations_deg, dtype=np.float64) < EGO_ELEVATION_DEG
        if len(low) != self.rows:
            raise DatasetError(f"dropout map: {len(low)} beam elevations for a map of {self.rows} rows")
        blocked = low[:, None] & (self.empty >= EGO_EMPTY)
        return np.where(blocked, self.empty.astype(np.float64), 0.0)

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
        arrays: dict[str, Any] = {  # Any: numpy types the keywords as if one could be allow_pickle
            "empty": self.empty.astype(np.float32),
            "samples": self.samples.astype(np.int32),
            "meta": np.array(json.dumps(meta)),
        }
        if self.holes is not None and self.expected is not None:
            arrays.update(holes=self.holes.astype(np.float32), expected=self.expected.astype(np.int32))
        with atomic_file(target) as handle:
            np.savez_compressed(handle, **arrays)
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
                # maps saved before holes were measured (user profiles among them) still load, as before
                holes = archive["holes"] if "holes" in archive.files else None
                expected = archive["expected"] if "expected" in archive.files else None
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"{where}: cannot read a dropout map (expected empty, samples, meta; {exc})") from None
        note = str(meta.get("note", ""))
        if holes is None:
            note = f"{note} {OLD_FORMAT_NOTE}".strip()
        frames = tuple(meta.get("frames", ()))
        return cls(empty, samples, str(meta["sensor"]), note, frames, holes, expected)


def _check_frequencies(name: str, values: np.ndarray) -> None:
    if values.ndim != 2 or values.size == 0 or not np.all((values >= 0) & (values <= 1)):
        raise DatasetError(f"dropout map: {name!r} must be a 2-D array of frequencies in 0..1; got {values.shape}")


def measure(views: Sequence[RangeView], sensor: str, sector_columns: int = DEFAULT_SECTOR_COLUMNS) -> DropoutMap:
    """The map of ``views`` (all of one sensor, one width): empty and hole shares per row and sector."""
    if not views:
        raise DatasetError("dropout map: no frames to measure")
    rows, columns = views[0].range.shape
    if columns % sector_columns:
        raise DatasetError(f"dropout map: {columns} columns do not split into sectors of {sector_columns}")
    empty = np.zeros((rows, columns), dtype=np.int64)
    expected = np.zeros((rows, columns), dtype=np.int64)
    holes = np.zeros((rows, columns), dtype=np.int64)
    seen = np.zeros(columns, dtype=np.int64)
    for view in views:
        if view.range.shape != (rows, columns):
            raise DatasetError(f"dropout map: frame {view.name!r} is {view.range.shape}; expected {(rows, columns)}")
        empty += ~view.valid & view.seen[None, :]
        seen += view.seen
        surface = expected_returns(view.range, view.seen)
        expected += surface
        holes += surface & ~view.valid
    sectors = columns // sector_columns
    samples = np.broadcast_to(seen.reshape(sectors, sector_columns).sum(axis=1), (rows, sectors)).copy()
    if np.any(samples == 0):
        raise DatasetError("dropout map: some azimuth sectors are covered by no frame; add full-turn scans")
    expected_sum = _per_sector(sector_columns, expected)
    empty_share = (_per_sector(sector_columns, empty) / samples).astype(np.float32)
    hole_share = _hole_share(_per_sector(sector_columns, holes), expected_sum, empty_share, len(views))
    note = (
        f"empty frequency, and hole frequency among the pixels whose neighbours expected a return "
        f"(perception_ws.sim.realism.holes; cells with < {MIN_EXPECTED} such pixels take their row's median; "
        "capped at the empty frequency), "
        f"of {len(views)} real {sensor} frames in a {rows} x {columns} full-turn range image, per row over "
        f"sectors of {sector_columns} columns ({360.0 * sector_columns / columns:.2f} degrees); "
        "perception_ws.sim.realism.dropout_map"
    )
    frames = tuple(v.name for v in views)
    return DropoutMap(empty_share, samples, sensor, note, frames, hole_share, expected_sum)


def _per_sector(sector_columns: int, counts: np.ndarray) -> np.ndarray:
    """(rows, columns) counts summed over each sector's columns: (rows, sectors)."""
    rows, columns = counts.shape
    summed: np.ndarray = counts.reshape(rows, columns // sector_columns, sector_columns).sum(axis=2)
    return summed


def _hole_share(holes: np.ndarray, expected: np.ndarray, empty: np.ndarray, frames: int) -> np.ndarray:
    """Holes / expected per cell; cells under :data:`MIN_EXPECTED` take their row's median of the others.

    Capped at the cell's ``empty`` share: every return is a pixel with a surface, so the share of surface
    pixels that lose their return, ``1 - returns / surface pixels``, cannot exceed the share of all pixels
    that are empty, ``1 - returns / pixels``. The neighbour rule sees fewer surface pixels than there are (the
    edges of objects count as none), so its share can come out above that bound, mostly where a cell's
    empty pixels are nearly all holes.
    """
    sampled = expected >= MIN_EXPECTED
    if not sampled.any():
        raise DatasetError(
            f"dropout map: in none of the {frames} frames do {MIN_EXPECTED} pixels of one sector have returns on "
            "both sides; the scans show too few surfaces to measure the sensor's holes"
        )
    share = np.where(sampled, holes / np.maximum(expected, 1), np.nan)
    overall = float(np.nanmedian(share))
    for row, values in enumerate(share):
        fill = float(np.nanmedian(values)) if sampled[row].any() else overall
        values[~sampled[row]] = fill
    capped: np.ndarray = np.minimum(share, empty).astype(np.float32)
    return capped


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
    print(
        f"wrote {args.out}: {result.rows} x {result.sectors}, mean empty {float(result.empty.mean()):.3f}, "
        f"mean holes {float(result.sensor_holes.mean()):.3f}; {result.note}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
