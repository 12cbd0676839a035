"""The sensor from the data: beam table, mounting height, dropout map and intensity scale of a target.

From unlabelled scans alone (docs/algorithms.md §5): the beam table (:mod:`perception_ws.adapt.beam_table`:
rows from the ring field, else clustered from elevations), the height of the sensor above the road
(:mod:`perception_ws.adapt.mounting`), the shares of empty pixels and of holes per (row, azimuth sector) in the
format the simulator's ``PixelDropout`` reads (:mod:`perception_ws.sim.realism.dropout_map`, measured on the
fitted table at its own firing step), and the intensity range (:mod:`perception_ws.adapt.intensity_scale`), with
how each part was obtained.

    python -m perception_ws.adapt.sensor_profile --target PATH [--sensor NAME] [--beams N] --out DIR

writes ``profile.json``, ``sensor.yaml`` (loadable by ``load_sensor`` and the node's ``sensor.model``
parameter) and ``dropout.npz`` (``DropoutMap.load``), and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from perception_ws.adapt.beam_fit import BeamFit
from perception_ws.adapt.beam_table import estimate_beam_table
from perception_ws.adapt.coverage import Coverage, scanned_coverage
from perception_ws.adapt.intensity_scale import IntensityScale, intensity_scale
from perception_ws.adapt.mounting import MountingHeight, mounting_height
from perception_ws.calib.sensors import SensorModel, load_sensor, sensor_from_mapping
from perception_ws.errors import DatasetError, PerceptionError
from perception_ws.io import Dataset, open_dataset
from perception_ws.io.atomic import atomic_file
from perception_ws.scan import Scan
from perception_ws.sim.realism.dropout_map import DEFAULT_SECTOR_COLUMNS, DropoutMap, measure
from perception_ws.sim.realism.real_views import scan_view
from perception_ws.sim.simulated_sensor import DROPOUT_NPZ, PROFILE_JSON, SENSOR_YAML

DEFAULT_FRAMES = 12


@dataclass(frozen=True, eq=False)
class SensorProfile:
    """What the target's scans say about the sensor that recorded them."""

    sensor: SensorModel
    mounting: MountingHeight
    dropout: DropoutMap
    intensity: IntensityScale
    #: source path, frames used, how the beam table was obtained, per-beam fit residuals.
    provenance: dict[str, Any]
    #: the sector of the turn the scans hold (profiles saved before it was measured load as the whole turn)
    coverage: Coverage = field(default_factory=Coverage)

    def to_json(self) -> dict[str, Any]:
        """Everything but the dropout array (it goes to ``dropout.npz``), as plain JSON values."""
        return {
            "sensor": sensor_mapping(self.sensor),
            "mounting": asdict(self.mounting),
            "intensity": asdict(self.intensity),
            "dropout": {
                "file": DROPOUT_NPZ,
                "rows": self.dropout.rows,
                "sectors": self.dropout.sectors,
                "mean_empty_per_row": [round(float(v), 4) for v in self.dropout.empty.mean(axis=1)],
                "mean_holes_per_row": [round(float(v), 4) for v in self.dropout.sensor_holes.mean(axis=1)],
                "note": self.dropout.note,
            },
            "provenance": self.provenance,
            "coverage": asdict(self.coverage),
        }

    def save(self, folder: str | Path) -> Path:
        """Write profile.json, sensor.yaml and dropout.npz into ``folder`` (each atomically)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_file(out / PROFILE_JSON) as handle:
            handle.write(json.dumps(self.to_json(), indent=2).encode())
        with atomic_file(out / SENSOR_YAML) as handle:
            handle.write(yaml.safe_dump(sensor_mapping(self.sensor), sort_keys=False, width=110).encode())
        self.dropout.save(out / DROPOUT_NPZ)
        return out

    @classmethod
    def load(cls, folder: str | Path) -> SensorProfile:
        """A profile written by :meth:`save`."""
        path = Path(folder) / PROFILE_JSON
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            mounting = data["mounting"]
            intensity = data["intensity"]
            return cls(
                sensor_from_mapping(data["sensor"], str(path)),
                MountingHeight.from_json(mounting),
                DropoutMap.load(Path(folder) / data["dropout"]["file"]),
                IntensityScale(
                    intensity["kind"], intensity["scale"], intensity["reason"], tuple(intensity["percentiles"])
                ),
                data["provenance"],
                Coverage(**data["coverage"]) if "coverage" in data else Coverage(),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}: not a sensor profile ({type(exc).__name__}: {exc})") from None


def first_scans(dataset: Dataset, frames: int, source: str) -> list[Scan]:
    """The first ``frames`` scans of ``dataset``; one line with what its reader noted when it holds none (a bag
    without a topic of clouds or raw packets says which topics it has).
    """
    if len(dataset) == 0:
        raise DatasetError(f"sensor profile: {source} holds no scans ({'; '.join(dataset.notes) or 'it is empty'})")
    return [dataset[i] for i in range(min(frames, len(dataset)))]


def estimate_profile(
    scans: Sequence[Scan],
    base: SensorModel | None = None,
    beams: int | None = None,
    source: str = "",
    name: str = "estimated",
) -> SensorProfile:
    """The profile of the sensor that recorded ``scans`` (unlabelled; labels are never read).

    ``base``: a known sensor of the same beam count whose table seeds the fit (and fills rings without
    returns); ``beams``: the beam count when no base is given (else found from the ring field or the
    elevation peaks). Raises :class:`~perception_ws.errors.SensorError` / ``DatasetError`` on bad input.
    """
    scans = list(scans)
    if not scans:
        raise DatasetError(f"sensor profile: {source or 'the target'} holds no scans")
    if sum(len(scan.points) for scan in scans) == 0:
        raise DatasetError(f"sensor profile: the {len(scans)} scans of {source or 'the target'} hold no points")
    table = estimate_beam_table(scans, base, beams, name)
    columns = dropout_columns(table.sensor)
    views = [scan_view(scan, table.sensor, columns) for scan in scans]
    dropout = measure(views, table.sensor.name, DEFAULT_SECTOR_COLUMNS)
    provenance = {
        "source": source,
        "frames": [scan.name for scan in scans],
        "beam_table": table.method,
        "base_sensor": base.name if base is not None else None,
        "assignment_rounds": table.rounds,
        "filled_beams": list(table.filled),
        "beam_fits": [_fit_json(fit) for fit in table.fits],
        "mounting_height": "RANSAC plane of the lowest returns 2-15 m around the sensor, median over the scans",
        "dropout": f"empty and hole shares per row and sector of {columns}-column full-turn range images on the "
        "fitted table",
    }
    return SensorProfile(
        table.sensor, mounting_height(scans), dropout, intensity_scale(scans), provenance, scanned_coverage(scans)
    )


def dropout_columns(sensor: SensorModel) -> int:
    """The width of the range images the dropout map is measured on: the sensor's firing columns a turn,
    rounded down to whole sectors. Finer columns than the firing step would leave columns a beam skips
    (a VLP-16 firing every 0.2 deg leaves 12 % of 2048 columns empty in every row), and those would count as
    holes; coarser ones only put two firings in a pixel now and then.
    """
    return max(1, sensor.columns_per_turn // DEFAULT_SECTOR_COLUMNS) * DEFAULT_SECTOR_COLUMNS


def sensor_mapping(sensor: SensorModel) -> dict[str, Any]:
    """A sensor as the mapping a sensor YAML holds (by laser id, as ``load_sensor`` reads it back)."""
    by_laser = sensor.laser_rows
    return {
        "name": sensor.name,
        "source": sensor.source or "estimated from unlabelled scans by perception_ws.adapt.sensor_profile",
        "elevations_deg": [round(float(v), 4) for v in sensor.elevations_deg[by_laser]],
        "vertical_offsets_m": [round(float(v), 4) for v in sensor.beam_heights_m[by_laser]],
        "azimuth_resolution_deg": sensor.azimuth_resolution_deg,
        "rate_hz": sensor.rate_hz,
        "max_range_m": sensor.max_range_m,
        "ring_numbering": sensor.ring_numbering,
    }


def _fit_json(fit: BeamFit | None) -> dict[str, float | int] | None:
    if fit is None:
        return None
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(fit).items()}


def summary(profile: SensorProfile) -> str:
    """A short table of the profile, for a terminal."""
    s, m, i = profile.sensor, profile.mounting, profile.intensity
    top, bottom = s.vertical_fov_deg
    fits = [f for f in profile.provenance["beam_fits"] if f is not None]
    worst = max((f["rms_deg"] for f in fits), default=float("nan"))
    lines = [
        f"source            {profile.provenance['source']} ({len(profile.provenance['frames'])} frames)",
        f"beam table        {s.height} beams {top:+.3f}..{bottom:+.3f} deg, from {profile.provenance['beam_table']}",
        f"                  worst per-beam rms residual {worst:.4f} deg; "
        f"filled: {profile.provenance['filled_beams'] or 'none'}",
        f"azimuth step      {s.azimuth_resolution_deg:g} deg ({s.columns_per_turn} columns a turn)",
        f"field of view     {profile.coverage.fov_deg:g} deg centred on +x ({profile.coverage.note})",
        f"mounting height   {m.height_m:.3f} m ({_measured(m)})",
        f"dropout map       {profile.dropout.rows} x {profile.dropout.sectors}, "
        f"mean empty share {float(profile.dropout.empty.mean()):.3f}, "
        f"holes (empty where a return was expected) {float(profile.dropout.sensor_holes.mean()):.3f}",
        f"intensity         {i.kind} (x {i.scale:.6g}): {i.reason}",
    ]
    if not m.confident:
        lines.append(f"warning: mounting height not measured: {m.note}")
    return "\n".join(lines)


def _measured(mounting: MountingHeight) -> str:
    if not mounting.per_scan_m:
        return "no ground plane found"
    heights, shares = mounting.per_scan_m, mounting.ground_share
    return (
        f"per scan {min(heights):.3f}..{max(heights):.3f} m on {min(shares):.0%}..{max(shares):.0%} of the lowest "
        f"returns; ground tilt {mounting.tilt_deg:.1f} deg{'' if mounting.confident else '; not trusted'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command in the module doc: estimate, save, print the table; one error line and 2 on bad input."""
    parser = argparse.ArgumentParser(description="estimate the sensor profile of unlabelled scans")
    parser.add_argument("--target", required=True, help="a scan file, folder or bag (anything open_dataset reads)")
    parser.add_argument("--sensor", help="a known sensor (name or YAML) of the same beam count to seed the fit")
    parser.add_argument("--beams", type=int, help="the beam count, when no --sensor is given")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="scans to use (the first N)")
    parser.add_argument("--out", required=True, help="folder for profile.json, sensor.yaml, dropout.npz")
    args = parser.parse_args(argv)
    try:
        scans = first_scans(open_dataset(args.target), args.frames, str(args.target))
        base = load_sensor(args.sensor) if args.sensor else None
        profile = estimate_profile(scans, base, args.beams, source=str(args.target))
        out = profile.save(args.out)
    except PerceptionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary(profile))
    print(f"wrote {out / PROFILE_JSON}, {out / SENSOR_YAML}, {out / DROPOUT_NPZ}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
