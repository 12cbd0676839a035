"""Augmentations of a range image and its labels that keep the geometry consistent.

* crop: a window of ``crop_width`` columns of a wider image (a full sweep wraps around);
* flip: mirror left-right, which for a LiDAR means y -> -y and the columns reversed;
* rotation about z by a whole number of columns: the columns shift by ``k`` and x, y turn by the
  matching angle, so every point still sits in the column of its azimuth; columns shifted in from
  outside a crop are emptied, not wrapped;
* intensity gain: remissions scaled by a common factor (sensors and simulators differ in calibration).

Column 0 is the left edge of the field of view (the largest azimuth), as :mod:`perception_ws.projection`
lays it out, so moving content to higher columns means turning it clockwise seen from above.

The math is written once, for batches of N images (N, H, W, C) and labels (N, H, W) that are numpy
arrays or torch tensors on any device (:func:`perception_ws.sim.sensor.arrays.namespace`): the per-sample
functions below call the batched ones with N = 1, and the GPU data path calls them on whole batches.
The random draws are always taken on the host from numpy generators (:func:`draw`), so a sample's
draws are the same whichever array kind they are applied to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_ws.errors import DatasetError
from perception_ws.sim.sensor.arrays import namespace

X, Y, INTENSITY = 0, 1, 3


@dataclass(frozen=True)
class Augmentation:
    """Settings of the augmentations in the module doc."""

    crop_width: int = 512
    flip: bool = True
    #: largest rotation about z, in degrees (0: none).
    rotate_deg: float = 5.0
    #: columns of a full turn (HDL-64E: 2048, i.e. 512 per 90 degrees), for the rotation's angle.
    columns_per_turn: int = 2048
    #: intensity gain drawn from [1 - g, 1 + g].
    intensity_gain: float = 0.15


@dataclass(frozen=True)
class Draws:
    """Per-sample parameters of a batch of N samples (numpy arrays of length N)."""

    start: np.ndarray  # int64 first column of the crop
    flip: np.ndarray  # bool
    shift: np.ndarray  # int64 rotation, in columns
    gain: np.ndarray  # float32 intensity factor


def draw(settings: Augmentation, columns: int, rngs: Sequence[np.random.Generator]) -> Draws:
    """One sample's parameters from each generator (in a fixed order: crop, flip, rotation, gain)."""
    if columns < settings.crop_width:
        raise DatasetError(
            f"augmentation: the image has {columns} columns, fewer than the crop width {settings.crop_width}"
        )
    largest = int(settings.rotate_deg / 360.0 * settings.columns_per_turn)
    start, flips, shift, gain = [], [], [], []
    for rng in rngs:
        start.append(int(rng.integers(columns)) if columns > settings.crop_width else 0)
        flips.append(bool(settings.flip and rng.random() < 0.5))
        shift.append(int(rng.integers(-largest, largest + 1)) if settings.rotate_deg > 0 else 0)
        g = settings.intensity_gain
        gain.append(1.0 + g * (2.0 * rng.random() - 1.0) if g > 0 else 1.0)
    return Draws(
        np.array(start, np.int64), np.array(flips, bool), np.array(shift, np.int64), np.array(gain, np.float32)
    )


def augment_batch(images: Any, labels: Any, settings: Augmentation, draws: Draws) -> tuple[Any, Any]:
    """Crop, then flip, rotate and scale intensity (N, H, W, C) images and (N, H, W) labels by ``draws``."""
    if images.shape[2] > settings.crop_width:
        images, labels = crop_batch(images, labels, settings.crop_width, draws.start)
    if draws.flip.any():
        images, labels = flip_batch(images, labels, draws.flip)
    if draws.shift.any():
        images, labels = rotate_batch(images, labels, draws.shift, settings.columns_per_turn)
    if settings.intensity_gain > 0:
        images = gain_batch(images, draws.gain)
    return images, labels


def crop_batch(images: Any, labels: Any, width: int, start: np.ndarray) -> tuple[Any, Any]:
    """Columns ``start[n] .. start[n] + width - 1`` of sample n, wrapping around (full sweeps)."""
    total = images.shape[2]
    cols = (start[:, None] + np.arange(width)) % total
    return _take_columns(images, cols), _take_columns(labels, cols)


