"""Simulated scenes generated ahead of the GPU by worker processes, handed out in order (no torch here).

Scene ``k`` of a run seeded ``seed`` is ``generate_scene(scene_seed(seed, k), config)``: the same scene
whatever process builds it. The workers return only what rendering needs (the triangle soup and the ego
poses, about 6 MB for a default street), so the GPU process never builds scene geometry itself.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from perception_ws.sim.dataset import scene_seed
from perception_ws.sim.world.generator import SceneConfig, generate_scene
from perception_ws.sim.world.scene import EgoPose, TriangleSoup


@dataclass(frozen=True)
class SceneData:
    """What training needs of one generated scene: its triangles and sensor poses."""

    index: int
    soup: TriangleSoup
    poses: list[EgoPose]


def build_scene(seed: int, index: int, config: SceneConfig) -> SceneData:
    """Scene ``index`` of the run seeded ``seed`` (runs in a worker process)."""
    scene = generate_scene(scene_seed(seed, index), config)
    return SceneData(index, scene.soup, list(scene.ego_poses))


def scenes_in_order(
    seed: int, config: SceneConfig, indices: Iterable[int], workers: int
) -> Generator[SceneData, None, None]:
    """The scenes of ``indices``, in that order; with ``workers`` > 0 up to ``2 * workers`` are built ahead
    by spawned processes (the pool ends when the iterator is closed or exhausted).
    """
    if workers == 0:
        for index in indices:
            yield build_scene(seed, index, config)
        return
    todo = iter(indices)
    pending: deque[Future[SceneData]] = deque()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            for index in todo:
                pending.append(pool.submit(build_scene, seed, index, config))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                scene = pending.popleft().result()
                following = next(todo, None)
                if following is not None:
                    pending.append(pool.submit(build_scene, seed, following, config))
                yield scene
        finally:
            for future in pending:  # a stopped run does not wait for scenes it will never use
                future.cancel()
