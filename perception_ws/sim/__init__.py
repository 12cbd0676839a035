"""Simulated LiDAR scans of procedural streets, with labels for free (docs/algorithms.md §5-6; docs/simulator.md).

The public API, one module each::

    generate_scene(seed, SceneConfig())               -> Scene             generator.py
    make_raycaster(scene.soup, "open3d" | "torch")    -> Raycaster         raycast.py
    Lidar("hdl64e", columns=2048, mount=Mount(...),                        lidar.py
          noise=RangeNoise(0.02), intensity=ReflectanceModel(),           noise.py, intensity.py
          dropout=(PhysicalDropout(),)).scan(scene, raycaster, pose, seed) -> Scan

Scenes are labelled triangle meshes (scene.py) built from primitives (mesh.py) into assets:
vehicles.py, people.py, nature.py, street.py, buildings.py, ground.py, laid out by layout.py.
"""

from perception_ws.sim.generator import SceneConfig, generate_scene
from perception_ws.sim.intensity import ReflectanceModel
from perception_ws.sim.lidar import POINT_DTYPE, Lidar, Mount
from perception_ws.sim.noise import NoDropout, PhysicalDropout, PixelDropout, RangeNoise
from perception_ws.sim.raycast import available_backends, make_raycaster
from perception_ws.sim.scene import EgoPose, Scene

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
