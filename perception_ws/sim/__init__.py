"""Simulated LiDAR scans of procedural streets, with labels for free (docs/algorithms.md §5-6; docs/simulator.md).

The public API, one module each::

    generate_scene(seed, SceneConfig())               -> Scene             world/generator.py
    make_raycaster(scene.soup, "open3d" | "torch")    -> Raycaster         sensor/raycast.py
    Lidar("hdl64e", columns=2048, mount=Mount(...),                        sensor/lidar.py
          noise=RangeNoise(0.02), intensity=ReflectanceModel(),           sensor/noise.py, sensor/intensity.py
          dropout=(PhysicalDropout(),)).scan(scene, raycaster, pose, seed) -> Scan

The sub-packages, each importing only those before it: ``world`` (scenes: labelled triangle meshes
built from primitives into assets), ``carla`` (CARLA frames and frame conventions), ``sensor`` (the
LiDAR, the camera, ray casting), ``motion`` (traffic, moving scenes, sequences), ``realism``
(simulated against real scans). At the top: what puts them together, :mod:`dataset` (``perception sim generate``) and
:mod:`stream` (the simulator node's frames, configured by :mod:`stream_config`).
"""

from perception_ws.sim.sensor.intensity import ReflectanceModel
from perception_ws.sim.sensor.lidar import Lidar, Mount
from perception_ws.sim.sensor.noise import NoDropout, PhysicalDropout, PixelDropout, RangeNoise
from perception_ws.sim.sensor.raycast import available_backends, make_raycaster
from perception_ws.sim.world.generator import SceneConfig, generate_scene
from perception_ws.sim.world.scene import EgoPose, Scene
from perception_ws.sweep_layout import POINT_DTYPE

__all__ = [
    "POINT_DTYPE",
    "EgoPose",
    "Lidar",
    "Mount",
    "NoDropout",
    "PhysicalDropout",
    "PixelDropout",
    "RangeNoise",
    "ReflectanceModel",
    "Scene",
    "SceneConfig",
    "available_backends",
    "generate_scene",
    "make_raycaster",
]
