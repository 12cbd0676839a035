"""Where a stored frame's vehicle and LiDAR were: the ego pose and the mounting in a frame file's metadata.

``perception sim generate`` frames hold them in one of two forms:

* built-in streets: ``pose`` (an :class:`~perception_ws.sim.world.scene.EgoPose`: the point on the ground below
  the LiDAR, and the heading) and ``mount`` (a :class:`~perception_ws.sim.sensor.lidar.Mount`: height, pitch,
  roll), as :func:`perception_ws.sim.dataset.render_scene` writes them;
* CARLA recordings: ``lidar_pose`` (4x4, the LiDAR in CARLA's world with y flipped to ROS axes) and
  ``lidar_in_vehicle`` (4x4, the mounting), as :mod:`perception_ws.sim.recorded_scenes` writes them.

A frame with neither (a GTA-LiDAR recording cut into scenes, a CARLA frame written before the mounting was
stored) has no placement: its reader keeps the vehicle at the fixed frame's origin and the LiDAR at the
vehicle's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_ws.errors import DatasetError
from perception_ws.sim.carla.convert import invert_pose
from perception_ws.sim.sensor.lidar import Mount
from perception_ws.sim.world.scene import EgoPose


@dataclass(frozen=True)
class Placement:
    """A frame's vehicle pose in the fixed frame and its LiDAR's pose in the vehicle frame (4x4 each)."""

    vehicle: np.ndarray
    lidar_in_vehicle: np.ndarray


def carla_placement_meta(lidar_pose: np.ndarray, lidar_in_vehicle: np.ndarray) -> dict[str, Any]:
    """The metadata entries a recorded CARLA frame stores its placement in (read by :func:`frame_placement`)."""
    return {"lidar_pose": np.asarray(lidar_pose).tolist(), "lidar_in_vehicle": np.asarray(lidar_in_vehicle).tolist()}


def frame_placement(meta: Mapping[str, Any], where: str) -> Placement | None:
    """The placement stored in a frame's ``meta`` (either form of the module doc), or None; a malformed entry
    fails in one line naming ``where`` (the frame file) and the entry.
    """
    try:
        if "pose" in meta and "mount" in meta:
            return Placement(EgoPose(**meta["pose"]).matrix(), Mount(**meta["mount"]).matrix())
        if "lidar_pose" in meta and "lidar_in_vehicle" in meta:
            lidar, mount = _matrix(meta["lidar_pose"]), _matrix(meta["lidar_in_vehicle"])
            return Placement(lidar @ invert_pose(mount), mount)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: its ego pose / mounting metadata is malformed ({exc})") from None
    return None


def _matrix(value: Any) -> np.ndarray:
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise ValueError(f"expected a finite 4x4 matrix, got shape {matrix.shape}")
    return matrix
