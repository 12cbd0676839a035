"""A sensor's beam table from its unlabelled scans: rows from the ring field, else clustered from elevations.

* With a ``ring``/``channel`` field (:data:`perception_ws.projection.RING_FIELDS`) every return names its
  laser, so each ring value's cone is fitted directly (:func:`perception_ws.adapt.beam_fit.fit_rows`) and the
  table lists the beams by ring value (``laser_id`` numbering: the projection sorts them into rows, whatever
  the driver's numbering). A ring without returns takes the base sensor's beam, or is interpolated from
  its neighbours when the fitted rings run monotonically in elevation.
* Without one, the beams are seeded by the base sensor's table (same beam count) or by the peaks of the
  elevation histogram (:mod:`perception_ws.adapt.beam_peaks`), then refined like 1-D k-means: each return
  goes to its nearest beam (the projection's own table rule), each beam is refitted to its returns, until
  no return changes beam. Without a beam count, fitted beams that catch under :data:`MIN_BEAM_SHARE` of a
  typical beam's returns are dropped and the rest refined again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from perception_ws.adapt.beam_fit import BeamFit, fit_rows
from perception_ws.adapt.beam_peaks import beam_seeds
from perception_ws.calib.sensors import SensorModel
from perception_ws.errors import SensorError
from perception_ws.projection import RING_FIELDS, project
from perception_ws.scan import Scan

MAX_ROUNDS = 20
#: a table needs returns on at least this share of its rings; the rest may come from the base or neighbours.
MIN_OBSERVED_RINGS = 0.75
#: with the beam count left to the data, a fitted beam needs this share of the median beam's returns.
MIN_BEAM_SHARE = 0.1
#: columns of the projection that assigns returns to beams (only its rows are used).
_ASSIGN_COLUMNS = 2048
_DEFAULT_AZIMUTH_DEG = 0.2


@dataclass(frozen=True)
class BeamTable:
    """The fitted sensor and how it was obtained."""

    sensor: SensorModel
    #: "ring field 'channel'", "elevations (seeded by hdl64e)" or "elevations (histogram peaks)".
    method: str
    #: per beam in the order the sensor lists them (by ring value, or top first): the fit, or None where
    #: the beam had no returns and was filled (see ``filled``).
    fits: tuple[BeamFit | None, ...]
    #: how each unfitted beam was filled ("vlp16", "interpolated"); empty when every beam was fitted.
    filled: tuple[str, ...]
    #: rounds of assignment and fitting (0 for the ring field).
    rounds: int


def estimate_beam_table(
    scans: Sequence[Scan], base: SensorModel | None = None, beams: int | None = None, name: str = "estimated"
) -> BeamTable:
    """The beam table of the sensor that recorded ``scans`` (see the module doc)."""
    xyz = np.concatenate([scan.xyz for scan in scans]).astype(np.float64)
    finite = np.all(np.isfinite(xyz), axis=1) & (np.hypot(xyz[:, 0], xyz[:, 1]) > 0)
    if not finite.any():
        raise SensorError("beam table: the scans hold no finite returns")
    ring_field = _ring_field(scans)
    if ring_field is not None:
        rings = np.concatenate([np.asarray(scan.points[ring_field]) for scan in scans])
        table = _from_rings(xyz[finite], rings[finite], ring_field, base, beams, name)
    else:
        table = _from_elevations(xyz[finite], base, beams, name)
    resolution = azimuth_resolution_deg(scans, table.sensor)
    sensor = _with(table.sensor, azimuth_resolution_deg=resolution)
    return BeamTable(sensor, table.method, table.fits, table.filled, table.rounds)


def azimuth_resolution_deg(scans: Sequence[Scan], sensor: SensorModel) -> float:
    """The median angle between azimuth-neighbouring returns of one beam (its firing step)."""
    steps = []
    for scan in scans:
        rows = _rows(scan.xyz.astype(np.float64), sensor, scan)
        azimuth = np.degrees(np.arctan2(scan.xyz[:, 1], scan.xyz[:, 0]).astype(np.float64))
        order = np.lexsort((azimuth, rows))
        gaps = np.diff(azimuth[order])
        same_row = np.diff(rows[order]) == 0
        steps.append(gaps[same_row & (gaps > 1e-4)])
    found = np.concatenate(steps) if steps else np.empty(0)
    if len(found) == 0:
        return sensor.azimuth_resolution_deg
    return float(np.round(np.median(found), 4))


# -- the two ways ------------------------------------------------------------------------------


def _from_rings(
    xyz: np.ndarray, rings: np.ndarray, field: str, base: SensorModel | None, beams: int | None, name: str
) -> BeamTable:
    if np.any(rings < 0) or np.any(rings != np.round(rings)):
        raise SensorError(f"beam table: ring field {field!r} holds negative or fractional values")
    found = int(rings.max()) + 1
    count = base.height if base is not None else (beams or found)
    if found != count:
        source = f"sensor {base.name} has" if base is not None else "asked for"
        raise SensorError(
            f"beam table: ring field {field!r} holds values 0..{found - 1} ({found} rings) but {source} {count} beams"
        )
    fits = fit_rows(xyz, rings.astype(np.int64), count)
    observed = [i for i, fit in enumerate(fits) if fit is not None]
    if len(observed) < MIN_OBSERVED_RINGS * count:
        raise SensorError(
            f"beam table: only {len(observed)} of {count} rings of field {field!r} hold returns; "
            f"need {MIN_OBSERVED_RINGS:.0%}"
        )
    elevations = np.array([np.nan if f is None else f.elevation_deg for f in fits])
    heights = np.array([np.nan if f is None else f.height_m for f in fits])
    filled = _fill_missing(elevations, heights, base, field)
    sensor = SensorModel.from_table(name, elevations, _DEFAULT_AZIMUTH_DEG, heights, ring_numbering="laser_id")
    return BeamTable(_with_numbering(sensor, elevations), f"ring field {field!r}", tuple(fits), filled, 0)


def _from_elevations(xyz: np.ndarray, base: SensorModel | None, beams: int | None, name: str) -> BeamTable:
    if base is not None and beams is not None and beams != base.height:
        raise SensorError(f"beam table: {beams} beams asked for but sensor {base.name} has {base.height}")
    if base is not None:
        elevations, heights = base.elevations_deg.copy(), base.beam_heights_m.copy()
        method = f"elevations (seeded by {base.name})"
    else:
        seeds = beam_seeds(xyz, beams)
        elevations, heights = seeds.elevations_deg, seeds.heights_m
        method = "elevations (histogram peaks)"
    sensor, fits, rounds = _refine(xyz, elevations, heights, name)
    if base is None and beams is None:
        # the beam count is the data's: a "beam" that catches a small share of a typical beam's returns is
        # a patch of near returns (the car body, a kerb) that the histogram showed as a peak
        counts = np.array([fit.points for fit in fits if fit is not None])
        real = counts >= MIN_BEAM_SHARE * np.median(counts)
        if not real.all():
            sensor, fits, more = _refine(xyz, sensor.elevations_deg[real], sensor.beam_heights_m[real], name)
            rounds += more
    return BeamTable(sensor, method, tuple(fits), (), rounds)


def _refine(
    xyz: np.ndarray, elevations: np.ndarray, heights: np.ndarray, name: str
) -> tuple[SensorModel, list[BeamFit | None], int]:
    """Alternate nearest-beam assignment and per-beam fits from the given beams until no return moves."""
    rows = np.full(len(xyz), -1)
    fits: list[BeamFit | None] = []
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        sensor = SensorModel.from_table(name, elevations, _DEFAULT_AZIMUTH_DEG, heights, ring_numbering="top_down")
        new_rows = _rows(xyz, sensor)
        if np.array_equal(new_rows, rows):
            break
        rows = new_rows
        fits = fit_rows(xyz, rows, sensor.height)
        if any(f is None for f in fits):
            empty = [i for i, f in enumerate(fits) if f is None]
            raise SensorError(
                f"beam table: beams {empty} of {sensor.height} catch no returns; the cloud has fewer beams "
                "(pass the right sensor or beam count)"
            )
        elevations = np.array([f.elevation_deg for f in fits if f is not None])
        heights = np.array([f.height_m for f in fits if f is not None])
    sensor = SensorModel.from_table(name, elevations, _DEFAULT_AZIMUTH_DEG, heights, ring_numbering="top_down")
    return sensor, fits, rounds


# -- helpers -----------------------------------------------------------------------------------


def _ring_field(scans: Sequence[Scan]) -> str | None:
    names = [set(scan.points.dtype.names or ()) for scan in scans]
    return next((f for f in RING_FIELDS if all(f in n for n in names)), None)


def _rows(xyz: np.ndarray, sensor: SensorModel, scan: Scan | None = None) -> np.ndarray:
    """Each return's beam row: its ring through the sensor's numbering, else the nearest beam."""
    points = scan if scan is not None else xyz
    return project(points, sensor, fov_deg=360.0, width=_ASSIGN_COLUMNS).rows


def _fill_missing(elevations: np.ndarray, heights: np.ndarray, base: SensorModel | None, field: str) -> tuple[str, ...]:
    """Fill the rings without returns in place (base sensor, else interpolation); how each was filled."""
    missing = np.flatnonzero(np.isnan(elevations))
    if len(missing) == 0:
        return ()
    if base is not None:
        base_rows = base.ring_to_row[missing]
        elevations[missing] = base.elevations_deg[base_rows]
        heights[missing] = base.beam_heights_m[base_rows]
        return tuple(f"ring {r}: {base.name}" for r in missing)
    known = np.flatnonzero(~np.isnan(elevations))
    steps = np.diff(elevations[known])
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise SensorError(
            f"beam table: rings {missing.tolist()} of field {field!r} hold no returns and the others are not "
            "ordered by elevation; pass the sensor (--sensor) to take them from its table"
        )
    # linear in the ring number, extended past the ends with the end rings' spacing
    line = np.polyfit(known[:2], elevations[known[:2]], 1), np.polyfit(known[-2:], elevations[known[-2:]], 1)
    for ring in missing:
        if ring < known[0] or ring > known[-1]:
            elevations[ring] = np.polyval(line[0] if ring < known[0] else line[1], ring)
        else:
            elevations[ring] = np.interp(ring, known, elevations[known])
    heights[missing] = np.median(heights[known])
    return tuple(f"ring {r}: interpolated" for r in missing)


def _with_numbering(sensor: SensorModel, by_ring: np.ndarray) -> SensorModel:
    """Name the driver's numbering when the rings run monotonically (bottom_up / top_down); the table
    listed by ring value is read the same under either name and ``laser_id``.
    """
    steps = np.diff(by_ring)
    if np.all(steps > 0):
        return sensor.with_ring_numbering("bottom_up")
    if np.all(steps < 0):
        return sensor.with_ring_numbering("top_down")
    return sensor


def _with(sensor: SensorModel, azimuth_resolution_deg: float) -> SensorModel:
    return replace(sensor, azimuth_resolution_deg=azimuth_resolution_deg)
