"""The layout of a simulated sweep, shared by the simulator and its frames' reader (:mod:`perception_ws.io.simdata`).

:class:`RayPattern`: the ray of every pixel (row, col) of a spinning LiDAR's sweep, from the sensor's
beam table (:mod:`perception_ws.calib.sensors`) in the column layout of :mod:`perception_ws.projection`.
:data:`POINT_DTYPE`: the fields of a simulated point. Both live outside :mod:`perception_ws.sim` so
that reading a generated dataset does not import the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from perception_ws.calib.sensors import SensorModel
from perception_ws.errors import PerceptionError

#: the fields of a simulated point (x, y, z in the sensor frame)
POINT_DTYPE = np.dtype(
    [
        ("x", np.float32),
        ("y", np.float32),
        ("z", np.float32),
        ("intensity", np.float32),
        ("ring", np.uint16),
        ("label", np.uint8),
        ("semantic", np.uint8),
        ("instance", np.uint32),
    ]
)


@dataclass(frozen=True, eq=False)
class RayPattern:
    """Per pixel (row, col) of one sweep: the ray's origin and unit direction in the sensor frame."""

    sensor: SensorModel
    columns: int

    def __post_init__(self) -> None:
        if self.columns < 1:
            raise PerceptionError(f"ray pattern: columns must be >= 1; got {self.columns}")

    @property
    def rows(self) -> int:
        return self.sensor.height

    @cached_property
    def azimuths(self) -> np.ndarray:
        """(W,) radians of the column centres: +pi at the left edge, decreasing (clockwise)."""
        return np.pi - (np.arange(self.columns) + 0.5) * (2 * np.pi / self.columns)

    @cached_property
    def directions(self) -> np.ndarray:
        """(H, W, 3) float32 unit directions."""
        el = np.radians(self.sensor.elevations_deg)[:, None]
        az = self.azimuths[None, :]
        d = np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), axis=-1)
        return d.astype(np.float32)

    @cached_property
    def origins(self) -> np.ndarray:
        """(H, 3) float32 beam origins (on the z axis, at each beam's height)."""
        out = np.zeros((self.rows, 3), dtype=np.float32)
        out[:, 2] = self.sensor.beam_heights_m
        return out

    @cached_property
    def pixel_origins(self) -> np.ndarray:
        """(H * W, 3) float32 origin of every pixel's ray, row-major."""
        return np.repeat(self.origins, self.columns, axis=0)

    @cached_property
    def direction_columns(self) -> np.ndarray:
        """(3, H * W) float32: the x, y and z of every pixel's direction, each contiguous (fast gathers)."""
        return np.ascontiguousarray(self.directions.reshape(-1, 3).T)

    @cached_property
    def pixel_origins_z(self) -> np.ndarray:
        """(H * W,) float32 height of every pixel's beam origin (its x and y are 0)."""
        return np.ascontiguousarray(self.pixel_origins[:, 2])

    @cached_property
    def ring_of_row(self) -> np.ndarray:
        """(H,) uint16 ring value of each row under the sensor's ring numbering (what a driver would write)."""
        ring = np.empty(self.rows, dtype=np.uint16)
        ring[np.asarray(self.sensor.ring_to_row)] = np.arange(self.rows, dtype=np.uint16)
        return ring
