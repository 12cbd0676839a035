"""The ``dataset`` backend of the simulator's source interface: a recorded simulated dataset, replayed.

Anything :func:`perception_ws.io.open_dataset` reads with per-point labels will do; meant for simulated
ones: GTA-LiDAR ``.npy`` folders (64 x 512 range images of x y z range label) and ``perception sim
generate`` output (with instances, boxes and, when generated with ``--camera``, the camera picture and
its calibration). One frame per tick of ``sensor.rate_hz``; after the last frame the replay starts
again (``dataset.loop``) or ends (the node then stops).

A frame's time advances by the recording's own stamp differences where its frames carry stamps, else
by one period (``1 / sensor.rate_hz``), and keeps growing across loops, so ``clock.mode: sim`` stamps
never go back.

A ``sim generate`` folder's frames store the ego pose and the mounting (:mod:`perception_ws.sim.frame_placement`):
each frame's ego pose goes out on /tf and the first frame's mounting on /tf_static (one mounting per
replay); its camera comes with its own intrinsics, extrinsic and per-pixel masks
(:func:`perception_ws.io.simdata.load_camera`). What a recording does not hold stays neutral, and the
start-up line says so: intensity 0 (GTA-LiDAR has none), the vehicle at the fixed frame's origin and the
LiDAR at the vehicle frame's (GTA-LiDAR stores no pose or mounting), no camera without a picture and
calibration; a camera read from a KITTI-style calibration has masks of 0.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from perception_ws.calib.tf_tree import FrameTransform
from perception_ws.camera_frame import CameraFrame
from perception_ws.errors import DatasetError
from perception_ws.io import open_dataset
from perception_ws.io.simdata import load_camera, read_frame_meta, sim_frame_files
from perception_ws.scan import Scan
from perception_ws.sim.frame_placement import Placement, frame_placement
from perception_ws.sim.source import SimFrame, cloud_points, mount_transforms, source_stamp_ns, transform
from perception_ws.sim.stream_config import SimConfig


def scan_camera(scan: Scan, frame_id: str = "camera") -> CameraFrame | None:
    """The picture of ``scan`` with its intrinsics and LiDAR -> camera extrinsic (KITTI's camera 2), or None."""
    if scan.image is None or scan.calib is None:
        return None
    height, width = scan.image.shape[:2]
    zeros = np.zeros((height, width), np.uint8)
    return CameraFrame(
        rgb=scan.image,
        label=zeros,
        semantic=zeros,
        instance=zeros.astype(np.uint32),
        camera=scan.calib.camera(2, (width, height)),
        extrinsic=scan.calib.extrinsic(),
        name=scan.name,
        frame_id=frame_id,
    )


class DatasetSource:
    """See the module doc; ``config.dataset.path`` names the recording."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.path = config.dataset.path
        self.scans = open_dataset(self.path)
        if len(self.scans) == 0:
            raise DatasetError(f"{self.path}: holds no frames to replay")
        first = self.scans[0]
        if first.labels is None:
            raise DatasetError(f"{self.path}: its frames have no per-point labels; expected a labelled simulated set")
        files = sim_frame_files(Path(self.path))
        #: the frame files of a ``sim generate`` folder (ego pose, mounting, camera masks), else None
        self._files = files if files is not None and len(files) == len(self.scans) else None
        placement = self._placement(0)
        self._placed = placement is not None
        self._lidar_in_vehicle = placement.lidar_in_vehicle if placement is not None else np.eye(4)
        camera = self._camera(0, first)
        self._to_camera = camera.extrinsic.matrix if camera is not None and config.camera.enabled else None
        self._time_s = 0.0
        self._last_stamp_ns: int | None = None

    @property
    def length(self) -> int | None:
        """Frames before the replay ends: None when it loops."""
        return None if self.config.dataset.loop else len(self.scans)

    @property
    def period_s(self) -> float:
        return 1.0 / (self.config.sensor.rate_hz * self.config.clock.real_time_factor)

    def next_frame(self, index: int, elapsed_s: float) -> SimFrame:
        """Frame ``index % len`` of the recording (``elapsed_s`` plays no part: one frame per tick)."""
        started = time.perf_counter()
        scan = self.scans[index % len(self.scans)]
        if index > 0:
            self._time_s += self._step_s(scan.stamp_ns)
        self._last_stamp_ns = scan.stamp_ns
        min_points = self.config.ground_truth.min_points
        frames = self.config.frames
        position = index % len(self.scans)
        placement = self._placement(position)
        return SimFrame(
            index=index,
            scene_time_s=self._time_s,
            points=cloud_points(scan),
            boxes=[b for b in scan.boxes if b.label > 0 and b.num_points >= min_points],
            camera=self._camera(position, scan) if self.config.camera.enabled else None,
            render_ms=(time.perf_counter() - started) * 1e3,
            vehicle=transform(frames.odom, frames.base, placement.vehicle if placement is not None else np.eye(4)),
        )

    def _placement(self, position: int) -> Placement | None:
        """The ego pose and mounting frame ``position`` stores; None: not a ``sim generate`` frame, or none stored."""
        if self._files is None:
            return None
        path = self._files[position]
        return frame_placement(read_frame_meta(path), str(path))

    def _camera(self, position: int, scan: Scan) -> CameraFrame | None:
        """Frame ``position``'s camera: a ``sim generate`` frame's own (with masks), else the scan's calibration's."""
        if self._files is None:
            return scan_camera(scan, self.config.frames.camera)
        camera = load_camera(self._files[position])
        return None if camera is None else dataclasses.replace(camera, frame_id=self.config.frames.camera)

    def _step_s(self, stamp_ns: int | None) -> float:
        """Seconds since the previous frame: the stamps' difference where both have one and it is positive."""
        last = self._last_stamp_ns
        if stamp_ns is not None and last is not None and stamp_ns > last:
            return (stamp_ns - last) / 1e9
        return 1.0 / self.config.sensor.rate_hz

    def frame_stamp_ns(self, frame: SimFrame, wall_ns: int, start_ns: int) -> int:
        return source_stamp_ns(self.config.clock.mode, frame.scene_time_s, wall_ns, start_ns)

    def static_transforms(self) -> list[FrameTransform]:
        f = self.config.frames
        return mount_transforms(f.base, f.lidar, f.camera, self._lidar_in_vehicle, self._to_camera)

    def describe(self) -> str:
        loop = "looping" if self.config.dataset.loop else "once"
        f = self.config.frames
        placed = (
            "ego pose and mounting from its frames"
            if self._placed
            else f"it stores no ego pose or mounting: {f.odom} -> {f.base} and {f.base} -> {f.lidar} are identity"
        )
        return f"replaying {len(self.scans)} frames of {self.path} at {self.config.sensor.rate_hz} Hz, {loop}; {placed}"

    def close(self) -> None:
        """Nothing to give back: frames are read one at a time."""
