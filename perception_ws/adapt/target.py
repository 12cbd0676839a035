"""The unlabelled target: real scans of the user's sensor as full-turn range images, and crops of them.

Adaptation never reads a label. Any path :func:`perception_ws.io.open_dataset` understands (a folder of
scans, a single file, a rosbag2 / ROS 1 bag with a PointCloud2 topic) is a target; each scan is projected
over the full turn with the target's sensor model, so its images have the same layout as the simulated
sweeps of that sensor (channels of :mod:`perception_ws.projection`: x, y, z, intensity, range, mask).
A SqueezeSeg ``.npy`` record is already a range image and is taken as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perception_ws.calib.sensors import SensorModel
from perception_ws.errors import DatasetError
from perception_ws.io import open_dataset
from perception_ws.projection import project
from perception_ws.scan import Scan
from perception_ws.sim.simulated_sensor import simulated_sensor


@dataclass
class TargetScans:
    """Unlabelled real scans as (H, columns, 6) float32 images, read once and cached.

    ``sample(i)`` is a ``crop_width``-column window of image ``i % len(self)``, starting at a column drawn
    from ``(seed, i)``: the same index gives the same crop in every process (as the simulated source does).
    """

    path: Path
    sensor: SensorModel | str = "hdl64e"
    columns: int = 2048
    crop_width: int = 512
    seed: int = 0
    max_frames: int | None = None
    _images: list[np.ndarray] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        # a built-in name, a sensor YAML or a sensor profile folder, as the simulator takes them
        self.sensor = simulated_sensor(self.sensor).model if isinstance(self.sensor, str) else self.sensor
        if self.columns % self.crop_width:
            raise DatasetError(f"target: crop width {self.crop_width} must divide the {self.columns} columns")
        dataset = open_dataset(self.path)  # a missing path or an unknown layout fails here, with one line
        count = len(dataset) if self.max_frames is None else min(len(dataset), self.max_frames)
        if count == 0:
            raise DatasetError(f"target {self.path}: holds no scans")
        self._images = [self._image(dataset[i]) for i in range(count)]

    def __len__(self) -> int:
        return len(self._images)

    @property
    def size(self) -> int:
        return len(self._images)

    @property
    def images(self) -> list[np.ndarray]:
        """The full-turn images (or the stored range images of SqueezeSeg records), one per scan."""
        return self._images

    def describe(self) -> dict[str, Any]:
        assert isinstance(self.sensor, SensorModel)
        return {"kind": "target", "path": str(self.path), "frames": len(self), "sensor": self.sensor.name}

    def sample(self, index: int) -> np.ndarray:
        image = self._images[index % len(self._images)]
        width = image.shape[1]
        if width <= self.crop_width:
            return image
        start = int(np.random.default_rng((self.seed, index, 11)).integers(width))
        return image[:, (np.arange(self.crop_width) + start) % width]

    def batch(self, indices: range | list[int]) -> np.ndarray:
        """(B, 6, H, crop_width) float32, channels first as the networks take them."""
        return np.stack([self.sample(i) for i in indices]).transpose(0, 3, 1, 2).copy()

    def _image(self, scan: Scan) -> np.ndarray:
        if scan.range_image is not None:  # SqueezeSeg records: already the sensor's rows, labels ignored
            image = np.asarray(scan.range_image[..., :6], dtype=np.float32).copy()
            image[..., 5] = image[..., 4] > 0  # the record's 6th channel is the label; here it is the mask
            return image
        return project(scan, self.sensor, fov_deg=360.0, width=self.columns).image
