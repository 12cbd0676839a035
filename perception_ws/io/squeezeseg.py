"""Readers for range images saved as ``.npy`` the way SqueezeSeg released them: KITTI frames and the
GTA-V simulated scans (GTA-LiDAR) of SqueezeSegV2.

Layouts (H x W pixels, float32, empty pixels all zero; KITTI's release is 64 x 512: one row per
HDL-64E ring, top ring first, 512 azimuth bins over the front 90 degrees):

* KITTI (SqueezeSeg): H x W x 6 = x, y, z, intensity, range, label;
* GTA-LiDAR (SqueezeSegV2's synthetic set, ``GTAV/<sequence>/NNNNNNNN.npy``): H x W x 5 =
  x, y, z, range, label — the simulator has no intensity. (SqueezeSegV2's repository ships no GTA
  loader; the layout is the one the GTALiDAR dataset class of kazuto1011/dusty-gan-v2 reads: range
  in channel 3, label in channel 4, classes unknown/car/pedestrian.)

labels are KITTI-3 ids (0 unknown, 1 car, 2 pedestrian, 3 cyclist; GTA-V has no cyclists).

Each valid pixel (range > 0) becomes one point, in row-major pixel order, with float32 x, y, z,
[intensity,] range and uint16 ring = row; :attr:`Scan.pixels` holds its (row, col).

A scan is taken for a GTA scan (no intensity field, no sensor name: the simulator's beams are not an
HDL-64E's) when any of these holds: the file has 5 channels; its intensity channel is zero on every
valid pixel (a GTA scan saved in the 6-channel layout; a real HDL-64E frame always has returns with
non-zero remission); a folder on its path is named like ``gta``/``GTAV``/``gta_lidar``; or it is
opened with :func:`open_gta`. A 6-channel GTA scan whose intensity is not all zero (e.g. rendered by
the learned intensity model) keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from perception_ws.errors import DatasetError
from perception_ws.io.registry import ListDataset, register
from perception_ws.labels import KITTI3
from perception_ws.scan import Scan

#: the LiDAR of SqueezeSeg's KITTI frames.
SENSOR = "hdl64e"
KITTI_CHANNELS = ("x", "y", "z", "intensity", "range", "label")
GTA_CHANNELS = ("x", "y", "z", "range", "label")
_EXPECTED = (
    "H x W x 6 (x, y, z, intensity, range, label; KITTI: 64 x 512 x 6) or H x W x 5 (GTA-LiDAR: x, y, z, range, label)"
)


def read_range_image(path: Path) -> np.ndarray:
    """The float32 (H, W, C) array of a SqueezeSeg / GTA-LiDAR ``.npy``, C being 5 or 6."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read as a .npy range image ({exc})") from None
    if array.ndim != 3 or array.shape[2] not in (len(GTA_CHANNELS), len(KITTI_CHANNELS)):
        raise DatasetError(f"{path}: array of shape {array.shape}; expected {_EXPECTED}")
    if not np.issubdtype(array.dtype, np.floating):
        raise DatasetError(f"{path}: array of dtype {array.dtype}; expected float32")
    labels = array[:, :, -1]
    if np.any((labels < 0) | (labels >= len(KITTI3)) | (labels != np.rint(labels))):
        raise DatasetError(
            f"{path}: label channel holds {np.unique(labels)[:8].tolist()}; expected KITTI-3 ids 0..{len(KITTI3) - 1}"
        )
    return array.astype(np.float32, copy=False)


# gta, GTAV, gta5, gta-v, gta_lidar, GTAV_noise_v1 …; not gtaylor
_GTA_FOLDER = re.compile(r"gta(-?v|5|[-_]?lidar)?([-_].*)?")


def _in_gta_folder(path: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    return any(_GTA_FOLDER.fullmatch(part.lower()) for part in folder.parts)


def range_image_to_scan(array: np.ndarray, name: str, gta: bool = False) -> Scan:
    """A (H, W, 5 or 6) range image -> Scan of its valid pixels (see the module doc for ``gta``)."""
    channels = KITTI_CHANNELS if array.shape[2] == len(KITTI_CHANNELS) else GTA_CHANNELS
    column = {c: i for i, c in enumerate(channels)}
    rows, cols = np.nonzero(array[:, :, column["range"]] > 0)
    valid = array[rows, cols]
    has_intensity = "intensity" in column and bool(np.any(valid[:, column["intensity"]] != 0))
    fields = ["x", "y", "z"] + (["intensity"] if has_intensity else []) + ["range"]
    points = np.empty(len(rows), dtype=[(f, np.float32) for f in fields] + [("ring", np.uint16)])
    for f in fields:
        points[f] = valid[:, column[f]]
    points["ring"] = rows
    is_gta = gta or not has_intensity
    return Scan(
        points=points,
        name=name,
        sensor=None if is_gta else SENSOR,
        labels=valid[:, column["label"]].astype(np.int32),
        range_image=array,
        pixels=np.stack([rows, cols], axis=1).astype(np.int32),
    )


def load_range_image_scan(path: Path, name: str, gta: bool = False) -> Scan:
    """One SqueezeSeg .npy range image as a scan (a GTA-V frame when ``gta`` or its folder says so)."""
    return range_image_to_scan(read_range_image(path), name, gta or _in_gta_folder(path))


def _npy_files(path: Path) -> list[Path]:
    """The .npy files of a file or folder: directly inside, or one level down (GTAV/<sequence>/)."""
    if path.is_file():
        return [path] if path.suffix == ".npy" else []
    files = sorted(f for f in path.glob("*.npy") if f.is_file())
    return files or sorted(f for f in path.glob("*/*.npy") if f.is_file())


def _open(path: Path, gta: bool) -> ListDataset:
    files = _npy_files(path)
    if not files:
        raise DatasetError(f"{path}: no .npy range images here")
    base = path if path.is_dir() else path.parent
    # names relative to the opened folder, so GTAV/1/00000000 and GTAV/2/00000000 stay distinct
    names = [f.relative_to(base).with_suffix("").as_posix() for f in files]
    loaders: list[Callable[[], Scan]] = [
        partial(load_range_image_scan, f, n, gta) for f, n in zip(files, names, strict=True)
    ]
    return ListDataset(path, loaders)


@register(
    "gta-lidar",
    "GTA-LiDAR .npy range images (64x512x5 x y z range label) in a gta-named folder",
    lambda p: _in_gta_folder(p) and bool(_npy_files(p)),
    11,
)
def open_gta(path: str | Path) -> ListDataset:
    """GTA-LiDAR scans (a ``.npy`` or a folder of them, ``GTAV/<sequence>/`` too), marked as GTA."""
    return _open(Path(path), gta=True)


@register(
    "squeezeseg",
    "SqueezeSeg .npy range images (64x512x6 x y z intensity range label)",
    lambda p: bool(_npy_files(p)),
    10,
)
def open_squeezeseg(path: Path) -> ListDataset:
    """A SqueezeSeg ``.npy`` or a folder of them; 5-channel or intensity-free files read as GTA scans."""
    return _open(path, gta=False)
