"""Simulated HDL-64E sweeps per second (64 x 2048 rays, with labels), per ray-casting backend.

    .venv/bin/python benchmarks/bench_sim.py [--repeat N] [--seed S] [--threads T]

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

import numpy as np

from perception_ws.sim.dataset import make_lidar
from perception_ws.sim.generator import generate_scene
from perception_ws.sim.raycast import make_raycaster

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


def measure(backend: str, device: str, seed: int, repeat: int, threads: int) -> str:
    """One table row: build, cast and sweep times of ``backend`` on ``device``."""
    if backend == "torch" and threads:
        import torch

        torch.set_num_threads(threads)
    scene = generate_scene(seed)
    lidar = make_lidar("hdl64e", 2048, "physical", "model")
    rot, trans = lidar.pose_in_world(scene.ego_poses[0])
    rot32 = rot.T.astype(np.float32)
    rays_d = lidar.pattern.directions.reshape(-1, 3) @ rot32
    rays_o = lidar.pattern.pixel_origins @ rot32 + trans.astype(np.float32)
    start = time.perf_counter()
    caster = make_raycaster(scene.soup, backend, device=None if backend == "open3d" else device)
    build_s = time.perf_counter() - start
    cast_s = median_s(lambda: caster.cast(rays_o, rays_d, 120.0), repeat)
    sweep_s = median_s(lambda: lidar.scan(scene, caster, seed=1), repeat)
    rate = 1.0 / sweep_s
    row = (
        f"{backend:8s} {device:6s} {build_s:8.2f} {1e3 * cast_s:8.1f} {1e3 * sweep_s:9.1f} {rate:9.1f} "
        f"{rate / GOAL_SWEEPS_PER_S:7.2f}x"
    )
    if device != "cuda":
        return row
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--only", default="", help=argparse.SUPPRESS)  # backend:device, run in a child process
    args = parser.parse_args()
    if args.only:
        backend, device = args.only.split(":")
        repeat = max(2, args.repeat // 5) if (backend, device) == ("torch", "cpu") else args.repeat
        print(measure(backend, device, args.seed, repeat, args.threads))
        return

    start = time.perf_counter()
    scene = generate_scene(args.seed)
    soup = scene.soup
    gen_s = time.perf_counter() - start
    lidar = make_lidar("hdl64e", 2048, "physical", "model")
    print(f"scene {args.seed}: {len(soup)} triangles, {len(scene.actors)} objects, generated in {gen_s:.2f} s")
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
    header = "backend  device  build s  cast ms  sweep ms  sweeps/s  vs goal"
    print(header)
    print("-" * len(header))
    goal_ms = 1e3 / GOAL_SWEEPS_PER_S
    print(f"{'goal':8s} {'2 CPU':6s} {'':>8s} {'':>8s} {goal_ms:9.1f} {GOAL_SWEEPS_PER_S:9.1f} {'1.00x':>8s}")
    for backend, device in setups:
        # each backend in its own process: torch's and Open3D's thread pools must not compete
        child = [sys.executable, __file__, "--only", f"{backend}:{device}", "--repeat", str(args.repeat)]
        child += ["--seed", str(args.seed), "--threads", str(args.threads)]
        out = subprocess.run(child, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith(backend)]
        failed = f"{backend:8s} {device:6s} failed: {out.stderr[-300:]}"
        print("\n".join(lines) if out.returncode == 0 and lines else failed)


if __name__ == "__main__":
    main()
