"""`CameraFrame`: one camera picture with its per-pixel ground truth and calibration.

The simulated camera (:mod:`perception_ws.sim.sensor.camera`) renders them and generated datasets
(:mod:`perception_ws.io.simdata`) store and read them back; the type lives outside
:mod:`perception_ws.sim` so that reading a dataset does not import the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.calib.kitti import KittiCalib


@dataclass(eq=False)  # numpy fields
class CameraFrame:
    """One rendered picture with its per-pixel ground truth and calibration."""

    rgb: np.ndarray  # (H, W, 3) uint8
    label: np.ndarray  # (H, W) uint8 KITTI-3 id (0 also for sky)
    semantic: np.ndarray  # (H, W) uint8 SemanticKITTI learning id (0 also for sky)
    instance: np.ndarray  # (H, W) uint32, 0 = stuff or sky
    camera: PinholeCamera  # intrinsics (no distortion)
    extrinsic: Extrinsic  # LiDAR frame -> camera optical frame
    #: (H, W) float32 depth along the optical axis (metres), inf for sky; None when read from a dataset.
    depth: np.ndarray | None = None
    name: str = ""
    frame_id: str = "camera"
    stamp_ns: int | None = None

    @property
    def width(self) -> int:
        return self.camera.width

    @property
    def height(self) -> int:
        return self.camera.height

    @property
    def K(self) -> np.ndarray:  # noqa: N802 (CameraInfo's name)
        return self.camera.K

    @property
    def P(self) -> np.ndarray:  # noqa: N802 (CameraInfo's name)
        return self.camera.P

    @property
    def lidar_to_camera(self) -> np.ndarray:
        """(4, 4) LiDAR -> camera transform."""
        return self.extrinsic.matrix

    def camera_info(self) -> dict[str, Any]:
        """``sensor_msgs/CameraInfo`` fields (k, p, r, d zeros, width, height, distortion_model)."""
        return self.camera.to_camera_info_dict()

    def kitti_calib(self) -> KittiCalib:
        """The calibration as KITTI writes it (every P = this camera's, R0_rect = I), for ``Scan.calib``."""
        return kitti_calib(self.camera, self.extrinsic)


def kitti_calib(camera: PinholeCamera, extrinsic: Extrinsic, source: str = "simulated camera") -> KittiCalib:
    """A :class:`KittiCalib` whose camera 2 (and 0, 1, 3) is ``camera`` and whose Tr_velo_to_cam is ``extrinsic``
    (every P = [K | 0], no rectification), so that code written for KITTI frames (``calib.velo_to_image``) works
    on simulated ones.
    """
    P = camera.P
    return KittiCalib(P, P, P, P, np.eye(3), extrinsic.matrix[:3], source=source)