def flip_batch(images: Any, labels: Any, flags: np.ndarray) -> tuple[Any, Any]:
    """Mirror the flagged samples about the x-z plane (columns reversed, y negated)."""
    width = images.shape[2]
    ramp = np.arange(width)
    cols = np.where(flags[:, None], width - 1 - ramp, ramp)
    images, labels = _take_columns(images, cols), _take_columns(labels, cols)
    sign = _like(np.where(flags, -1.0, 1.0).astype(np.float32)[:, None, None], images)
    return _with_xy(images, images[..., X], images[..., Y] * sign), labels


def rotate_batch(images: Any, labels: Any, shifts: np.ndarray, columns_per_turn: int) -> tuple[Any, Any]:
    """Turn sample n about z by ``shifts[n]`` columns (positive: content moves to higher columns)."""
    width = images.shape[2]
    source = np.arange(width)[None, :] - shifts[:, None]
    inside = (source >= 0) & (source < width)
    images, labels = _take_columns(images, source % width), _take_columns(labels, source % width)
    xp = namespace(images)
    images = xp.where(_like(inside[:, None, :, None], images), images, 0.0)
    labels = xp.where(_like(inside[:, None, :], labels), labels, 0)
    angle = -2.0 * np.pi * shifts.astype(np.float64) / columns_per_turn  # higher column = smaller azimuth
    c, s = (_like(f(angle)[:, None, None], images) for f in (np.cos, np.sin))
    x, y = images[..., X], images[..., Y]
    # float64 like a numpy float64 scalar would make it; stored back as float32
    return _with_xy(images, c * x - s * y, s * x + c * y), labels


def gain_batch(images: Any, gains: np.ndarray) -> Any:
    """Intensity of sample n times ``gains[n]``, clipped to [0, 1]."""
    xp = namespace(images)
    scaled = xp.clip(images[..., INTENSITY] * _like(gains[:, None, None], images), 0.0, 1.0)
    return xp.concatenate([images[..., :INTENSITY], scaled[..., None], images[..., INTENSITY + 1 :]], axis=-1)


# --- one sample (numpy (H, W, C) and (H, W)) ---------------------------------------------------------------


def crop(image: np.ndarray, labels: np.ndarray, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random ``width``-column window (wrapping around: wider images are taken as full sweeps)."""
    start = draw(Augmentation(crop_width=width, flip=False, rotate_deg=0.0, intensity_gain=0.0), image.shape[1], [rng])
    if image.shape[1] == width:
        return image, labels
    return _one(crop_batch(image[None], labels[None], width, start.start))


def flip(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror about the x-z plane."""
    return _one(flip_batch(image[None], labels[None], np.array([True])))


def rotate(image: np.ndarray, labels: np.ndarray, shift: int, columns_per_turn: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn the scene about z by ``shift`` columns (positive: content moves to higher columns)."""
    if shift == 0:
        return image, labels
    return _one(rotate_batch(image[None], labels[None], np.array([shift], np.int64), columns_per_turn))


def augment(
    image: np.ndarray, labels: np.ndarray, settings: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Crop, then flip, rotate and scale intensity at random (empty pixels stay exactly empty)."""
    draws = draw(settings, image.shape[1], [rng])
    images, batch_labels = augment_batch(image[None], labels[None], settings, draws)
    return np.ascontiguousarray(images[0]), np.ascontiguousarray(batch_labels[0])


# --- helpers: the few places numpy and torch spell differently ---------------------------------------------


def _one(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return pair[0][0], pair[1][0]


def _like(values: np.ndarray, like: Any) -> Any:
    """Host ``values`` as the array kind of ``like`` (a tensor on its device)."""
    xp = namespace(like)
    return values if xp is np else xp.as_tensor(values, device=like.device)


def _take_columns(array: Any, cols: np.ndarray) -> Any:
    """``array[n, :, cols[n, j], ...]`` for an (N, H, W, ...) array and (N, W') host column indices."""
    index = cols.reshape(cols.shape[0], 1, cols.shape[1], *([1] * (array.ndim - 3)))
    if namespace(array) is np:
        return np.take_along_axis(array, index, axis=2)
    return namespace(array).take_along_dim(array, _like(index, array), dim=2)


def _with_xy(images: Any, x: Any, y: Any) -> Any:
    """``images`` with channels x and y replaced (cast to the images' dtype)."""
    xp = namespace(images)
    x, y = (v.astype(images.dtype) if xp is np else v.to(images.dtype) for v in (x, y))
    return xp.concatenate([x[..., None], y[..., None], images[..., Y + 1 :]], axis=-1)
