"""Where a moving actor's path runs: a straight line with smooth sideways steps around what stands in it.

A :class:`Path` is parametrised by ``s``, the distance travelled along its ``direction`` from its
``origin`` (the actor's box centre, or the ego's ground point, at t = 0). Each :class:`Swerve` shifts
the path sideways by ``offset`` metres (positive to the left of the direction) between ``reach`` and
``leave``, stepping out over ``[start, reach]`` and back over ``[leave, end]`` along a quintic
smoothstep, so position, heading and yaw rate are continuous. The offset is 0 at s = 0: an actor
starts where the scene put it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception_ws.errors import PerceptionError


def _smoothstep(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The quintic smoothstep 6x^5 - 15x^4 + 10x^3 on [0, 1] (clamped), and its first two derivatives."""
    x = np.clip(x, 0.0, 1.0)
    return x**3 * (x * (6 * x - 15) + 10), 30 * x**2 * (1 - x) ** 2, 60 * x * (1 - x) * (1 - 2 * x)


@dataclass(frozen=True)
class Swerve:
    """A sideways step of ``offset`` metres: out over [start, reach], held, back over [leave, end]."""

    start: float
    reach: float
    leave: float
    end: float
    offset: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.start < self.reach <= self.leave < self.end:
            raise PerceptionError(
                f"swerve: expected 0 <= start < reach <= leave < end; got {self.start}, {self.reach}, "
                f"{self.leave}, {self.end}"
            )

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Offset and its first and second derivatives with respect to s."""
        up_len, down_len = self.reach - self.start, self.end - self.leave
        up, dup, ddup = _smoothstep((s - self.start) / up_len)
        down, ddown, dddown = _smoothstep((self.end - s) / down_len)
        # out and back never overlap (reach <= leave), so the product is one of them or 1
        d = self.offset * up * down
        d1 = self.offset * (dup / up_len * down - up * ddown / down_len)
        d2 = self.offset * (ddup / up_len**2 * down - 2 * dup * ddown / (up_len * down_len) + up * dddown / down_len**2)
        return d, d1, d2


@dataclass(frozen=True)
class Path:
    """A straight line on the ground from ``origin`` along ``direction``, with optional sideways swerves."""

    origin: np.ndarray  # (2,) world xy at s = 0
    direction: np.ndarray  # (2,) unit
    swerves: tuple[Swerve, ...] = field(default=())

    @property
    def normal(self) -> np.ndarray:
        """The unit vector to the left of the direction."""
        return np.array([-self.direction[1], self.direction[0]])

    def offset(self, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sideways offset at ``s`` and its first and second derivatives (swerves do not overlap)."""
        s = np.asarray(s, dtype=np.float64)
        d, d1, d2 = np.zeros(s.shape), np.zeros(s.shape), np.zeros(s.shape)
        for swerve in self.swerves:
            a, b, c = swerve.at(s)
            d, d1, d2 = d + a, d1 + b, d2 + c
        return d, d1, d2

    def point(self, s: np.ndarray | float) -> np.ndarray:
        """World xy (..., 2) of the path at ``s``."""
        s = np.asarray(s, dtype=np.float64)
        return np.asarray(self.origin + s[..., None] * self.direction + self.offset(s)[0][..., None] * self.normal)

    def heading(self, s: np.ndarray | float) -> np.ndarray:
        """How much the path turns away from its direction at ``s`` (radians, positive to the left)."""
        return np.asarray(np.arctan(self.offset(s)[1]))


def merge_swerves(swerves: list[Swerve]) -> tuple[Swerve, ...]:
    """Swerves that do not overlap: overlapping ones to the same side become one (the larger offset);
    of two to opposite sides that overlap, the later is dropped (the actor stops before its obstacle).
    """
    out: list[Swerve] = []
    for sw in sorted(swerves, key=lambda w: w.start):
        if out and sw.start < out[-1].end:
            last = out[-1]
            if np.sign(sw.offset) != np.sign(last.offset):
                continue
            reach, leave = last.reach, max(last.leave, sw.leave)
            end = max(last.end, sw.end)
            offset = max(last.offset, sw.offset, key=abs)
            out[-1] = Swerve(last.start, reach, leave, end, offset)
            continue
        out.append(sw)
    return tuple(out)
