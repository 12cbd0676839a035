"""Simulated HDL-64E sweeps per second (64 x 2048 rays, with labels), per ray-casting backend.

    .venv/bin/python benchmarks/bench_sim.py [--repeat N] [--seed S] [--threads T] [--scene-content v1|v2]
                                             [--backends open3d,torch,raster]

One street scene (the default :class:`SceneConfig`) is generated, then each available backend
(Open3D on the CPU; torch on the CPU; torch on CUDA when a GPU is there) is built over it and
timed, median of N runs, on two things:

- ``cast``: the 131 072 rays of one sweep alone — the floor any full sweep on that backend sits on;
- ``sweep``: :meth:`Lidar.scan` end to end with the sensor ``perception sim generate`` uses by default
  (:func:`make_lidar`: physical dropout plus the measured shadow of the recording car and per-row
  dropout, reflectance model) — casting, glass re-casts, labels, dropout, range noise, intensity,
  points and boxes in the sensor frame, as a :class:`Scan`.

The goal it is compared against: 50 sweeps/s on 2 CPU cores (the named baseline row). The scene's
generation time is printed too (once per scene; a scene serves several sweeps). Each backend runs
in a child process of its own, so that torch's and Open3D's worker threads never compete.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from perception_ws.sim.dataset import make_lidar
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.sensor.raycast_raster import RasterCaster
from perception_ws.sim.sensor.raycaster import Raycaster
from perception_ws.sim.world.generator import generate_scene
from perception_ws.sim.world.scene import Scene
from perception_ws.sim.world.scene_config import DEFAULT_SCENE_CONTENT, SCENE_CONTENT, scene_config_for

GOAL_SWEEPS_PER_S = 50.0
GOAL_GPU_SWEEPS_PER_S = 1000.0
BATCH = 64  # sweeps per batched GPU cast


def median_s(run: Callable[[], object], repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(backend: str, device: str, seed: int, repeat: int, threads: int, content: str) -> str:
    """One table row: build, cast and sweep times of ``backend`` on ``device``."""
    if backend == "torch" and threads:
        import torch

        torch.set_num_threads(threads)
    scene = generate_scene(seed, scene_config_for(content))
    lidar = make_lidar("hdl64e", 2048, "physical", "model")
    rot, trans = lidar.pose_in_world(scene.ego_poses[0])
    rot32 = rot.T.astype(np.float32)
    rays_d = lidar.pattern.directions.reshape(-1, 3) @ rot32
    rays_o = lidar.pattern.pixel_origins @ rot32 + trans.astype(np.float32)
    start = time.perf_counter()
    caster = make_raycaster(scene.soup, backend, device=None if backend == "open3d" else device)
    build_s = time.perf_counter() - start
    packed = np.concatenate([rays_o, rays_d], axis=1)  # the (N, 6) layout Lidar.scan casts (Open3D's, uncopied)
    cast_s = median_s(lambda: caster.cast(packed[:, :3], packed[:, 3:], 120.0), repeat)
    sweep_s = median_s(lambda: lidar.scan(scene, caster, seed=1), repeat)
    rate = 1.0 / sweep_s
    row = (
        f"{backend:8s} {device:6s} {build_s:8.2f} {1e3 * cast_s:8.1f} {1e3 * sweep_s:9.1f} {rate:9.1f} "
        f"{rate / GOAL_SWEEPS_PER_S:7.2f}x"
    )
    if device != "cuda":
        return row + "\n" + stages(backend, device, lidar, scene, caster, repeat)
    # a GPU is fed best with many sweeps at once: BATCH sweeps (the sensor turned in steps) in one cast;
    # casting only (labels come with the hits), against the GPU goal
    turns = [np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]], np.float32)
             for a in np.linspace(0, 2 * np.pi, BATCH, endpoint=False)]  # fmt: skip
    many_d = np.concatenate([rays_d @ t.T for t in turns])
    many_o = np.concatenate([rays_o] * BATCH)
    batch_s = median_s(lambda: caster.cast(many_o, many_d, 120.0), repeat)
    batch_rate = BATCH / batch_s
    return row + (
        f"\n{backend:8s} {'cuda':6s} {'':>8s} {1e3 * batch_s:8.1f} {'cast x' + str(BATCH):>9s} {batch_rate:9.1f} "
        f"{batch_rate / GOAL_GPU_SWEEPS_PER_S:7.2f}x (of the GPU goal {GOAL_GPU_SWEEPS_PER_S:.0f}/s)"
    )


def stages(backend: str, device: str, lidar: Lidar, scene: Scene, caster: Raycaster, repeat: int) -> str:
    """A sweep's time by stage (medians, so they need not add up to the sweep's): the rays, their cast and the
    glass re-casts (Lidar.cast); dropout, noise, intensity and the points (Lidar.points); the rest of the
    sweep (boxes, the Scan) is what is left of the sweep's median."""
    rot, trans = lidar.pose_in_world(scene.ego_poses[0])
    hits = lidar.cast(scene.soup, caster, rot, trans, np.random.default_rng(1))
    cast_s = median_s(lambda: lidar.cast(scene.soup, caster, rot, trans, np.random.default_rng(1)), repeat)
    points_s = median_s(lambda: lidar.points(hits, np.random.default_rng(1)), repeat)
    return (
        f"{backend:8s} {device:6s} {'stages':>8s}: rays + cast + glass {1e3 * cast_s:.1f} ms, "
        f"dropout + noise + intensity + points {1e3 * points_s:.1f} ms"
    )


