"""The ``dataset`` backend of the simulator's source interface: a recorded simulated dataset, replayed.

Anything :func:`perception_ws.io.open_dataset` reads with per-point labels will do; meant for simulated
ones: GTA-LiDAR ``.npy`` folders (64 x 512 range images of x y z range label) and ``perception sim
generate`` output (with instances, boxes and, when generated with ``--camera``, the camera picture and
its calibration). One frame per tick of ``sensor.rate_hz``; after the last frame the replay starts
again (``dataset.loop``) or ends (the node then stops).

A frame's time advances by the recording's own stamp differences where its frames carry stamps, else
by one period (``1 / sensor.rate_hz``), and keeps growing across loops, so ``clock.mode: sim`` stamps
never go back. What a recording does not hold stays neutral: intensity 0 (GTA-LiDAR has none), the
vehicle at the fixed frame's origin (no ego pose is stored), the LiDAR at the vehicle frame's origin
(no mounting), no camera without a picture and calibration; a camera's per-pixel masks read as 0.
"""

from __future__ import annotations

import time

import numpy as np

from perception_ws.calib.tf_tree import FrameTransform
from perception_ws.camera_frame import CameraFrame
from perception_ws.errors import DatasetError
from perception_ws.io import open_dataset
from perception_ws.scan import Scan
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
        camera = scan_camera(first)
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
        camera = scan_camera(scan, frames.camera) if self.config.camera.enabled else None
        return SimFrame(
            index=index,
            scene_time_s=self._time_s,
            points=cloud_points(scan),
            boxes=[b for b in scan.boxes if b.label > 0 and b.num_points >= min_points],
            camera=camera,
            render_ms=(time.perf_counter() - started) * 1e3,
            vehicle=transform(frames.odom, frames.base, np.eye(4)),
        )

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
        return mount_transforms(f.base, f.lidar, f.camera, np.eye(4), self._to_camera)

    def describe(self) -> str:
        loop = "looping" if self.config.dataset.loop else "once"
        return f"replaying {len(self.scans)} frames of {self.path} at {self.config.sensor.rate_hz} Hz, {loop}"

    def close(self) -> None:
        """Nothing to give back: frames are read one at a time."""
