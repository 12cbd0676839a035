"""Training samples by index: ``source.sample(i) -> (image (H, W, 6) float32, labels (H, W) int64)``.

Sources:

* :class:`SimulatedSource`: sweeps rendered on demand by the simulator (docs/algorithms.md §5): sample ``i`` is crop
  ``i % crops`` of sweep ``i // crops``; sweep ``s`` is frame ``s % frames_per_scene`` of scene
  ``s // frames_per_scene``, with the seeds ``perception sim generate`` uses. Unbounded.
* :class:`FolderSource`: labelled frames on disk, anything :func:`perception_ws.io.open_dataset` reads
  (SqueezeSeg ``.npy`` range images, simulated datasets, KITTI object frames, SemanticKITTI scans).

The image channels are those of :mod:`perception_ws.projection` (x, y, z, intensity, range, mask) and the
labels are class ids of the chosen class set, 0 where a pixel is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from perception_ws.errors import DatasetError
from perception_ws.io import open_dataset
from perception_ws.projection import project
from perception_ws.scan import Scan
from perception_ws.sim.dataset import frame_name, frame_seed, make_lidar, scene_seed
from perception_ws.sim.sensor.arrays import as_float32, namespace
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.world.generator import SceneConfig, generate_scene
from perception_ws.training.missing_intensity import MissingIntensity

Pair = tuple[np.ndarray, np.ndarray]


class SampleSource(Protocol):
    """What the training loop reads: samples by index, and how many there are (None: without end)."""

    def sample(self, index: int) -> Pair: ...

    @property
    def size(self) -> int | None: ...

    def describe(self) -> dict[str, Any]: ...


def scan_labels(scan: Scan, classes: str) -> np.ndarray:
    """The per-point class ids of ``scan`` in the class set ``classes`` ("kitti3" or "semantic")."""
    values = scan.labels if classes == "kitti3" else scan.semantic
    if values is None:
        raise DatasetError(f"{scan.name or 'scan'}: has no {classes} labels to train on")
    return np.asarray(values, dtype=np.int64)


def pixel_labels(owner: np.ndarray, point_labels: np.ndarray) -> np.ndarray:
    """(H, W) class ids from the (H, W) winning point index of each pixel (-1 empty -> 0)."""
    labels = np.zeros(owner.shape, dtype=np.int64)
    taken = owner >= 0
    labels[taken] = point_labels[owner[taken]]
    return labels


@dataclass
class SimulatedSource:
    """Simulated HDL-64E (or other) sweeps cut into ``crops`` windows of ``crop_width`` columns."""

    seed: int = 0
    sensor: str = "hdl64e"
    columns: int = 2048
    crop_width: int = 512
    dropout: str = "measured"
    intensity: str = "model"
    frames_per_scene: int = 4
    classes: str = "kitti3"
    backend: str = "auto"
    scene_config: SceneConfig = field(default_factory=SceneConfig)
    _scene: tuple[int, Any, Any] | None = field(default=None, init=False, repr=False)
    _sweep: tuple[int, Pair] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.columns % self.crop_width:
            raise DatasetError(
                f"simulated source: crop width {self.crop_width} must divide the sweep's {self.columns} columns"
            )
        self.scene_config = SceneConfig(**{**self.scene_config.__dict__, "ego_poses": self.frames_per_scene})
        self._lidar = make_lidar(self.sensor, self.columns, self.dropout, self.intensity)

    def __getstate__(self) -> dict[str, Any]:
        # data-loader workers get the settings, not the cached scene (a ray caster does not pickle)
        state = dict(self.__dict__)
        state["_scene"] = state["_sweep"] = None
        return state

    @property
    def crops(self) -> int:
        return self.columns // self.crop_width

    @property
    def size(self) -> int | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "simulated",
            "seed": self.seed,
            "sensor": self.sensor,
            "columns": self.columns,
            "crop_width": self.crop_width,
            "dropout": self.dropout,
            "intensity": self.intensity,
            "frames_per_scene": self.frames_per_scene,
        }

    def sweep(self, index: int) -> Pair:
        """The full (H, columns) image and labels of sweep ``index`` (the last one is kept for its crops)."""
        if self._sweep is not None and self._sweep[0] == index:
            return self._sweep[1]
        scene, frame = divmod(index, self.frames_per_scene)
        if self._scene is None or self._scene[0] != scene:
            world = generate_scene(scene_seed(self.seed, scene), self.scene_config)
            self._scene = (scene, world, make_raycaster(world.soup, self.backend))
        _, world, caster = self._scene
        scan = self._lidar.scan(
            world, caster, world.ego_poses[frame], frame_seed(self.seed, scene, frame), frame_name(scene, frame)
        )
        pair = sweep_pair(scan, self._lidar.model.height, self.columns, self.classes)
        self._sweep = (index, pair)
        return pair

    def sample(self, index: int) -> Pair:
        sweep, crop = divmod(index, self.crops)
        image, labels = self.sweep(sweep)
        # each sweep's crops start at a per-sweep offset, so objects do not always sit at the same columns
        offset = int(np.random.default_rng((self.seed, sweep, 7)).integers(self.crop_width))
        start = offset + crop * self.crop_width
        cols = (np.arange(self.crop_width) + start) % self.columns
        return image[:, cols], labels[:, cols]


def sweep_pair(scan: Scan, height: int, columns: int, classes: str) -> Pair:
    """The (H, W, 6) image and (H, W) labels of a simulated sweep (every return knows its pixel)."""
    assert scan.pixels is not None  # the simulator knows the pixel of every return
    owner = np.full((height, columns), -1, dtype=np.int64)
    owner[scan.pixels[:, 0], scan.pixels[:, 1]] = np.arange(len(scan.points))
    return _image_of(scan, owner), pixel_labels(owner, scan_labels(scan, classes))


def image_channels(xyz: Any, intensity: Any, mask: Any) -> Any:
    """(..., 6) x, y, z, intensity, range, mask from (..., 3) points, (...) intensity and (...) bool mask,
    zeros where the mask is False; numpy arrays or torch tensors (the GPU sweeps build theirs with this).
    """
    xp = namespace(xyz)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    rho = xp.sqrt(x**2 + y**2 + z**2)  # from the sensor frame's origin, not the beam's (as projection does)
    image = xp.stack([x, y, z, intensity, rho, as_float32(mask)], axis=-1)
    return xp.where(mask[..., None], image, 0.0)


def _image_of(scan: Scan, owner: np.ndarray) -> np.ndarray:
    """(H, W, 6) x, y, z, intensity, range, mask from the points owning each pixel."""
    taken = owner >= 0
    xyz = np.zeros((*owner.shape, 3), dtype=np.float32)
    intensity = np.zeros(owner.shape, dtype=np.float32)
    points = scan.points[owner[taken]]
    for channel, name in enumerate(("x", "y", "z")):
        xyz[taken, channel] = points[name]
    if "intensity" in (points.dtype.names or ()):
        intensity[taken] = points["intensity"]
    return np.asarray(image_channels(xyz, intensity, taken), dtype=np.float32)


@dataclass
class FolderSource:
    """Labelled frames that :func:`perception_ws.io.open_dataset` reads, as range images.

    SqueezeSeg-style records already are range images; other scans are projected with their sensor
    model (``fov_deg`` wide, ``width`` columns). Frames are cached after the first read. ``intensity``
    (the run's ``--intensity``): with ``lir:PATH`` a frame without intensity gets it rendered
    (:mod:`perception_ws.training.missing_intensity`).
    """

    path: Path
    classes: str = "kitti3"
    fov_deg: float = 90.0
    width: int = 512
    intensity: str = "off"
    _cache: dict[int, Pair] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._fill = MissingIntensity(self.intensity)
        self._dataset = open_dataset(self.path)
        if len(self._dataset) == 0:
            raise DatasetError(f"{self.path}: holds no frames to train on")

    @property
    def size(self) -> int | None:
        return len(self._dataset)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "folder",
            "path": str(self.path),
            "frames": len(self._dataset),
            "classes": self.classes,
            **self._fill.describe(),
        }

    def sample(self, index: int) -> Pair:
        key = index % len(self._dataset)
        if key not in self._cache:
            image, labels = self._read(self._dataset[key])
            self._cache[key] = (self._fill(image), labels)
        return self._cache[key]

    def _read(self, scan: Scan) -> Pair:
        labels = scan_labels(scan, self.classes)
        if scan.range_image is not None and scan.pixels is not None:
            height, width = scan.range_image.shape[:2]
            owner = np.full((height, width), -1, dtype=np.int64)
            owner[scan.pixels[:, 0], scan.pixels[:, 1]] = np.arange(len(scan.points))
            return _image_of(scan, owner), pixel_labels(owner, labels)
        projection = project(scan, scan.sensor or "hdl64e", fov_deg=self.fov_deg, width=self.width)
        return projection.image, pixel_labels(projection.owner.astype(np.int64), labels)
