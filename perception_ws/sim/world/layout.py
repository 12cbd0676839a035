"""Street layout: the cross-section of a street, an optional side street, and the height of the ground.

Everything is in the road frame: the main road runs along x, centred on y = 0; traffic keeps right
(driving +x means y < 0). Moving outwards from the centre line come the lanes, an optional
parking strip, a curb, the sidewalk, a front yard (grass or paving), then the building line. An
optional side street crosses at x = ``cross_x``. The ground is not flat: a longitudinal grade, a
gentle long-wave undulation, a cambered road and bumpy yards make the rings of a scan bend the way
they do on real streets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Zone(IntEnum):
    """What the ground is at a point across the street (road, parking, sidewalk, yard)."""

    ROAD = 0
    PARKING = 1
    SIDEWALK = 2
    YARD = 3


@dataclass(frozen=True)
class StreetLayout:
    """The dimensions of one street (see the module doc for the cross-section and frame)."""

    x_min: float
    x_max: float
    lanes: int  # per direction
    lane_width: float
    parking_width: float  # 0: no parking strip
    curb: float  # curb height
    sidewalk: tuple[float, float]  # widths on the right (y < 0) and left (y > 0)
    yard: tuple[float, float]  # front-yard depth on each side; the building line follows
    paved_yard: tuple[bool, bool]
    cross_x: float | None  # x of the side street's centre line, or None
    cross_half_width: float
    grade: float  # dz/dx of the whole street
    camber: float  # how much lower the road edge is than the centre line, metres
    #: ground undulation: amplitudes (m), wave numbers (rad/m), phases (rad), each (K,)
    wave_amp: tuple[float, ...]
    wave_k: tuple[float, ...]
    wave_phase: tuple[float, ...]
    #: yard bumps: the same three lists for 2D waves, plus their directions
    bump_amp: tuple[float, ...]
    bump_k: tuple[float, ...]
    bump_dir: tuple[float, ...]
    bump_phase: tuple[float, ...]

    @property
    def half_road(self) -> float:
        """Half the carriageway: the distance from the centre line to the curb."""
        return self.lanes * self.lane_width + self.parking_width

    def curb_y(self, side: int) -> float:
        """y of the curb on ``side`` (-1 right, +1 left)."""
        return side * self.half_road

    def building_y(self, side: int) -> float:
        """y of the building line on ``side``."""
        i = 0 if side < 0 else 1
        return side * (self.half_road + self.sidewalk[i] + self.yard[i])

    def lane_centers(self) -> np.ndarray:
        """y of every lane centre, right-hand lanes (driving +x) first."""
        right = -(np.arange(self.lanes) + 0.5) * self.lane_width
        return np.concatenate([right, -right])

    def in_cross_street(self, x: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether x lies within the side street's carriageway and sidewalks (plus ``margin``)."""
        x = np.asarray(x, dtype=np.float64)
        if self.cross_x is None:
            return np.zeros(x.shape, dtype=bool)
        walk = max(self.sidewalk)
        return np.abs(x - self.cross_x) < self.cross_half_width + walk + margin

    def zone(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The :class:`Zone` of every ground point (x, y)."""
        x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        dy = np.abs(y)
        walk = np.where(y < 0, self.sidewalk[0], self.sidewalk[1])
        dx = np.abs(x - self.cross_x) if self.cross_x is not None else np.full(x.shape, np.inf)
        out = np.full(x.shape, Zone.YARD, dtype=np.int8)
        out[(dy < self.half_road + walk) | (dx < self.cross_half_width + walk)] = Zone.SIDEWALK
        road = (dy < self.half_road) | (dx < self.cross_half_width)
        out[road] = Zone.ROAD
        if self.parking_width > 0:
            strip = (dy > self.half_road - self.parking_width) & (dy < self.half_road) & ~self.in_cross_street(x, 3.0)
            out[strip] = Zone.PARKING
        return out

    def base_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the street's centre line carried sideways: grade plus long-wave undulation."""
        x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        z = self.grade * x
        for a, k, p in zip(self.wave_amp, self.wave_k, self.wave_phase, strict=True):
            z = z + a * np.sin(k * x + p)
        return z

    def height(self, zone: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Ground height at (x, y) as the surface of ``zone`` would have it (curb steps between zones)."""
        zone, x, y = np.broadcast_arrays(np.asarray(zone), np.asarray(x, np.float64), np.asarray(y, np.float64))
        z = self.base_height(x, y)
        dy = np.abs(y) / self.half_road
        dx = np.abs(x - self.cross_x) / self.cross_half_width if self.cross_x is not None else np.full(x.shape, np.inf)
        crown = self.camber * np.clip(np.minimum(dy, dx), 0, 1) ** 2
        raised = (zone == Zone.SIDEWALK) | (zone == Zone.YARD)
        z = np.where(raised, z + self.curb, z - crown)
        # yards rise and roll away from the sidewalk
        walk = np.where(y < 0, self.sidewalk[0], self.sidewalk[1])
        into_yard = np.clip(np.abs(y) - self.half_road - walk, 0, None)
        bumps = np.zeros(x.shape)
        for a, k, d, p in zip(self.bump_amp, self.bump_k, self.bump_dir, self.bump_phase, strict=True):
            bumps = bumps + a * np.sin(k * (np.cos(d) * x + np.sin(d) * y) + p)
        yard = zone == Zone.YARD
        return np.where(yard, z + np.clip(into_yard / 3.0, 0, 1) * bumps + 0.02 * into_yard, z)

    def surface_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the ground actually at (x, y)."""
        return self.height(self.zone(x, y), x, y)


def random_layout(rng: np.random.Generator, half_length: float, cross_street_probability: float) -> StreetLayout:
    """A street drawn from ``rng``: lanes, widths, curb, yards, grade and maybe a side street."""
    lanes = int(rng.choice([1, 2], p=[0.75, 0.25]))
    has_cross = rng.random() < cross_street_probability
    k = 2
    return StreetLayout(
        x_min=-half_length,
        x_max=half_length,
        lanes=lanes,
        lane_width=float(rng.uniform(2.9, 3.6)),
        parking_width=float(rng.choice([0.0, rng.uniform(2.0, 2.5)], p=[0.6, 0.4])),
        curb=float(rng.uniform(0.08, 0.18)),
        sidewalk=(float(rng.uniform(1.5, 4.0)), float(rng.uniform(1.5, 4.0))),
        yard=(float(rng.uniform(0.0, 12.0)), float(rng.uniform(0.0, 12.0))),
        paved_yard=(bool(rng.random() < 0.3), bool(rng.random() < 0.3)),
        cross_x=float(rng.choice([-1, 1]) * rng.uniform(12.0, 45.0)) if has_cross else None,
        cross_half_width=float(rng.uniform(3.0, 5.5)),
        grade=float(rng.normal(0.0, 0.015)),
        camber=float(rng.uniform(0.03, 0.12)),
        wave_amp=tuple(float(a) for a in rng.uniform(0.0, 0.15, k)),
        wave_k=tuple(float(2 * np.pi / w) for w in rng.uniform(40.0, 120.0, k)),
        wave_phase=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, k)),
        bump_amp=tuple(float(a) for a in rng.uniform(0.02, 0.2, 3)),
        bump_k=tuple(float(2 * np.pi / w) for w in rng.uniform(4.0, 15.0, 3)),
        bump_dir=tuple(float(d) for d in rng.uniform(0, np.pi, 3)),
        bump_phase=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 3)),
    )
