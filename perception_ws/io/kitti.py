"""Readers for KITTI-family LiDAR data: Velodyne ``.bin`` scans, SemanticKITTI labels and the KITTI
object benchmark's frames (points + calibration + image + 3D boxes).

Registered readers (highest priority first; see :mod:`perception_ws.io.registry`):

* ``kitti-object`` — a folder with ``velodyne/`` and ``calib/`` (plus optional ``label_2/`` and
  ``image_2/``), its ``velodyne/`` folder, or one ``velodyne/NNNNNN.bin`` inside such a folder: each
  frame comes with its calibration, image, boxes and box-derived point labels.
* ``semantickitti`` — a ``.bin`` with a ``.label`` beside it (same stem, same folder, or in the
  ``labels/`` sibling of ``velodyne/``), or a folder of such scans (a sequence folder too).
* ``kitti-bin`` — any other ``.bin`` scan or folder of them (odometry, raw recordings).

Every scan has float32 fields x, y, z, intensity (KITTI's reflectance, 0..1), sensor ``hdl64e`` and
the file stem as name. A ``.bin`` in nuScenes' layout (five float32: x, y, z, intensity 0..255, ring) is
recognised by its values and read as such, with a float ``ring`` field and no sensor name; one that fits
both layouts is refused (:func:`bin_layout`). A ``velodyne/`` folder whose parent holds ``calib.txt`` (odometry and
SemanticKITTI sequences) gives its scans that calibration.

SemanticKITTI instance ids: the raw ``.label`` instance id (high 16 bits) is only unique within one
class (a moving car and a moving person may both be instance 1), so :attr:`Scan.instances` holds
``learning_id << 16 | raw_instance`` — unique per (class, object) in the scan, stable across the scans
of a sequence, and still showing the raw id in its low 16 bits; 0 where the raw instance is 0. Classes
are the *learning* classes, so the static and moving labels of one object (car, moving-car) share an id.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from perception_ws.calib.kitti import read_kitti_calib
from perception_ws.errors import DatasetError
from perception_ws.io.kitti_object import (
    boxes_from_labels,
    dont_care_regions,
    label_points_in_boxes,
    read_kitti_labels,
)
from perception_ws.io.registry import ListDataset, register
from perception_ws.labels import semantickitti_instance_ids, semantickitti_learning_ids, semantickitti_to_kitti3
from perception_ws.scan import Scan

#: the LiDAR of every KITTI recording.
SENSOR = "hdl64e"
#: one KITTI point on disk: four little-endian float32.
POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
#: one nuScenes point: five float32, the fifth the ring index (0..31 on its HDL-32E), integral-valued.
NUSCENES_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<f4")])
#: the largest ring index a five-float layout may carry (128-beam sensors and below).
_MAX_RING = 127

_VELODYNE, _LABELS, _CALIB, _LABEL_2, _IMAGE_2 = "velodyne", "labels", "calib", "label_2", "image_2"
_SEQUENCE_CALIB = "calib.txt"


# -- files -------------------------------------------------------------------------------------


def read_velodyne_bin(path: Path) -> np.ndarray:
    """A ``.bin`` scan as a structured array (no copy): KITTI's float32 x y z reflectance, or nuScenes'
    x y z intensity ring (five floats) when the file has that layout's signature (:func:`bin_layout`).
    """
    try:
        size = path.stat().st_size
        values = np.fromfile(path, dtype="<f4")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read KITTI scan ({exc})") from None
    dtype = bin_layout(path, size, values)
    return values.view(dtype)


def bin_layout(path: Path, size: int, values: np.ndarray) -> np.dtype:
    """The point layout of a ``.bin`` of ``size`` bytes holding ``values`` (its float32 words).

    Both layouts are raw float32, so only the values tell them apart. nuScenes' fifth float is a ring
    index (integral, 0..127, more than one value); read as KITTI's four floats the same file would put
    x, y and z in the reflectance column, so some reflectances would be negative. A file that fits the
    five-float signature and not the four-float one is nuScenes; one that fits both is refused (one line
    naming the file), never guessed.
    """
    fits_four = size % POINT_DTYPE.itemsize == 0 and _plausible_kitti(values)
    fits_five = size % NUSCENES_DTYPE.itemsize == 0 and _plausible_nuscenes(values)
    if fits_five and not fits_four:
        return NUSCENES_DTYPE
    if fits_five:
        raise DatasetError(
            f"{path}: ambiguous .bin layout: it reads both as KITTI (4 float32 a point) and as nuScenes "
            "(5 float32, the 5th an integral ring index); convert it to PCD with named fields"
        )
    if size % POINT_DTYPE.itemsize:
        raise DatasetError(
            f"{path}: {size} bytes is not a whole number of points; a KITTI .bin holds float32 "
            f"x, y, z, reflectance ({POINT_DTYPE.itemsize} bytes per point), a nuScenes .bin x, y, z, intensity, "
            f"ring ({NUSCENES_DTYPE.itemsize} bytes, ring integral)"
        )
    return POINT_DTYPE


def _plausible_kitti(values: np.ndarray) -> bool:
    reflectance = values[3::4]
    return bool(np.all(np.isfinite(reflectance)) and np.all(reflectance >= 0))


def _plausible_nuscenes(values: np.ndarray) -> bool:
    ring = values[4::5]
    if len(ring) == 0 or not np.all(np.isfinite(ring)):
        return False
    integral = np.all(ring == np.round(ring)) and ring.min() >= 0 and ring.max() <= _MAX_RING
    return bool(integral and ring.min() != ring.max() and np.all(values[3::5] >= 0))


def read_semantickitti_label(path: Path, num_points: int) -> np.ndarray:
    """A SemanticKITTI ``.label`` (uint32 per point) checked against its scan's point count."""
    try:
        size = path.stat().st_size
        if size % 4:
            raise DatasetError(f"{path}: {size} bytes is not a whole number of uint32 labels")
        raw = np.fromfile(path, dtype="<u4")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read SemanticKITTI labels ({exc})") from None
    if len(raw) != num_points:
        raise DatasetError(
            f"{path}: has {len(raw)} labels but its scan has {num_points} points; expected one per point"
        )
    return raw


