"""LiDAR sensor models: the beam table of each supported scanner, and user tables from YAML.

A :class:`SensorModel` holds what the range-image projection needs to know about a spinning LiDAR:
the elevation of every beam, optionally the height of each beam's origin (the HDL-64E's two laser
blocks sit ~8 cm apart), the azimuth resolution, and how a cloud's ``ring``/``channel`` field
numbers the beams.

Beams are stored in ROW order: row 0 is the highest beam, the last row the lowest, as in a range
image. Datasheets list beams by *laser id* (firing order), which is interleaved for most Velodyne
models; the YAML files keep that order and :meth:`SensorModel.from_table` sorts it into rows.

What the ``ring`` field means depends on the driver, not on the sensor, so it is a setting
(:data:`RING_NUMBERINGS`): ``laser_id`` (the packet's laser id, i.e. the datasheet order),
``bottom_up`` (ring 0 = lowest beam: the ROS ``velodyne_pointcloud`` driver, and the Autoware-style
``channel`` field of the VLP-16 sample in the real data) or ``top_down`` (ring 0 = highest beam:
Ouster drivers, and KITTI's storage order).
"""

from __future__ import annotations

import functools
import importlib.resources
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import yaml

from perception_ws.errors import SensorError

RingNumbering = Literal["laser_id", "bottom_up", "top_down"]
RING_NUMBERINGS: tuple[RingNumbering, ...] = ("laser_id", "bottom_up", "top_down")

#: the keys a sensor YAML may hold (plus one of azimuth_resolution_deg / columns_per_turn, checked apart).
_REQUIRED_KEYS = ("elevations_deg",)
_OPTIONAL_KEYS = (
    "name",
    "source",
    "vertical_offsets_m",
    "azimuth_resolution_deg",
    "columns_per_turn",
    "rate_hz",
    "max_range_m",
    "ring_numbering",
)
_DEFAULT_RATE_HZ = 10.0
_DEFAULT_MAX_RANGE_M = 100.0


