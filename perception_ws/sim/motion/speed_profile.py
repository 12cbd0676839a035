"""How far an actor has travelled along its path at time t: cruising, smoothly held back by limits.

A :class:`Profile` starts from free cruising, ``s = cruise(t)``, and takes the smooth minimum with
each limit in turn: a :class:`Wall` (the end of its path: an obstacle, a stop line, the far
sidewalk), a :class:`Follow` (stay a gap behind the actor ahead in the lane) or a :class:`Yield`
(wait before a crossing until whoever crosses there has passed). Every limit is a non-decreasing
function of time, and so is the result: actors never reverse.

The smooth minimum is the quadratic one: it equals ``min(a, b)`` wherever the two are more than a
band ``h`` apart and blends within it, so an actor approaching a wall at speed ``v`` brakes over
about ``h`` metres (``h = v² / 2a`` brakes at about ``a``). It never exceeds either argument, so a
limit is never overrun; each limit's band is cut to the room the actor has at t = 0, so that
``s(0) = 0`` exactly and a scene at t = 0 is the generated scene. Position and speed are closed-form
functions of t (numpy arrays of any shape): no integration, no state, the same answer for the same t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from perception_ws.errors import PerceptionError

Curve = tuple[np.ndarray, np.ndarray]  # (position along the path, its time derivative), same shape as t


def smooth_min(a: Curve, b: Curve, band: float) -> Curve:
    """The quadratic smooth minimum of two curves and its derivative (exact ``min`` where |a - b| >= band)."""
    (sa, va), (sb, vb) = a, b
    if band <= 0.0:
        first = sa <= sb
        return np.where(first, sa, sb), np.where(first, va, vb)
    w = np.clip(0.5 + 0.5 * (sb - sa) / band, 0.0, 1.0)  # weight of a
    return sb + (sa - sb) * w - band * w * (1.0 - w), w * va + (1.0 - w) * vb


@dataclass(frozen=True)
class Cruise:
    """Free travel: ``speed * (1 + variation * sin(2 pi t / period + phase))`` metres per second."""

    speed: float
    variation: float = 0.0
    period: float = 10.0
    phase: float = 0.0

    def __post_init__(self) -> None:
        if self.speed < 0:
            raise PerceptionError(f"cruise: speed must be >= 0 m/s; got {self.speed}")
        if not 0.0 <= self.variation < 1.0:
            raise PerceptionError(f"cruise: variation must lie in [0, 1) (a share of the speed); got {self.variation}")
        if self.period <= 0:
            raise PerceptionError(f"cruise: period must be > 0 s; got {self.period}")

    def at(self, t: np.ndarray) -> Curve:
        w = 2.0 * np.pi / self.period
        s = self.speed * (t + self.variation / w * (np.cos(self.phase) - np.cos(w * t + self.phase)))
        return s, self.speed * (1.0 + self.variation * np.sin(w * t + self.phase))


class Limit(Protocol):
    """A bound on how far an actor may be along its path (a wall, a leader to follow, a crossing to yield to)."""

    def at(self, t: np.ndarray) -> Curve:
        """The furthest the actor may be along its path at time t, and how fast that moves."""
        ...


@dataclass(frozen=True)
class Wall:
    """A fixed end of the path."""

    position: float

    def at(self, t: np.ndarray) -> Curve:
        return np.full(np.shape(t), self.position), np.zeros(np.shape(t))


@dataclass(frozen=True)
class Follow:
    """Stay behind a leader: ``leader(t) * along + offset`` (``along``: cosine between the two paths)."""

    leader: Profile
    offset: float
    along: float = 1.0

    def at(self, t: np.ndarray) -> Curve:
        s, v = self.leader.at(t)
        return s * self.along + self.offset, v * self.along


@dataclass(frozen=True)
class Yield:
    """Hold at ``position`` until ``clear_time``, then move off again, reaching ``speed`` within a few ``ramp`` s.

    After the crossing clears, the limit runs ahead at ``speed`` (a softplus ramp, so it is smooth and
    never decreases); with ``clear_time`` = inf it is a wall.
    """

    position: float
    clear_time: float
    speed: float
    ramp: float = 1.0

    def at(self, t: np.ndarray) -> Curve:
        if not np.isfinite(self.clear_time):
            return Wall(self.position).at(t)
        x = (np.asarray(t, dtype=np.float64) - self.clear_time) / self.ramp
        s = self.position + self.speed * self.ramp * np.logaddexp(0.0, x)
        return s, self.speed / (1.0 + np.exp(-x))


@dataclass
class Profile:
    """Cruising held back by limits, each blended in over its own band (metres)."""

    cruise: Cruise
    limits: list[tuple[Limit, float]] = field(default_factory=list)

    def add(self, limit: Limit, band: float) -> bool:
        """Add ``limit`` with a blend band of at most ``band`` metres; False (and not added) if the actor
        is already past it at t = 0 (a limit behind the start would pull the actor backwards).
        """
        room = float(limit.at(np.zeros(1))[0][0])
        if room < 0.0:
            return False
        self.limits.append((limit, min(band, room)))
        return True

    def at(self, t: np.ndarray | float) -> Curve:
        """Distance travelled since t = 0 and speed, at times ``t`` (seconds, >= 0)."""
        t = np.asarray(t, dtype=np.float64)
        if t.size and float(t.min()) < 0.0:
            raise PerceptionError(f"motion: time must be >= 0 s (the scene as generated is t = 0); got {t.min()}")
        curve = self.cruise.at(t)
        for limit, band in self.limits:
            curve = smooth_min(curve, limit.at(t), band)
        return curve