def semantickitti_scan_instances(raw: np.ndarray, learning: np.ndarray) -> np.ndarray:
    """Instance id per point, unique per (learning class, raw instance) (see the module doc)."""
    instance = semantickitti_instance_ids(raw)
    return np.where(instance > 0, (learning.astype(np.int32) << 16) | instance, 0).astype(np.int32)


def read_image(path: Path) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from None


def label_file_for(bin_path: Path) -> Path | None:
    """The SemanticKITTI ``.label`` of a scan: beside it, or in the ``labels/`` sibling of ``velodyne/``."""
    beside = bin_path.with_suffix(".label")
    if beside.is_file():
        return beside
    if bin_path.parent.name == _VELODYNE:
        sibling = bin_path.parent.parent / _LABELS / beside.name
        if sibling.is_file():
            return sibling
    return None


# -- scans -------------------------------------------------------------------------------------


def load_velodyne_scan(path: Path) -> Scan:
    """One ``.bin`` scan, with SemanticKITTI labels and a sequence calibration where they exist."""
    points = read_velodyne_bin(path)
    # a nuScenes scan names no sensor: its ring field gives the rows, the sensor profile its beam table
    sensor = None if points.dtype == NUSCENES_DTYPE else SENSOR
    scan = Scan(points=points, name=path.stem, sensor=sensor)
    label = label_file_for(path)
    if label is not None:
        raw = read_semantickitti_label(label, len(points))
        scan.semantic = semantickitti_learning_ids(raw)
        scan.instances = semantickitti_scan_instances(raw, scan.semantic)
        scan.labels = semantickitti_to_kitti3(scan.semantic)
    if path.parent.name == _VELODYNE and (path.parent.parent / _SEQUENCE_CALIB).is_file():
        scan.calib = read_kitti_calib(path.parent.parent / _SEQUENCE_CALIB)
    return scan


def load_object_frame(root: Path, frame: str) -> Scan:
    """Frame ``frame`` (e.g. "000001") of a KITTI object folder: points, calib, image, boxes, labels."""
    scan = Scan(points=read_velodyne_bin(root / _VELODYNE / f"{frame}.bin"), name=frame, sensor=SENSOR)
    scan.calib = read_kitti_calib(root / _CALIB / f"{frame}.txt")
    image = root / _IMAGE_2 / f"{frame}.png"
    if image.is_file():
        scan.image = read_image(image)
    label = root / _LABEL_2 / f"{frame}.txt"
    if label.is_file():
        objects = read_kitti_labels(label)
        scan.boxes = boxes_from_labels(objects, scan.calib)
        scan.dont_care = dont_care_regions(objects)
        scan.labels, scan.instances = label_points_in_boxes(scan.xyz, scan.boxes)
    return scan


