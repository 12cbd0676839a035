"""Synthetic LiDAR returns of boxes on a flat ground, for tests and benchmarks where real boxes are too few.

Rays leave the sensor at the origin on an HDL-64E-like grid (0.17 degree azimuth steps, 64 rings
from -24.8 to +2 degrees) and stop at the first surface they meet: a box face (slab test in the box
frame) or the ground plane. So only the faces turned to the sensor are seen, objects hide what is
behind them, and the density falls with range as on a real scanner.
"""

from __future__ import annotations

import numpy as np

from perception_ws.boxes import Box3D

SENSOR_HEIGHT_M = 1.73
ELEVATIONS_DEG = np.linspace(-24.8, 2.0, 64)
AZIMUTH_STEP_DEG = 0.17


def _ray_directions(azimuths: np.ndarray) -> np.ndarray:
    azg, elg = np.meshgrid(azimuths, np.radians(ELEVATIONS_DEG))
    return np.stack([np.cos(elg) * np.cos(azg), np.cos(elg) * np.sin(azg), np.sin(elg)], axis=-1).reshape(-1, 3)


def _box_distance(box: Box3D, dirs: np.ndarray) -> np.ndarray:
    """Distance along each ray (from the origin) to its first hit on ``box``; inf for a miss."""
    c, s = np.cos(box.yaw), np.sin(box.yaw)
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    o = rot @ (-box.center)
    d = dirs @ rot.T
    half = box.size / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - o) / d
        t2 = (half - o) / d
    near = np.nanmax(np.minimum(t1, t2), axis=1)
    far = np.nanmin(np.maximum(t1, t2), axis=1)
    return np.where((near <= far) & (near > 0), near, np.inf)


def cast(
    boxes: list[Box3D],
    noise_m: float = 0.0,
    rng: np.random.Generator | None = None,
    ground: bool = True,
    max_range_m: float = 60.0,
    azimuths: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (M, 3) of one sweep and the index of the box each return hit (-1: the ground)."""
    if azimuths is None:
        azimuths = np.radians(np.arange(-180.0, 180.0, AZIMUTH_STEP_DEG))
    dirs = _ray_directions(azimuths)
    distances = np.stack([_box_distance(b, dirs) for b in boxes] + [np.full(len(dirs), np.inf)])
    if ground:
        with np.errstate(divide="ignore"):
            distances[-1] = np.where(dirs[:, 2] < 0, -SENSOR_HEIGHT_M / dirs[:, 2], np.inf)
    first = np.argmin(distances, axis=0)
    t = distances[first, np.arange(len(dirs))]
    keep = np.isfinite(t) & (t <= max_range_m)
    rng = rng or np.random.default_rng(0)
    t = t[keep] + (rng.normal(0.0, noise_m, int(keep.sum())) if noise_m > 0 else 0.0)
    hit = np.where(first[keep] == len(boxes), -1, first[keep])
    return dirs[keep] * t[:, None], hit


def ray_hits(box: Box3D, noise_m: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """The returns (M, 3) of one box alone (no ground), casting only the rays that can reach it."""
    corners = box.bev_corners()
    centre = np.arctan2(box.center[1], box.center[0])
    offsets = (np.arctan2(corners[:, 1], corners[:, 0]) - centre + np.pi) % (2 * np.pi) - np.pi
    half = np.max(np.abs(offsets)) + 0.01
    azimuths = centre + np.arange(-half, half, np.radians(AZIMUTH_STEP_DEG))
    xyz, _ = cast([box], noise_m, rng, ground=False, max_range_m=np.inf, azimuths=azimuths)
    return xyz


def car_at(x: float, y: float, yaw: float, size: tuple[float, float, float] = (4.2, 1.8, 1.5)) -> Box3D:
    """A car-sized box standing on the ground plane below the sensor."""
    return Box3D(
        center=np.array([x, y, -SENSOR_HEIGHT_M + size[2] / 2]), size=np.array(size), yaw=yaw, label=1, name="car"
    )