RASTER_BATCHES = {"cuda": (1, 16, 64, 256), "cpu": (1, 4)}  # sweeps per raster call


def measure_raster(device: str, seed: int, repeat: int, threads: int, content: str) -> str:
    """Rows of the raster backend (perception_ws.sim.sensor.raycast_raster, gpu_sweeps): B sweeps per call.

    ``cast xB``: first hits (distance, triangle) of B sweeps; ``sweep xB``: the batched labelled sweeps
    training consumes (glass, dropout, range noise, intensity, labels, x y z), all left on the device.
    Also a parity line (raster against Open3D on a CPU, the torch BVH on a GPU, one sweep) and the
    candidate pairs per sweep, which set the memory a batch needs.
    """
    import torch

    from perception_ws.sim.sensor.gpu_sweeps import SweepRenderer
    from perception_ws.sim.world.mesh import rotation_z

    if threads:
        torch.set_num_threads(threads)
    scene = generate_scene(seed, scene_config_for(content))
    lidar = make_lidar("hdl64e", 2048, "physical", "model")
    start = time.perf_counter()
    renderer = SweepRenderer(scene, lidar, device)
    build_s = time.perf_counter() - start
    caster, pattern = renderer.caster, lidar.pattern

    def synced(run: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            out = run()
            if device == "cuda":
                torch.cuda.synchronize()  # the timer must see the GPU's work done, not just queued
            return out

        return call

    rows = [_raster_parity(scene, lidar, caster, device)]
    for batch in RASTER_BATCHES[device]:
        # B poses: the scene's ego poses, each turned a little further, so no two sweeps are alike
        poses = [lidar.pose_in_world(scene.ego_poses[b % len(scene.ego_poses)]) for b in range(batch)]
        turns = [rotation_z(2 * np.pi * b / batch) for b in range(batch)]
        rot = torch.from_numpy(np.stack([t @ r for (r, _), t in zip(poses, turns, strict=True)]).astype(np.float32))
        trans = torch.from_numpy(np.stack([t for _, t in poses]).astype(np.float32))
        rot, trans = rot.to(device), trans.to(device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        pairs = caster.first_hits(pattern, rot, trans, 120.0, opaque=True).pairs
        cast = partial(caster.first_hits, pattern, rot, trans, 120.0, opaque=True)
        cast_s = median_s(synced(cast), repeat)
        sweep_s = median_s(synced(partial(renderer.render_at, rot, trans, seed=1)), repeat)
        memory = f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else ""
        for what, took in (("cast", cast_s), ("sweep", sweep_s)):
            rate = batch / took
            rows.append(
                f"{'raster':8s} {device:6s} {build_s:8.2f} {1e3 * took:8.1f} {what + ' x' + str(batch):>9s} "
                f"{rate:9.1f} {rate / GOAL_GPU_SWEEPS_PER_S:7.2f}x (of the GPU goal {GOAL_GPU_SWEEPS_PER_S:.0f}/s)"
            )
        rows.append(f"{'raster':8s} {device:6s} pairs per sweep {pairs / batch / 1e6:.2f} M (B={batch}{memory})")
    return "\n".join(rows)


def _raster_parity(scene: Scene, lidar: Lidar, caster: RasterCaster, device: str) -> str:
    """One sweep, raster against a tracing backend: the share of pixels with the same triangle and hit."""
    from perception_ws.sim.sensor.raycast import available_backends

    backend = "open3d" if device == "cpu" and "open3d" in available_backends() else "torch"
    rot, trans = lidar.pose_in_world(scene.ego_poses[0])
    rot32 = rot.T.astype(np.float32)
    rays_d = lidar.pattern.directions.reshape(-1, 3) @ rot32
    rays_o = lidar.pattern.pixel_origins @ rot32 + trans.astype(np.float32)
    tracer = make_raycaster(scene.soup, backend, device=None if backend == "open3d" else device)
    ref = tracer.cast(rays_o, rays_d, 120.0)
    hits = caster.first_hits(lidar.pattern, rot[None], trans[None], 120.0)
    tri, t = hits.triangle[0].cpu().numpy(), hits.t[0].cpu().numpy()
    both = (tri >= 0) & (ref.triangle >= 0)
    return (
        f"{'raster':8s} {device:6s} parity with {backend} ({device if backend == 'torch' else 'cpu'}), one sweep: "
        f"{100 * (tri == ref.triangle).mean():.3f} % same triangle, "
        f"{100 * ((tri >= 0) == (ref.triangle >= 0)).mean():.3f} % same hit/miss, "
        f"max |range difference| {1e3 * np.abs(t[both] - ref.t[both]).max():.2f} mm"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--scene-content", default=DEFAULT_SCENE_CONTENT, choices=list(SCENE_CONTENT), help="street content preset"
    )
    parser.add_argument("--backends", default="", help="comma-separated backends to time (default: all available)")
    parser.add_argument("--only", default="", help=argparse.SUPPRESS)  # backend:device, run in a child process
    args = parser.parse_args()
    if args.only:
        backend, device = args.only.split(":")
        repeat = max(2, args.repeat // 5) if (backend, device) in (("torch", "cpu"), ("raster", "cpu")) else args.repeat
        run = measure_raster if backend == "raster" else partial(measure, backend)
        print(run(device, args.seed, repeat, args.threads, args.scene_content))
        return

    start = time.perf_counter()
    scene = generate_scene(args.seed, scene_config_for(args.scene_content))
    soup = scene.soup
    gen_s = time.perf_counter() - start
    lidar = make_lidar("hdl64e", 2048, "physical", "model")
    what = f"{len(soup)} triangles, {len(scene.actors)} objects"
    print(f"scene {args.seed} ({args.scene_content} content): {what}, generated in {gen_s:.2f} s")
    rows, cols = lidar.pattern.rows, lidar.pattern.columns
    print(f"sweep: {lidar.model.name} {rows} x {cols} = {rows * cols} rays")
    print(f"machine: {os.cpu_count()} CPU cores visible")
    setups = [("open3d", "cpu")] if importlib.util.find_spec("open3d") else []
    if importlib.util.find_spec("torch"):
        setups.append(("torch", "cpu"))
        cuda = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True, text=True
        )
        if cuda.stdout.strip() == "True":
            setups.append(("torch", "cuda"))
        setups += [("raster", device) for _, device in setups if _ == "torch"]  # the raster sweeps (torch)
    header = "backend  device  build s  cast ms  sweep ms  sweeps/s  vs goal"
    print(header)
    print("-" * len(header))
    goal_ms = 1e3 / GOAL_SWEEPS_PER_S
    print(f"{'goal':8s} {'2 CPU':6s} {'':>8s} {'':>8s} {goal_ms:9.1f} {GOAL_SWEEPS_PER_S:9.1f} {'1.00x':>8s}")
    if args.backends:
        setups = [(b, d) for b, d in setups if b in args.backends.split(",")]
    for backend, device in setups:
        # each backend in its own process: torch's and Open3D's thread pools must not compete
        child = [sys.executable, __file__, "--only", f"{backend}:{device}", "--repeat", str(args.repeat)]
        child += ["--seed", str(args.seed), "--threads", str(args.threads), "--scene-content", args.scene_content]
        out = subprocess.run(child, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith(backend)]
        failed = f"{backend:8s} {device:6s} failed: {out.stderr[-300:]}"
        print("\n".join(lines) if out.returncode == 0 and lines else failed)


if __name__ == "__main__":
    main()