# -- layouts -----------------------------------------------------------------------------------


def _object_root(path: Path) -> Path | None:
    """The KITTI object folder that ``path`` is, or whose velodyne folder / scan it is."""
    candidates = [path]
    if path.name == _VELODYNE:
        candidates.append(path.parent)
    if path.suffix == ".bin" and path.parent.name == _VELODYNE:
        candidates = [path.parent.parent]
    for root in candidates:
        if (root / _VELODYNE).is_dir() and (root / _CALIB).is_dir():
            return root
    return None


def _bin_files(path: Path) -> list[Path]:
    """The scans of a .bin file or folder (a sequence folder's ``velodyne/`` too), sorted by name."""
    if path.is_file():
        return [path] if path.suffix == ".bin" else []
    folder = path / _VELODYNE if (path / _VELODYNE).is_dir() else path
    return sorted(f for f in folder.glob("*.bin") if f.is_file())


def _accepts_object(path: Path) -> bool:
    root = _object_root(path)
    if root is None:
        return False
    return path.is_dir() or (root / _CALIB / f"{path.stem}.txt").is_file()


def _accepts_semantickitti(path: Path) -> bool:
    return any(label_file_for(f) is not None for f in _bin_files(path))


def _accepts_bin(path: Path) -> bool:
    return bool(_bin_files(path))


def _scan_dataset(path: Path) -> ListDataset:
    files = _bin_files(path)
    if not files:
        raise DatasetError(f"{path}: no .bin scans here")
    loaders: list[Callable[[], Scan]] = [partial(load_velodyne_scan, f) for f in files]
    dataset = ListDataset(path, loaders)
    unlabelled = sum(label_file_for(f) is None for f in files)
    if 0 < unlabelled < len(files):
        dataset.notes.append(f"{unlabelled} of {len(files)} scans have no SemanticKITTI .label file")
    return dataset


@register(
    "kitti-object", "KITTI object benchmark folder or frame (velodyne/ calib/ label_2/ image_2/)", _accepts_object, 30
)
def open_kitti_object(path: Path) -> ListDataset:
    """A KITTI object folder as a dataset of its frames, or one ``velodyne/NNNNNN.bin`` of it."""
    root = _object_root(path)
    if root is None:
        raise DatasetError(f"{path}: not a KITTI object folder; expected {_VELODYNE}/ and {_CALIB}/ subfolders")
    frames = [path.stem] if path.is_file() else [f.stem for f in _bin_files(root / _VELODYNE)]
    missing = [f for f in frames if not (root / _CALIB / f"{f}.txt").is_file()]
    if missing:
        raise DatasetError(f"{root}: frame(s) {', '.join(missing[:5])} have no {_CALIB}/NNNNNN.txt")
    dataset = ListDataset(path, [partial(load_object_frame, root, f) for f in frames])
    for folder, suffix, what in ((_LABEL_2, ".txt", "boxes and point labels"), (_IMAGE_2, ".png", "images")):
        lacking = sum(not (root / folder / f"{f}{suffix}").is_file() for f in frames)
        if lacking:
            dataset.notes.append(f"{lacking} of {len(frames)} frames have no {folder}/ file: no {what} for them")
    return dataset


@register(
    "semantickitti", "SemanticKITTI scans: .bin with .label (beside it or in labels/)", _accepts_semantickitti, 20
)
def open_semantickitti(path: Path) -> ListDataset:
    """A labelled ``.bin``, a folder of them, or a SemanticKITTI sequence folder."""
    return _scan_dataset(path)


@register("kitti-bin", "KITTI Velodyne .bin scans (float32 x y z reflectance), file or folder", _accepts_bin, 10)
def open_kitti_bin(path: Path) -> ListDataset:
    """A ``.bin`` scan or a folder of them (one scan per file, sorted by name)."""
    return _scan_dataset(path)
