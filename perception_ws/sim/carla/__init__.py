"""CARLA backend: labelled LiDAR sweeps and camera images from a running CARLA server (docs/carla.md).

    from perception_ws.sim.carla import CarlaConfig, CarlaSession

    with CarlaSession(CarlaConfig(port=2000)) as session:      # synchronous mode, ego + sensors
        for frame in session.frames(10):                       # CarlaFrame
            frame.scan                                         # Scan: labels, semantic, instances, boxes

Modules, one job each: config.py (what to spawn), client.py (the server session; the only module
that imports ``carla``, lazily), frame.py (a tick's buffers -> Scan and frame), convert.py (binary
layouts and CARLA's left-handed frames -> numpy and REP-103), tags.py (CARLA tags -> project classes).
"""

from perception_ws.sim.carla.client import CarlaSession, carla_frames, connect, import_carla
from perception_ws.sim.carla.config import CameraSettings, CarlaConfig, LidarSettings, Pose
from perception_ws.sim.carla.frame import ActorState, CarlaFrame, plain_scan, semantic_scan
from perception_ws.sim.carla.tags import CarlaTag, kitti3_from_tags, semantic_from_tags

__all__ = [
    "ActorState",
    "CameraSettings",
    "CarlaConfig",
    "CarlaFrame",
    "CarlaSession",
    "CarlaTag",
    "LidarSettings",
    "Pose",
    "carla_frames",
    "connect",
    "import_carla",
    "kitti3_from_tags",
    "plain_scan",
    "semantic_from_tags",
    "semantic_scan",
]
