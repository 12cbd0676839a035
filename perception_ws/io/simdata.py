"""The frame format of generated simulator datasets (``perception sim generate``), and its reader.

A dataset folder holds ``manifest.json`` (see :mod:`perception_ws.sim.dataset`; a sharded one holds
its shards' manifests instead, see :mod:`perception_ws.io.sim_manifest`) and ``frames/*.npz``, one sweep
per file. A frame is stored as dense ``rows x columns`` images of the sweep, because a
simulated point lies exactly on the ray of its pixel: its position is the beam origin plus the range
times the pixel's unit direction, both known from the sensor table stored in the frame. So a point
costs a uint16 range and a few label bytes instead of three floats:

==================  ================  ==========================================================
key                 dtype, shape      meaning
==================  ================  ==========================================================
``format``          str               ``perception-sim-frame/1``
``meta``            str (JSON)        name, sensor settings, columns, range unit, seeds, pose, …
``elevations_deg``  float64 (H,)      the sensor's beams in row order (row 0 = top) …
``beam_heights_m``  float64 (H,)      … the height of each beam's origin …
``laser_rows``      int32 (H,)        … and the row of each laser id (for the ring field)
``range``           uint16 (H, W)     range along the beam in units of ``meta.range_unit_m``; 0 = empty
``intensity``       uint8 (H, W)      intensity * 255 (only when the scan has intensity)
``label``           uint8 (H, W)      KITTI-3 id
``semantic``        uint8 (H, W)      SemanticKITTI learning id
``instance``        uint16/32 (H, W)  instance id (uint16 when every id fits)
``box_float``       float32 (K, 10)   centre xyz, size lwh, yaw, velocity xyz (sensor frame)
``box_int``         int64 (K, 3)      KITTI-3 label, track id (instance), points in the box
``box_name``        str (K,)          KITTI type (Car, Van, Truck, Pedestrian, Cyclist)
``xyz_mm``          int32 (H, W, 3)   only for points off their pixel's ray: positions in mm
==================  ================  ==========================================================

Frames generated with the simulated camera (``GenerateConfig(camera=True)``) add:

======================  ===============  ========================================================
``camera_rgb_png``      uint8 (bytes,)   the RGB picture, PNG-encoded (lossless)
``camera_label``        uint8 (h, w)     KITTI-3 id per pixel
``camera_semantic``     uint8 (h, w)     SemanticKITTI learning id per pixel
``camera_instance``     uint16/32 (h, w) instance id per pixel
``camera_K``            float64 (3, 3)   intrinsics (no distortion)
``camera_extrinsic``    float64 (4, 4)   LiDAR frame -> camera optical frame
======================  ===============  ========================================================

:func:`load_frame` puts the picture in ``Scan.image`` and the calibration in ``Scan.calib`` (as a
KITTI calibration whose ``P2`` is the camera); :func:`load_camera` returns the whole
:class:`~perception_ws.camera_frame.CameraFrame` with the masks.

Range precision: the unit is the smallest whole number of millimetres for which the sensor's
maximum range (plus a metre of noise margin) fits a uint16 — 2 mm for the HDL-64E (120 m), so a
point moves by at most 1 mm (half a unit) along its ray, far below the 2 cm range noise. Intensity
is kept to 1/510. The writer checks that every point lies on its pixel's ray (within 0.1 mm);
points that do not (a future motion-distorted sweep) are stored as ``xyz_mm`` instead.

Files are zip archives written with a fixed timestamp, so the same scan gives the same bytes (and
checksum) on every run; they are written atomically (:mod:`perception_ws.io.atomic`).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.errors import CalibrationError, CloudFormatError, DatasetError
from perception_ws.io.atomic import atomic_file
from perception_ws.io.registry import ListDataset, register
from perception_ws.io.sim_manifest import MANIFEST, read_manifest, read_manifest_file, shard_manifests
from perception_ws.scan import Scan

if TYPE_CHECKING:
    from perception_ws.calib.sensors import SensorModel
    from perception_ws.camera_frame import CameraFrame

FORMAT = "perception-sim-frame/1"
FRAMES = "frames"
#: points further than this from their pixel's ray are stored with explicit coordinates.
ON_RAY_TOLERANCE_M = 1e-4
_UINT16_MAX = 65535
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so equal scans give equal bytes
_BOX_FLOATS = 10
_REQUIRED = ("format", "meta", "elevations_deg", "beam_heights_m", "laser_rows", "range", "label", "semantic")


def range_unit_m(max_range_m: float) -> float:
    """The range quantum: whole millimetres, as few as let ``max_range_m`` + 1 m fit a uint16."""
    return float(np.ceil((max_range_m + 1.0) * 1000.0 / _UINT16_MAX)) / 1000.0


# -- writing -----------------------------------------------------------------------------------


def encode_frame(
    scan: Scan,
    sensor: SensorModel,
    columns: int,
    meta: Mapping[str, Any] | None = None,
    camera: CameraFrame | None = None,
) -> bytes:
    """The bytes of the frame file of a simulated ``scan`` (one return per pixel, ``scan.pixels`` set),
    with the picture and masks of ``camera`` if given.
    """
    from perception_ws.sweep_layout import RayPattern

    if scan.pixels is None or scan.labels is None or scan.semantic is None or scan.instances is None:
        raise CloudFormatError(
            f"scan {scan.name!r}: a simulated frame needs pixels, labels, semantic and instances (as Lidar.scan gives)"
        )
    pattern = RayPattern(sensor, columns)
    rows, cols = scan.pixels[:, 0].astype(np.int64), scan.pixels[:, 1].astype(np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= pattern.rows or cols.min() < 0 or cols.max() >= columns):
        raise CloudFormatError(f"scan {scan.name!r}: pixels outside the {pattern.rows} x {columns} sweep")
    shape = (pattern.rows, columns)
    flat = rows * columns + cols
    if len(flat) and np.bincount(flat, minlength=flat.max() + 1).max() > 1:  # a count per pixel: no sort
        raise CloudFormatError(f"scan {scan.name!r}: two points share a pixel; a simulated sweep has one per pixel")
    unit = range_unit_m(sensor.max_range_m)
    xyz = scan.xyz.astype(np.float64)
    offset = xyz - pattern.origins[rows].astype(np.float64)
    direction = pattern.directions[rows, cols].astype(np.float64)
    along = np.einsum("ij,ij->i", offset, direction)
    off_ray = np.linalg.norm(offset - along[:, None] * direction, axis=1) if len(xyz) else np.zeros(0)
    arrays: dict[str, np.ndarray] = {
        "elevations_deg": np.asarray(sensor.elevations_deg, dtype=np.float64),
        "beam_heights_m": np.asarray(sensor.beam_heights_m, dtype=np.float64),
        "laser_rows": np.asarray(sensor.laser_rows, dtype=np.int32),
    }
    arrays["range"] = _dense(shape, flat, np.clip(np.rint(along / unit), 1, _UINT16_MAX).astype(np.uint16))
    if np.any(off_ray > ON_RAY_TOLERANCE_M):
        arrays["xyz_mm"] = _dense((*shape, 3), flat, np.rint(xyz * 1000.0).astype(np.int32))
    intensity = scan.field("intensity")
    has_intensity = intensity is not None and bool(np.any(intensity != 0))
    if has_intensity and intensity is not None:
        arrays["intensity"] = _dense(shape, flat, np.rint(np.clip(intensity, 0.0, 1.0) * 255.0).astype(np.uint8))
    arrays["label"] = _dense(shape, flat, scan.labels.astype(np.uint8))
    arrays["semantic"] = _dense(shape, flat, scan.semantic.astype(np.uint8))
    instances = np.asarray(scan.instances)
    wide = len(instances) and int(instances.max()) > _UINT16_MAX
    arrays["instance"] = _dense(shape, flat, instances.astype(np.uint32 if wide else np.uint16))
    arrays.update(_encode_boxes(scan.boxes))
    if camera is not None:
        arrays.update(_encode_camera(camera))
    info = {
        "name": scan.name,
        "sensor": {
            "name": sensor.name,
            "azimuth_resolution_deg": sensor.azimuth_resolution_deg,
            "max_range_m": sensor.max_range_m,
            "rate_hz": sensor.rate_hz,
            "ring_numbering": sensor.ring_numbering,
        },
        "columns": columns,
        "range_unit_m": unit,
        "intensity": has_intensity,
        **(meta or {}),
    }
    arrays["meta"] = np.array(json.dumps(info, sort_keys=True))
    arrays["format"] = np.array(FORMAT)
    return _zip_arrays(arrays)


def write_frame(path: str | Path, data: bytes) -> None:
    """Write a frame's bytes atomically (a reader never sees a partial file)."""
    with atomic_file(path) as handle:
        handle.write(data)


