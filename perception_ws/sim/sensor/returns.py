"""The returns of one simulated sweep before noise, dropout and intensity are applied: one row per hit pixel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_ws.sim.sensor.sweep_kernels import compress_returns


@dataclass
class Returns:
    """Per hit pixel: where it is in the range image and what the beam met there.

    The noise, dropout and intensity models read these arrays; none of them needs the scene.
    """

    row: np.ndarray  # (N,) int64 beam row (0 = top beam)
    col: np.ndarray  # (N,) int64 azimuth column
    height: int  # rows of the sweep (beams)
    width: int  # columns of the sweep
    range: np.ndarray  # (N,) float32 metres from the beam origin
    cos_incidence: np.ndarray  # (N,) float32 |cos| of the angle between beam and surface normal
    albedo: np.ndarray  # (N,) float32 diffuse reflectance of the surface
    retro: np.ndarray  # (N,) bool retro-reflective surface (sign faces, licence plates)
    glass: np.ndarray  # (N,) bool the surface is glass

    def __len__(self) -> int:
        return len(self.row)

    def subset(self, which: np.ndarray) -> Returns:
        """The returns ``which`` selects: a boolean mask (all arrays in one pass) or indices."""
        if which.dtype == np.bool_:
            if len(which) != len(self):
                raise IndexError(f"returns: a mask of {len(which)} entries for {len(self)} returns")
            row, col, range_, cos, albedo, retro, glass = compress_returns(
                which, self.row, self.col, self.range, self.cos_incidence, self.albedo, self.retro, self.glass
            )
            return Returns(row, col, self.height, self.width, range_, cos, albedo, retro, glass)
        return Returns(
            row=np.take(self.row, which),
            col=np.take(self.col, which),
            height=self.height,
            width=self.width,
            range=np.take(self.range, which),
            cos_incidence=np.take(self.cos_incidence, which),
            albedo=np.take(self.albedo, which),
            retro=np.take(self.retro, which),
            glass=np.take(self.glass, which),
        )
