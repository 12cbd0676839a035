"""Regenerate docs/images/sim_camera.png: the simulated camera's picture, its mask, and the LiDAR on it.

    .venv/bin/python docs/images/make_sim_camera.py [SEED]

One street (default seed 3), the LiDAR sweep and the camera picture from its first ego pose; the third
panel is :func:`perception_ws.fusion.overlay_image` of the sweep (points in SemanticKITTI colours).
Reduced to a 256-colour palette to stay small in the repository.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import matplotlib.pyplot as plt
from PIL import Image

from perception_ws.fusion import overlay_image
from perception_ws.io.atomic import atomic_file
from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim import Lidar, generate_scene, make_raycaster
from perception_ws.sim.sensor.camera import SimCamera

OUT = Path(__file__).resolve().parent / "sim_camera.png"


def main(seed: int) -> None:
    scene = generate_scene(seed)
    caster = make_raycaster(scene.soup, "open3d")
    lidar = Lidar()
    scan = lidar.scan(scene, caster, seed=1)
    frame = SimCamera(lidar=lidar).render(scene, caster)
    mask = SEMANTIC_KITTI.colorize(frame.semantic.astype(int))
    # points coloured by their SemanticKITTI class, the same colours as the mask
    points = overlay_image(
        frame.rgb, scan.xyz, scan.semantic, [], frame.camera, frame.extrinsic, class_set=SEMANTIC_KITTI
    )
    panels = [
        (
            frame.rgb,
            f"simulated camera, scene {seed}: 1242 x 375, KITTI P2 intrinsics, one ray per pixel, sun + shadows",
        ),
        (mask, "semantic mask (SemanticKITTI classes per pixel; KITTI-3 ids and instance ids are stored alike)"),
        (points, "LiDAR sweep (HDL-64E, same ego pose) projected with the frame's K and extrinsic, class colours"),
    ]
    h, w = frame.rgb.shape[:2]
    plt.switch_backend("Agg")
    fig, axes = plt.subplots(len(panels), 1, figsize=(12.42, 3 * (h / w * 12.42 + 0.3)), dpi=100)
    for ax, (image, title) in zip(axes, panels, strict=True):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=10, loc="left")
        ax.axis("off")
    fig.tight_layout(pad=0.4)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    picture = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").quantize(256)
    with atomic_file(OUT) as handle:
        picture.save(handle, format="PNG", optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
