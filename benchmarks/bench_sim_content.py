"""What the simulated streets show a LiDAR: objects per scene and returns per sweep, per kind of object.

    .venv/bin/python benchmarks/bench_sim_content.py [--scenes N] [--frames F] [--content v1 v2] [--seed S]

For each content preset (SceneConfig presets, ``perception sim generate --scene-content``), the scenes
``perception sim generate --seed S`` would build (the same scene seeds) are generated and swept by the
HDL-64E at 2048 columns from their first F ego poses. Each ray's first hit (after glass is passed, before
dropout and noise: the returns a sweep could keep) is traced back to the part it hit, and counted under
that part's kind (``Part.kind``: "tree", "bollard", "parked bicycle", "person with umbrella" ...; parts
with no kind under their SemanticKITTI class). Printed per preset, one row per kind:

- ``parts/scene``: parts of that kind per scene (a countable object is one part per actor; a tree, a sign
  post, a parking meter or a traffic light is two parts, pole or trunk and the rest);
- ``returns/sweep`` and ``<=25 m``: mean returns per sweep, all and within 25 m of the sensor (where the
  model sees a person-sized thing as more than a few points);
- ``semantic`` and ``kitti3``: the class ids the kind's returns carry (most common).

The seconds per scene (generation, ray-caster build, sweeps) close each table.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict

import numpy as np

from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.sim.dataset import scene_seed
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.world.generator import generate_scene
from perception_ws.sim.world.scene import Scene
from perception_ws.sim.world.scene_config import SCENE_CONTENT, scene_config_for

NEAR_M = 25.0


def part_names(scene: Scene) -> list[str]:
    """The audit name of every meshed part: its kind, or its SemanticKITTI class when it has none."""
    return [p.kind or SEMANTIC_KITTI.names[p.semantic] for p in scene.meshed_parts()]


def audit(content: str, scenes: int, frames: int, seed: int) -> None:
    lidar = Lidar("hdl64e", columns=2048)
    parts: Counter[str] = Counter()
    returns: Counter[str] = Counter()
    near: Counter[str] = Counter()
    classes: dict[str, Counter[tuple[int, int]]] = defaultdict(Counter)
    seconds = 0.0
    for index in range(scenes):
        start = time.perf_counter()
        scene = generate_scene(scene_seed(seed, index), scene_config_for(content, ego_poses=max(frames, 1)))
        names = part_names(scene)
        parts.update(p.kind or SEMANTIC_KITTI.names[p.semantic] for p in scene.parts if len(p.mesh))
        parts.update(a.parts[0].kind for a in scene.actors)  # one per object (a stroller counts with its pusher)
        soup = scene.soup
        caster = make_raycaster(soup, "auto")
        part_of = scene.part_of_triangles()
        for pose in scene.ego_poses[:frames]:
            rot, trans = lidar.pose_in_world(pose)
            hits = lidar.cast(soup, caster, rot, trans, np.random.default_rng(0))
            hit = np.flatnonzero((hits.triangle >= 0) & (hits.t <= hits.max_range))
            tri = hits.triangle[hit]
            kind_of_hit = part_of[tri]
            close = hits.t[hit] <= NEAR_M
            for k, n in zip(*np.unique(kind_of_hit, return_counts=True), strict=True):
                returns[names[k]] += int(n)
            for k, n in zip(*np.unique(kind_of_hit[close], return_counts=True), strict=True):
                near[names[k]] += int(n)
            triples = np.stack([kind_of_hit, soup.semantic[tri], soup.kitti3[tri]], 1)
            for (k, sem, k3), n in zip(*np.unique(triples, axis=0, return_counts=True), strict=True):
                classes[names[k]][(int(sem), int(k3))] += int(n)
        seconds += time.perf_counter() - start
    sweeps = scenes * frames
    print(f"\ncontent {content}: {scenes} scenes x {frames} sweeps (HDL-64E, 2048 columns, seed {seed})")
    print(f"{'kind':32s} {'parts/scene':>11s} {'returns/sweep':>13s} {'<=25 m':>8s}  semantic / kitti3")
    for name in sorted(set(parts) | set(returns), key=lambda n: -returns[n]):
        top = classes[name].most_common(1)
        label = f"{SEMANTIC_KITTI.names[top[0][0][0]]} / {KITTI3.names[top[0][0][1]]}" if top else "-"
        counts = f"{parts[name] / scenes:11.1f} {returns[name] / sweeps:13.0f} {near[name] / sweeps:8.0f}"
        print(f"{name:32s} {counts}  {label}")
    print(f"{seconds / scenes:.2f} s per scene (generate, build the ray caster, {frames} casts)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--content", nargs="+", default=list(SCENE_CONTENT), choices=list(SCENE_CONTENT))
    args = parser.parse_args()
    for content in args.content:
        audit(content, args.scenes, args.frames, args.seed)


if __name__ == "__main__":
    main()
