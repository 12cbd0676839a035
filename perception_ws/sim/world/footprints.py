"""Free-space bookkeeping for placing objects: oriented rectangles on the ground that must not overlap."""

from __future__ import annotations

import numpy as np


def rectangle(x: float, y: float, length: float, width: float, yaw: float, margin: float = 0.0) -> np.ndarray:
    """Corners (4, 2) of a ground rectangle centred at (x, y), ``length`` along ``yaw``, grown by ``margin``."""
    hl, hw = length / 2 + margin, width / 2 + margin
    local = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
    c, s = np.cos(yaw), np.sin(yaw)
    return np.asarray(local @ np.array([[c, s], [-s, c]]) + [x, y])


def _axes(corners: np.ndarray) -> np.ndarray:
    """The two edge normals of each rectangle: (..., 2, 2)."""
    e = np.stack([corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 1, :]], axis=-2)
    return np.stack([-e[..., 1], e[..., 0]], axis=-1)


class Footprints:
    """Rectangles placed so far; :meth:`claim` adds one only where it overlaps none of them."""

    def __init__(self) -> None:
        self._corners = np.zeros((0, 4, 2))

    def __len__(self) -> int:
        return len(self._corners)

    def overlaps(self, corners: np.ndarray) -> bool:
        """Whether ``corners`` (4, 2) overlaps any placed rectangle (separating-axis test)."""
        if not len(self._corners):
            return False
        others = self._corners
        axes = np.concatenate([np.broadcast_to(_axes(corners), (len(others), 2, 2)), _axes(others)], axis=1)
        mine = np.einsum("kd,nad->nak", corners, axes)
        theirs = np.einsum("nkd,nad->nak", others, axes)
        separated = (mine.max(-1) < theirs.min(-1)) | (theirs.max(-1) < mine.min(-1))
        return bool((~separated.any(-1)).any())

    def add(self, corners: np.ndarray) -> None:
        self._corners = np.concatenate([self._corners, corners[None]])

    def claim(self, corners: np.ndarray) -> bool:
        """Add ``corners`` if the space is free; returns whether it was."""
        if self.overlaps(corners):
            return False
        self.add(corners)
        return True