def _dense(shape: tuple[int, ...], flat: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros((shape[0] * shape[1], *shape[2:]), dtype=values.dtype)
    out[flat] = values
    return out.reshape(shape)


def _encode_boxes(boxes: list[Box3D]) -> dict[str, np.ndarray]:
    floats = np.zeros((len(boxes), _BOX_FLOATS), dtype=np.float32)
    ints = np.zeros((len(boxes), 3), dtype=np.int64)
    for i, b in enumerate(boxes):  # a few dozen boxes per frame
        floats[i] = [*b.center, *b.size, b.yaw, *b.velocity]
        ints[i] = [b.label, b.track_id, b.num_points]
    names = np.array([b.name for b in boxes], dtype="<U16") if boxes else np.zeros(0, dtype="<U16")
    return {"box_float": floats, "box_int": ints, "box_name": names}


def _encode_camera(frame: CameraFrame) -> dict[str, np.ndarray]:
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame.rgb, dtype=np.uint8), "RGB").save(png, format="PNG", compress_level=6)
    wide = frame.instance.size and int(frame.instance.max()) > _UINT16_MAX
    return {
        "camera_rgb_png": np.frombuffer(png.getvalue(), dtype=np.uint8),
        "camera_label": frame.label.astype(np.uint8),
        "camera_semantic": frame.semantic.astype(np.uint8),
        "camera_instance": frame.instance.astype(np.uint32 if wide else np.uint16),
        "camera_K": np.asarray(frame.K, dtype=np.float64),
        "camera_extrinsic": np.asarray(frame.lidar_to_camera, dtype=np.float64),
    }