@dataclass(frozen=True, eq=False)
class SensorModel:
    """One spinning LiDAR. Per-beam arrays are read-only and in row order (row 0 = highest beam)."""

    name: str
    #: elevation of each beam (degrees), strictly decreasing from row 0 (top) to the last row.
    elevations_deg: np.ndarray
    #: z of each beam's origin in the sensor frame (metres); zeros when the datasheet gives none.
    beam_heights_m: np.ndarray
    #: row of each laser id (index = laser id as the datasheet lists them).
    laser_rows: np.ndarray
    azimuth_resolution_deg: float
    rate_hz: float = _DEFAULT_RATE_HZ
    max_range_m: float = _DEFAULT_MAX_RANGE_M
    #: what a cloud's ring/channel field counts (see the module doc).
    ring_numbering: RingNumbering = "laser_id"
    #: the document the table comes from.
    source: str = ""

    @classmethod
    def from_table(
        cls,
        name: str,
        elevations_deg: Sequence[float] | np.ndarray,
        azimuth_resolution_deg: float,
        vertical_offsets_m: Sequence[float] | np.ndarray | None = None,
        rate_hz: float = _DEFAULT_RATE_HZ,
        max_range_m: float = _DEFAULT_MAX_RANGE_M,
        ring_numbering: str = "laser_id",
        source: str = "",
    ) -> SensorModel:
        """A model from a datasheet table listed by laser id (any order); validates every value."""
        where = f"sensor {name!r}"
        elevations = _finite_vector(elevations_deg, "elevations_deg", where)
        if len(elevations) < 1:
            raise SensorError(f"{where}: 'elevations_deg' is empty; expected one elevation per laser")
        if np.any(np.abs(elevations) >= 90.0):
            raise SensorError(f"{where}: 'elevations_deg' must lie strictly between -90 and 90 degrees")
        if len(np.unique(elevations)) != len(elevations):
            values, counts = np.unique(elevations, return_counts=True)
            raise SensorError(
                f"{where}: 'elevations_deg' lists {values[counts > 1].tolist()} more than once; two beams at one "
                "elevation cannot be told apart by a beam table"
            )
        if vertical_offsets_m is None:
            offsets = np.zeros_like(elevations)
        else:
            offsets = _finite_vector(vertical_offsets_m, "vertical_offsets_m", where)
            if len(offsets) != len(elevations):
                raise SensorError(
                    f"{where}: 'vertical_offsets_m' has {len(offsets)} values, expected one per laser "
                    f"({len(elevations)})"
                )
        for key, value in (
            ("azimuth_resolution_deg", azimuth_resolution_deg),
            ("rate_hz", rate_hz),
            ("max_range_m", max_range_m),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise SensorError(f"{where}: {key!r} must be a positive number, got {value!r}")
        if azimuth_resolution_deg > 360.0:
            raise SensorError(f"{where}: 'azimuth_resolution_deg' is {azimuth_resolution_deg}, at most 360 expected")
        if ring_numbering not in RING_NUMBERINGS:
            raise SensorError(
                f"{where}: 'ring_numbering' is {ring_numbering!r}, expected one of {', '.join(RING_NUMBERINGS)}"
            )
        order = np.argsort(-elevations, kind="stable")  # row -> laser id, highest beam first
        laser_rows = np.empty(len(order), dtype=np.int32)
        laser_rows[order] = np.arange(len(order), dtype=np.int32)
        return cls(
            name=name,
            elevations_deg=_frozen(elevations[order]),
            beam_heights_m=_frozen(offsets[order]),
            laser_rows=_frozen(laser_rows),
            azimuth_resolution_deg=float(azimuth_resolution_deg),
            rate_hz=float(rate_hz),
            max_range_m=float(max_range_m),
            ring_numbering=cast(RingNumbering, ring_numbering),
            source=source,
        )

    @property
    def height(self) -> int:
        """Number of beams, i.e. rows of a faithful range image."""
        return len(self.elevations_deg)

    @property
    def columns_per_turn(self) -> int:
        """Firings per revolution at the nominal rate (360 / azimuth resolution, rounded)."""
        return max(1, round(360.0 / self.azimuth_resolution_deg))

    @property
    def vertical_fov_deg(self) -> tuple[float, float]:
        """(top, bottom) beam elevations in degrees."""
        return float(self.elevations_deg[0]), float(self.elevations_deg[-1])

    @property
    def has_beam_heights(self) -> bool:
        return bool(np.any(self.beam_heights_m != 0.0))

    @property
    def ring_to_row(self) -> np.ndarray:
        """Row of each ring/channel value under :attr:`ring_numbering` (index = field value)."""
        if self.ring_numbering == "laser_id":
            return self.laser_rows
        rows = np.arange(self.height, dtype=np.int32)
        return _frozen(rows[::-1].copy()) if self.ring_numbering == "bottom_up" else _frozen(rows)

    def with_ring_numbering(self, numbering: str) -> SensorModel:
        """The same sensor read through a driver that numbers rings as ``numbering``."""
        if numbering not in RING_NUMBERINGS:
            raise SensorError(f"ring numbering {numbering!r} is unknown; expected one of {', '.join(RING_NUMBERINGS)}")
        return replace(self, ring_numbering=cast(RingNumbering, numbering))

    def __repr__(self) -> str:
        top, bottom = self.vertical_fov_deg
        offsets = ", beam heights" if self.has_beam_heights else ""
        return (
            f"SensorModel({self.name!r}, {self.height} beams {top:+.2f}..{bottom:+.2f} deg{offsets}, "
            f"{self.azimuth_resolution_deg:g} deg azimuth, rings {self.ring_numbering})"
        )


def list_sensors() -> list[str]:
    """Names of the built-in sensors (the YAML files shipped in ``calib/data``)."""
    return sorted(path.name[: -len(".yaml")] for path in _data_dir().iterdir() if path.name.endswith(".yaml"))


def get_sensor(name: str) -> SensorModel:
    """A built-in sensor by name; case, hyphens, underscores and spaces are ignored ("OS1-64" = "os1_64")."""
    if not isinstance(name, str):
        raise SensorError(f"sensor name must be a string, got {type(name).__name__}")
    known = {_normalized(known_name): known_name for known_name in list_sensors()}
    canonical = known.get(_normalized(name))
    if canonical is None:
        raise SensorError(f"unknown sensor {name!r}; known sensors: {', '.join(sorted(known.values()))}")
    return _load_builtin(canonical)


def load_sensor(path_or_name: str | Path) -> SensorModel:
    """A sensor from a YAML file (beam elevations + azimuth resolution, see below) or a built-in name.

    The YAML holds ``elevations_deg`` (one per laser, in laser-id order) and ``azimuth_resolution_deg``
    (or ``columns_per_turn``); optional: ``name``, ``source``, ``vertical_offsets_m``, ``rate_hz``,
    ``max_range_m``, ``ring_numbering``. Any other key is rejected, so a typo never passes silently.
    """
    path = Path(path_or_name).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return _read_yaml(path, default_name=path.stem)
    return get_sensor(str(path_or_name))


def sensor_from_mapping(data: Mapping[str, Any], where: str, default_name: str = "custom") -> SensorModel:
    """A sensor from an already parsed YAML mapping (``where`` names it in error messages)."""
    if not isinstance(data, Mapping):
        raise SensorError(f"{where}: expected a mapping of sensor keys, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        raise SensorError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(_REQUIRED_KEYS + _OPTIONAL_KEYS)}"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise SensorError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")
    has_resolution, has_columns = "azimuth_resolution_deg" in data, "columns_per_turn" in data
    if has_resolution == has_columns:
        raise SensorError(f"{where}: give exactly one of 'azimuth_resolution_deg' or 'columns_per_turn'")
    if has_columns:
        columns = data["columns_per_turn"]
        if not isinstance(columns, int) or isinstance(columns, bool) or columns < 1:
            raise SensorError(f"{where}: 'columns_per_turn' must be a positive integer, got {columns!r}")
        resolution = 360.0 / columns
    else:
        resolution = _number(data["azimuth_resolution_deg"], "azimuth_resolution_deg", where)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise SensorError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    try:
        return SensorModel.from_table(
            name=name,
            elevations_deg=data["elevations_deg"],
            azimuth_resolution_deg=resolution,
            vertical_offsets_m=data.get("vertical_offsets_m"),
            rate_hz=_number(data.get("rate_hz", _DEFAULT_RATE_HZ), "rate_hz", where),
            max_range_m=_number(data.get("max_range_m", _DEFAULT_MAX_RANGE_M), "max_range_m", where),
            ring_numbering=str(data.get("ring_numbering", "laser_id")),
            source=str(data.get("source", "")),
        )
    except SensorError as err:
        raise SensorError(f"{where}: {err}") from None


# -- helpers -----------------------------------------------------------------------------------


def _data_dir() -> Any:
    return importlib.resources.files("perception_ws.calib") / "data"


@functools.cache
def _load_builtin(canonical: str) -> SensorModel:
    resource = _data_dir() / f"{canonical}.yaml"
    return _parse_yaml_text(resource.read_text(encoding="utf-8"), f"built-in sensor {canonical!r}", canonical)


def _read_yaml(path: Path, default_name: str) -> SensorModel:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SensorError(f"{path}: cannot read sensor file ({err.strerror or err})") from None
    return _parse_yaml_text(text, str(path), default_name)


def _parse_yaml_text(text: str, where: str, default_name: str) -> SensorModel:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SensorError(f"{where}: not valid YAML ({err})") from None
    return sensor_from_mapping(data, where, default_name)


def _normalized(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "-_ ")


def _finite_vector(values: Any, key: str, where: str) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise SensorError(f"{where}: {key!r} must be a list of numbers, got {type(values).__name__}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        raise SensorError(f"{where}: {key!r} must hold numbers only, got {list(values)!r}")
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise SensorError(f"{where}: {key!r} holds a NaN or infinite value")
    return array


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SensorError(f"{where}: {key!r} must be a number, got {value!r}")
    return float(value)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
