"""The simulated camera: a pinhole camera rigidly mounted beside the LiDAR, rendered by ray casting.

``SimCamera(CameraConfig()).render(scene, raycaster, ego_pose) -> CameraFrame``: one ray per pixel
(through the pixel's centre; with ``downscale = k`` one ray per k x k block, each block then filled
with its ray's result), cast with the same ray casters as the LiDAR, so the picture and the sweep
see the same triangles. Per pixel the first hit gives the colour (:mod:`camera_shading`), the
KITTI-3 class, the SemanticKITTI class, the instance and the depth. Glass is opaque to the camera
(a car's windows are car in the mask, a shop window is building), as annotators label images.

Geometry (reusing :mod:`perception_ws.calib.camera`): the intrinsics are a distortion-free
:class:`PinholeCamera` (KITTI's left colour camera by default, 1242 x 375); the camera sits at
``position`` in the LiDAR frame (KITTI: 0.27 m ahead, 0.08 m below) and looks along the LiDAR's +x,
turned by ``yaw/pitch/roll_deg`` (REP-103 angles about the LiDAR's z, y, x). Its frame is the
optical frame (z forward, x right, y down); ``CameraFrame.extrinsic`` maps LiDAR points into it, so
``camera.project(extrinsic.apply(xyz))`` gives a LiDAR point's pixel (see :mod:`perception_ws.fusion`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.camera_frame import CameraFrame
from perception_ws.errors import CalibrationError
from perception_ws.sim.carla.convert import BODY_TO_OPTICAL, lidar_to_camera, ros_rotation
from perception_ws.sim.sensor.camera_shading import (
    Lighting,
    base_colors,
    facing_normals,
    shade,
    sky_colors,
    to_uint8,
)
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.sensor.raycaster import Raycaster
from perception_ws.sim.world.scene import EgoPose, Scene

# KITTI's left colour camera (P2 of the raw recordings), as calib.camera.PinholeCamera.kitti_default
_KITTI = PinholeCamera.kitti_default()
_SHADOW_OFFSET = 0.02  # m: shadow rays start this far off the surface, so it does not shadow itself


@dataclass(frozen=True)
class CameraConfig:
    """Intrinsics, mounting relative to the LiDAR, and rendering settings of a simulated camera."""

    width: int = _KITTI.width
    height: int = _KITTI.height
    fx: float = _KITTI.fx
    fy: float = _KITTI.fy
    cx: float = _KITTI.cx
    cy: float = _KITTI.cy
    #: camera centre in the LiDAR frame (metres): KITTI's camera is ~0.27 m ahead of and 0.08 m below the Velodyne.
    position: tuple[float, float, float] = (0.27, 0.0, -0.08)
    #: turn of the viewing direction away from the LiDAR's +x (degrees, about the LiDAR's z, y, x axes).
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    #: nothing further than this is seen (the sky fills in).
    max_range: float = 300.0
    #: cast one ray per ``downscale`` x ``downscale`` pixel block (1: one per pixel).
    downscale: int = 1
    lighting: Lighting = field(default_factory=Lighting)
    frame_id: str = "camera"

    def __post_init__(self) -> None:
        for name in ("width", "height", "downscale"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise CalibrationError(f"sim camera: {name} must be a whole number >= 1; got {value!r}")
        numbers = {n: getattr(self, n) for n in ("fx", "fy", "cx", "cy", "yaw_deg", "pitch_deg", "roll_deg")}
        bad = [f"{n}={v!r}" for n, v in numbers.items() if not np.isfinite(v)]
        if bad:
            raise CalibrationError(f"sim camera: {', '.join(bad)}; expected finite numbers")
        if not (self.fx > 0 and self.fy > 0):
            raise CalibrationError(f"sim camera: focal lengths fx={self.fx}, fy={self.fy}; expected both > 0 pixels")
        if len(self.position) != 3 or not np.all(np.isfinite(self.position)):
            raise CalibrationError(f"sim camera: position {self.position!r}; expected 3 finite metres (x, y, z)")
        if not self.max_range > 0:
            raise CalibrationError(f"sim camera: max_range = {self.max_range}; expected > 0 metres")

    def intrinsics(self) -> PinholeCamera:
        K = np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])
        return PinholeCamera(K, self.width, self.height)

    def pose_in_lidar(self) -> np.ndarray:
        """(4, 4) pose of the camera body (x forward, y left, z up) in the LiDAR frame."""
        pose = np.eye(4)
        pose[:3, :3] = ros_rotation(self.roll_deg, self.pitch_deg, self.yaw_deg)
        pose[:3, 3] = self.position
        return pose

    def camera_to_lidar(self) -> np.ndarray:
        """(3, 3) rotation: optical frame -> LiDAR frame."""
        rotation: np.ndarray = self.pose_in_lidar()[:3, :3] @ BODY_TO_OPTICAL.T
        return rotation

    def extrinsic(self) -> Extrinsic:
        """LiDAR frame -> camera optical frame."""
        return Extrinsic(lidar_to_camera(self.pose_in_lidar()).matrix, "sim camera extrinsic")


class SimCamera:
    """A camera mounted relative to ``lidar`` (whose mount and the ego pose place it in the world)."""

    def __init__(self, config: CameraConfig | None = None, lidar: Lidar | None = None) -> None:
        self.config = config or CameraConfig()
        if not isinstance(self.config, CameraConfig):
            raise CalibrationError(f"sim camera: config is a {type(self.config).__name__}; expected a CameraConfig")
        self.lidar = lidar or Lidar()
        self.camera = self.config.intrinsics()
        self.extrinsic = self.config.extrinsic()

    @cached_property
    def _rays(self) -> tuple[np.ndarray, int, int]:
        """Unit ray directions (n, 3), LiDAR frame, through the centres of the sampled pixels; the grid's rows, cols."""
        c, k = self.config, self.config.downscale
        rows, cols = -(-c.height // k), -(-c.width // k)
        # the centre of each k x k block, in pixel coordinates (pixel (col, row) is centred at u = col)
        u = np.minimum(np.arange(cols) * k + (k - 1) / 2.0, c.width - 1)
        v = np.minimum(np.arange(rows) * k + (k - 1) / 2.0, c.height - 1)
        uu, vv = np.meshgrid(u, v)
        pix = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], axis=1)
        d_cam = pix @ np.linalg.inv(self.camera.K).T
        d_cam /= np.linalg.norm(d_cam, axis=1, keepdims=True)
        return d_cam @ c.camera_to_lidar().T, rows, cols

    def render(
        self,
        scene: Scene,
        raycaster: Raycaster | None = None,
        pose: EgoPose | None = None,
        *,
        name: str = "",
        stamp_ns: int | None = None,
    ) -> CameraFrame:
        """The picture of ``scene`` from ``pose`` (default: the scene's first ego pose); deterministic."""
        c = self.config
        pose = pose or scene.ego_poses[0]
        caster = raycaster or make_raycaster(scene.soup)
        soup = scene.soup
        rot, trans = self.lidar.pose_in_world(pose)
        dirs_l, rows, cols = self._rays
        dirs = (dirs_l @ rot.T).astype(np.float32)
        origin = (rot @ np.asarray(c.position, dtype=np.float64) + trans).astype(np.float32)
        origins = np.broadcast_to(origin, dirs.shape)
        hits = caster.cast(origins, dirs, float(c.max_range))
        tri = np.where(hits.t <= c.max_range, hits.triangle, -1)
        hit = np.flatnonzero(tri >= 0)
        tris, t = tri[hit], hits.t[hit].astype(np.float32)
        rgb = sky_colors(dirs)
        normals = facing_normals(soup.normals[tris], dirs[hit])
        lit = self._sunlit(caster, origin + dirs[hit] * t[:, None], normals)
        rgb[hit] = shade(base_colors(soup, tris), normals, lit, t, c.lighting)
        depth = np.full(len(dirs), np.inf, dtype=np.float32)
        # depth along the optical axis: the ray's unit direction has optical z = its LiDAR-frame x
        depth[hit] = t * (dirs_l[hit] @ c.camera_to_lidar()[:, 2]).astype(np.float32)

        def per_pixel(values: np.ndarray, fill: float | int, dtype: type) -> np.ndarray:
            out: np.ndarray = np.full(len(dirs), fill, dtype=dtype)
            out[hit] = values
            return self._upsample(out.reshape(rows, cols))

        return CameraFrame(
            rgb=self._upsample(to_uint8(rgb).reshape(rows, cols, 3)),
            label=per_pixel(soup.kitti3[tris], 0, np.uint8),
            semantic=per_pixel(soup.semantic[tris], 0, np.uint8),
            instance=per_pixel(soup.instance[tris], 0, np.uint32),
            camera=self.camera,
            extrinsic=self.extrinsic,
            depth=self._upsample(depth.reshape(rows, cols)),
            name=name or f"sim-{scene.seed}",
            frame_id=c.frame_id,
            stamp_ns=stamp_ns,
        )

    def _sunlit(self, caster: Raycaster, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """(N,) float32: 1 where the sun reaches the surface point, 0 in shadow or on faces turned from the sun."""
        light = self.config.lighting
        sun = light.sun.astype(np.float32)
        facing = normals @ sun > 0
        lit = facing.astype(np.float32)
        if not light.shadows:
            return lit
        test = np.flatnonzero(facing)
        start = (points[test] + normals[test] * _SHADOW_OFFSET).astype(np.float32)
        blocked = caster.cast(start, np.broadcast_to(sun, start.shape), float(self.config.max_range)).triangle >= 0
        lit[test[blocked]] = 0.0
        return lit

    def _upsample(self, grid: np.ndarray) -> np.ndarray:
        k = self.config.downscale
        if k > 1:
            grid = np.repeat(np.repeat(grid, k, axis=0), k, axis=1)
        return np.ascontiguousarray(grid[: self.config.height, : self.config.width])
