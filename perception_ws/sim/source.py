"""The simulator's one source interface: every backend yields the same :class:`SimFrame`.

Backends, one module each: :mod:`perception_ws.sim.stream` (``builtin``: the procedural streets),
:mod:`perception_ws.sim.carla_source` (``carla``: a CARLA server, ticked synchronously) and
:mod:`perception_ws.sim.dataset_source` (``dataset``: a recorded simulated dataset replayed, such as
GTA-LiDAR ``.npy`` folders or ``perception sim generate`` output); :mod:`perception_ws.sim.sources`
picks one from :class:`~perception_ws.sim.stream_config.SimConfig` ``backend``.

A frame holds the sweep as :data:`CLOUD_DTYPE` points (with the ground-truth ``label`` and ``instance``
fields), the ground-truth boxes, the camera picture with its intrinsics and extrinsics
(:class:`~perception_ws.camera_frame.CameraFrame`) where the source has one, the vehicle's pose in the
fixed frame and the source's own time. Nothing here imports the simulator, ROS or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from perception_ws.boxes import Box3D
from perception_ws.calib.tf_tree import FrameTransform, pose_parts
from perception_ws.camera_frame import CameraFrame
from perception_ws.scan import Scan

#: the fields of a published simulated point (label and instance as the perception node writes them).
CLOUD_DTYPE = np.dtype(
    [
        ("x", np.float32),
        ("y", np.float32),
        ("z", np.float32),
        ("intensity", np.float32),
        ("ring", np.uint16),
        ("label", np.uint16),
        ("instance", np.uint32),
    ]
)


@dataclass(eq=False)
class SimFrame:
    """One frame of any source; see the module doc."""

    index: int
    #: the source's time of this frame (s): the procedural scene's time (it wraps every scene.loop_s),
    #: CARLA's simulation time since the first frame, a recording's time since its first frame.
    scene_time_s: float
    points: np.ndarray  # (N,) CLOUD_DTYPE, LiDAR frame
    boxes: list[Box3D]  # ground truth, LiDAR frame
    camera: CameraFrame | None
    render_ms: float
    vehicle: FrameTransform  # base_link in odom at this frame (the ego car's pose)


class FrameSource(Protocol):
    """What the simulator node (and ``perception sim generate --backend``) reads frames from."""

    @property
    def period_s(self) -> float:
        """Wall seconds between frames."""
        ...

    @property
    def length(self) -> int | None:
        """Frames the source has (the node stops after them); None: without end."""
        ...

    def next_frame(self, index: int, elapsed_s: float) -> SimFrame:
        """Frame ``index``, asked for ``elapsed_s`` wall seconds after the start."""
        ...

    def frame_stamp_ns(self, frame: SimFrame, wall_ns: int, start_ns: int) -> int:
        """The stamp of ``frame``: from the source's own clock (``clock.mode`` sim) or the wall time."""
        ...

    def static_transforms(self) -> list[FrameTransform]:
        """The sensor mounting: vehicle -> LiDAR and, with a camera, LiDAR -> camera optical frame."""
        ...

    def describe(self) -> str:
        """One line for the start-up log: what is simulated, how."""
        ...

    def close(self) -> None:
        """Give back what the source holds (a server session, open files)."""
        ...


def source_stamp_ns(mode: Literal["wall", "sim"], source_time_s: float, wall_ns: int, start_ns: int) -> int:
    """``start`` + the source's own time (``sim``), or the wall time the frame is ready (``wall``)."""
    if mode == "sim":
        return start_ns + round(source_time_s * 1e9)
    return wall_ns


def cloud_points(scan: Scan) -> np.ndarray:
    """A sweep's points as :data:`CLOUD_DTYPE`: fields the points have are copied; ``label`` and ``instance``
    come from the scan's ground truth where the points lack them; what no source gave is 0.
    """
    out = np.zeros(len(scan.points), dtype=CLOUD_DTYPE)
    have = scan.points.dtype.names or ()
    fallback = {"label": scan.labels, "instance": scan.instances}
    for name in CLOUD_DTYPE.names or ():
        if name in have:
            out[name] = scan.points[name]
        elif fallback.get(name) is not None:
            out[name] = fallback[name]
    return out


def transform(parent: str, child: str, pose: np.ndarray) -> FrameTransform:
    """The 4x4 ``pose`` of ``child`` in ``parent`` as a /tf transform."""
    return FrameTransform(parent, child, *pose_parts(np.asarray(pose, dtype=np.float64)))


def mount_transforms(
    base: str, lidar: str, camera: str, lidar_in_base: np.ndarray, lidar_to_camera: np.ndarray | None
) -> list[FrameTransform]:
    """Vehicle -> LiDAR and, with ``lidar_to_camera`` (LiDAR -> optical frame), LiDAR -> camera."""
    out = [transform(base, lidar, lidar_in_base)]
    if lidar_to_camera is not None:
        out.append(transform(lidar, camera, np.linalg.inv(lidar_to_camera)))
    return out