def _zip_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            entry = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[key]), allow_pickle=False)
            # level 1: within 1 % of level 6's size on these sparse images, in 60 % of the time
            archive.writestr(entry, member.getvalue(), compresslevel=1)
    return buffer.getvalue()


# -- reading -----------------------------------------------------------------------------------


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a frame file, checked for the keys every frame has."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: cannot read as a simulated frame (.npz): {exc}") from None
    missing = [key for key in _REQUIRED if key not in arrays]
    if missing or str(arrays["format"]) != FORMAT:
        raise DatasetError(
            f"{path}: not a {FORMAT} file (format {str(arrays.get('format', 'missing'))!r}, missing {missing})"
        )
    return arrays


def frame_meta(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The JSON metadata stored in a frame's ``meta`` array, decoded."""
    meta: dict[str, Any] = json.loads(str(arrays["meta"]))
    return meta


def read_frame_meta(path: Path) -> dict[str, Any]:
    """The JSON metadata of a frame file alone (the archive's other arrays are not decompressed)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return frame_meta(archive)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: cannot read a simulated frame's meta: {exc}") from None


def frame_sensor(arrays: Mapping[str, np.ndarray]) -> SensorModel:
    """The sensor model stored in a frame (no need for it to be a built-in one)."""
    from perception_ws.calib.sensors import SensorModel

    info = frame_meta(arrays)["sensor"]
    return SensorModel(
        name=str(info["name"]),
        elevations_deg=arrays["elevations_deg"],
        beam_heights_m=arrays["beam_heights_m"],
        laser_rows=arrays["laser_rows"],
        azimuth_resolution_deg=float(info["azimuth_resolution_deg"]),
        rate_hz=float(info["rate_hz"]),
        max_range_m=float(info["max_range_m"]),
        ring_numbering=info["ring_numbering"],
    )


def load_frame(path: Path, name: str | None = None) -> Scan:
    """One frame file as a :class:`Scan` with the simulator's point fields, labels, boxes and pixels.

    ``range_image`` holds the (H, W, 6) image of :mod:`perception_ws.projection` (x, y, z,
    intensity, range, mask), ready for a range-image network.
    """
    from perception_ws.projection import range_image
    from perception_ws.sweep_layout import POINT_DTYPE, RayPattern

    arrays = read_arrays(path)
    meta = frame_meta(arrays)
    sensor = frame_sensor(arrays)
    pattern = RayPattern(sensor, int(meta["columns"]))
    quantised = arrays["range"]
    if quantised.shape != (pattern.rows, pattern.columns):
        raise DatasetError(f"{path}: range image is {quantised.shape}; expected {(pattern.rows, pattern.columns)}")
    rows, cols = np.nonzero(quantised)
    along = quantised[rows, cols].astype(np.float32) * np.float32(meta["range_unit_m"])
    if "xyz_mm" in arrays:
        xyz = arrays["xyz_mm"][rows, cols].astype(np.float32) / np.float32(1000.0)
    else:
        xyz = pattern.origins[rows] + pattern.directions[rows, cols] * along[:, None]
    points = np.zeros(len(rows), dtype=POINT_DTYPE)
    points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if "intensity" in arrays:
        points["intensity"] = arrays["intensity"][rows, cols].astype(np.float32) / np.float32(255.0)
    points["ring"] = pattern.ring_of_row[rows]
    points["label"] = arrays["label"][rows, cols]
    points["semantic"] = arrays["semantic"][rows, cols]
    points["instance"] = arrays["instance"][rows, cols] if "instance" in arrays else 0
    pixels = np.stack([rows, cols], axis=1).astype(np.int32)
    camera = _decode_camera(path, arrays, meta)
    return Scan(
        points=points,
        name=name or str(meta.get("name") or path.stem),
        sensor=sensor.name,
        labels=points["label"].copy(),
        semantic=points["semantic"].copy(),
        instances=points["instance"].copy(),
        boxes=_decode_boxes(arrays),
        range_image=range_image(points, pixels, pattern.rows, pattern.columns),
        pixels=pixels,
        image=None if camera is None else camera.rgb,
        calib=None if camera is None else camera.kitti_calib(),
    )


def load_camera(path: str | Path) -> CameraFrame | None:
    """The camera picture of a frame file with its masks and calibration; None for a frame without one."""
    path = Path(path)
    arrays = read_arrays(path)
    return _decode_camera(path, arrays, frame_meta(arrays))


def _decode_camera(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> CameraFrame | None:
    from PIL import Image

    from perception_ws.calib.camera import Extrinsic, PinholeCamera
    from perception_ws.camera_frame import CameraFrame

    if "camera_rgb_png" not in arrays:
        return None
    missing = [k for k in ("camera_label", "camera_semantic", "camera_instance", "camera_K", "camera_extrinsic")
               if k not in arrays]  # fmt: skip
    if missing:
        raise DatasetError(f"{path}: has a camera picture but lacks {', '.join(missing)}")
    try:
        with Image.open(io.BytesIO(arrays["camera_rgb_png"].tobytes())) as picture:
            rgb = np.asarray(picture.convert("RGB"))
    except OSError as exc:
        raise DatasetError(f"{path}: camera_rgb_png is not a readable PNG ({exc})") from None
    height, width = rgb.shape[:2]
    masks = {key: arrays[f"camera_{key}"] for key in ("label", "semantic", "instance")}
    wrong = {key: m.shape for key, m in masks.items() if m.shape != (height, width)}
    if wrong:
        raise DatasetError(f"{path}: camera masks {wrong} do not match the {width}x{height} picture")
    try:
        camera = PinholeCamera(arrays["camera_K"], width, height)
        extrinsic = Extrinsic(arrays["camera_extrinsic"], f"camera_extrinsic of {path}")
    except CalibrationError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    return CameraFrame(
        rgb=rgb,
        label=masks["label"].astype(np.uint8),
        semantic=masks["semantic"].astype(np.uint8),
        instance=masks["instance"].astype(np.uint32),
        camera=camera,
        extrinsic=extrinsic,
        name=str(meta.get("name") or path.stem),
    )


def _decode_boxes(arrays: Mapping[str, np.ndarray]) -> list[Box3D]:
    if "box_float" not in arrays:
        return []
    floats, ints, names = arrays["box_float"].astype(np.float64), arrays["box_int"], arrays["box_name"]
    return [
        Box3D(
            center=f[0:3],
            size=f[3:6],
            yaw=float(f[6]),
            velocity=f[7:10],
            label=int(i[0]),
            track_id=int(i[1]),
            num_points=int(i[2]),
            name=str(n),
        )
        for f, i, n in zip(floats, ints, names, strict=True)
    ]


# -- the registry ------------------------------------------------------------------------------


def is_frame_file(path: Path) -> bool:
    """A ``.npz`` whose archive holds this format's arrays (checked by name, without decompressing)."""
    if not (path.is_file() and path.suffix == ".npz"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return {"format.npy", "meta.npy", "range.npy"} <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _is_dataset_folder(path: Path) -> bool:
    """A folder with a manifest of this format (a shard's will do; :func:`open_sim` says what is wrong with it)."""
    if not path.is_dir():
        return False
    for manifest in [path / MANIFEST, *shard_manifests(path)]:
        try:
            if manifest.is_file() and read_manifest_file(manifest):
                return True
        except DatasetError:
            continue
    return False


def _accepts(path: Path) -> bool:
    return _is_dataset_folder(path) or is_frame_file(path)


def sim_frame_files(path: Path) -> list[Path] | None:
    """The frame files :func:`open_sim` reads from ``path``, in its order; None where ``path`` is no generated
    dataset folder or frame file.
    """
    if not _accepts(path):
        return None
    if path.is_file():
        return [path]
    return _listed_files(path, read_manifest(path))


def _listed_files(folder: Path, manifest: Mapping[str, Any]) -> list[Path]:
    """The frames a dataset's manifest lists as done, in its order."""
    return [folder / entry["file"] for entry in manifest.get("frames", [])]


@register("sim", "perception sim dataset (manifest.json + frames/*.npz) or one of its frame files", _accepts, 25)
def open_sim(path: Path) -> ListDataset:
    """A generated dataset folder (the frames its manifest lists as done, in order) or one frame file."""
    if path.is_file():
        return ListDataset(path, [partial(load_frame, path)])
    manifest = read_manifest(path)
    files = _listed_files(path, manifest)
    loaders: list[Callable[[], Scan]] = [partial(load_frame, f) for f in files]
    dataset = ListDataset(path, loaders)
    planned = int(manifest.get("planned_frames", len(files)))
    if len(files) < planned:
        dataset.notes.append(f"{len(files)} of {planned} planned frames are done (generation was interrupted?)")
    return dataset
