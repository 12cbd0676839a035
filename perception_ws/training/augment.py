"""Augmentations of a range image and its labels that keep the geometry consistent.

* crop: a window of ``crop_width`` columns of a wider image (a full sweep wraps around);
* flip: mirror left-right, which for a LiDAR means y -> -y and the columns reversed;
* rotation about z by a whole number of columns: the columns shift by ``k`` and x, y turn by the
  matching angle, so every point still sits in the column of its azimuth; columns shifted in from
  outside a crop are emptied, not wrapped;
* intensity gain: remissions scaled by a common factor (sensors and simulators differ in calibration).

Column 0 is the left edge of the field of view (the largest azimuth), as :mod:`perception_ws.projection`
lays it out, so moving content to higher columns means turning it clockwise seen from above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_ws.errors import DatasetError

X, Y, INTENSITY = 0, 1, 3


@dataclass(frozen=True)
class Augmentation:
    crop_width: int = 512
    flip: bool = True
    #: largest rotation about z, in degrees (0: none).
    rotate_deg: float = 5.0
    #: columns of a full turn (HDL-64E: 2048, i.e. 512 per 90 degrees), for the rotation's angle.
    columns_per_turn: int = 2048
    #: intensity gain drawn from [1 - g, 1 + g].
    intensity_gain: float = 0.15


def crop(image: np.ndarray, labels: np.ndarray, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random ``width``-column window (wrapping around: wider images are taken as full sweeps)."""
    total = image.shape[1]
    if total < width:
        raise DatasetError(f"augmentation: the image has {total} columns, fewer than the crop width {width}")
    if total == width:
        return image, labels
    cols = (np.arange(width) + int(rng.integers(total))) % total
    return image[:, cols], labels[:, cols]


def flip(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror about the x-z plane."""
    mirrored = image[:, ::-1].copy()
    mirrored[..., Y] *= -1.0
    return mirrored, labels[:, ::-1].copy()


def rotate(image: np.ndarray, labels: np.ndarray, shift: int, columns_per_turn: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn the scene about z by ``shift`` columns (positive: content moves to higher columns)."""
    if shift == 0:
        return image, labels
    angle = -2.0 * np.pi * shift / columns_per_turn  # higher column = smaller azimuth
    c, s = np.cos(angle), np.sin(angle)
    turned = np.roll(image, shift, axis=1)
    moved = np.roll(labels, shift, axis=1)
    blank = slice(0, shift) if shift > 0 else slice(shift, None)
    turned[:, blank] = 0.0
    moved[:, blank] = 0
    x, y = turned[..., X].copy(), turned[..., Y].copy()
    turned[..., X] = c * x - s * y
    turned[..., Y] = s * x + c * y
    return turned, moved


def augment(
    image: np.ndarray, labels: np.ndarray, settings: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Crop, then flip, rotate and scale intensity at random (empty pixels stay exactly empty)."""
    image, labels = crop(image, labels, settings.crop_width, rng)
    if settings.flip and rng.random() < 0.5:
        image, labels = flip(image, labels)
    if settings.rotate_deg > 0:
        largest = int(settings.rotate_deg / 360.0 * settings.columns_per_turn)
        image, labels = rotate(image, labels, int(rng.integers(-largest, largest + 1)), settings.columns_per_turn)
    if settings.intensity_gain > 0:
        image = image.copy()
        gain = 1.0 + settings.intensity_gain * (2.0 * rng.random() - 1.0)
        image[..., INTENSITY] = np.clip(image[..., INTENSITY] * gain, 0.0, 1.0)
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)
