"""The GPU path end to end (issue 15, item 4): the network alone, Pipeline.process, the node's worker at 10/20 Hz,
offline batches; projection on the CPU against projection on the device.

    PYTHONPATH=.gpu/site:. python3 benchmarks/bench_gpu.py --data DIR [--parts a b c d] [--device cuda]
    .venv/bin/python benchmarks/bench_gpu.py --device cpu --data ../shared/data/real/kitti_odometry_00 \\
        --runs 5 --scans 8 --seconds 2 --compile off --widths 512        # a quick run on a CPU (a check, not a figure)

Scans: every scan of ``--data`` (a folder of KITTI ``.bin`` files, HDL-64E, ~120k points), in memory before timing,
looped over where a part needs more. Settings: the perception node's defaults (360° as 64 x 2048, the shipped
SqueezeSegV2 + CRF) on ``--device`` at ``--precision``, compiled (on a GPU: CUDA graphs, torch.compile
'reduce-overhead', or 'max-autotune' with ``--autotune``) unless ``--compile off``; detection settings as
benchmarks/bench_e2e.py. Parts (``--parts``):

a. the network + CRF alone, batch 1, 64x512 (front 90°) and 64x2048 (360°) images of the first scan, eager and
   compiled, fp32 / bf16 / fp16 (``--network-precisions``): median and p99 over ``--runs`` runs after warm-up, from
   CUDA events around :meth:`NetworkSegmenter.segment_on_device` (the pipeline's call; on a CPU the wall clock).
   Baseline: eager fp32.
b. ``Pipeline.process`` on ``--scans`` scans with ``segmenter.projection`` cpu (the baseline) and device: p50 / p99
   of each stage (``PipelineResult.timings_ms``: CUDA events on the device path, see docs/models.md) and of the wall
   time of the call.
c. scans put into the node's latest-wins worker (perception_ws.nodes.worker.LatestWorker, the node's own thread
   and mailbox, without ROS) at 10 and 20 Hz for ``--seconds`` each, projection cpu (baseline) and device: latency
   from the put to the end of ``process`` (p50 / p99), the scans the worker skipped while busy (drops), and where
   the latency goes: the wait for the worker, the call, and its stages.
   No DDS and no message conversion: bench_e2e.py measures those on a ROS machine.
d. offline throughput: ``Pipeline.process_batch`` (as ``perception label`` / ``eval`` batch frames) at each
   ``--batch`` size over ``--scans`` scans, frames per second. Baseline: batch 1.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    from bench_e2e import NODE_SETTINGS, STAGE_COLUMNS  # the node benchmark's detection settings and stage order
except ImportError as error:  # the GPU machine has no ROS; bench_e2e's top level needs PyYAML and tqdm
    raise SystemExit(f"bench_gpu.py: {error}; put the package on PYTHONPATH (pip install --target .gpu/site)") from None

from perception_ws.config import PipelineConfig
from perception_ws.device_runtime import StageClock
from perception_ws.io import open_dataset
from perception_ws.models.network_segmenter import NetworkSegmenter, load_network
from perception_ws.nodes.issues import IssueLog
from perception_ws.nodes.worker import LatestWorker
from perception_ws.pipeline import Pipeline
from perception_ws.projection import project

PRECISIONS = ("fp32", "bf16", "fp16")
#: the issue's goals on an H100-class GPU (ms): network + CRF at 64x512 and 64x2048, p99 at 20 Hz through the node
GOALS_MS = {"net 64x512": 0.5, "net 64x2048": 1.5, "p99 at 20 Hz": 25.0}


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p99) of ``values`` (NaN when empty)."""
    if not values:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(values, [50, 99])
    return float(p50), float(p99)


def settings(args: argparse.Namespace, projection: str, compiled: bool) -> PipelineConfig:
    return PipelineConfig().replace(
        **NODE_SETTINGS,
        **{
            "segmenter.device": args.device,
            "segmenter.precision": args.precision,
            "segmenter.compile": compiled,
            "segmenter.autotune": compiled and args.autotune,
            "segmenter.projection": projection,
            "sensor.fov_deg": 360.0,
            "sensor.width": 2048,
        },
    )


# -- a. the network alone ------------------------------------------------------------------------


def network_part(args: argparse.Namespace, scans: list[np.ndarray]) -> None:
    device = torch.device(args.device)
    network = load_network(settings(args, "cpu", False))
    config = PipelineConfig()
    print("\na. SqueezeSegV2 + CRF alone, batch 1 (segment_on_device: network, CRF, softmax), ms")
    print(f"{'image':>8} {'variant':>14} {'median':>8} {'p99':>8} {'network':>8} {'crf':>8}  note")
    for width, fov in ((512, 90.0), (2048, 360.0)):
        if width not in args.widths:
            continue
        image = torch.from_numpy(project(scans[0], config.sensor.model, fov_deg=fov, width=width).image).to(device)
        for compiled, autotune in compile_choices(args):
            for precision in args.network_precisions:
                if precision == "fp16" and device.type != "cuda":
                    continue
                segmenter = NetworkSegmenter(
                    network, args.device, config.classes, compile=compiled, autotune=autotune, precision=precision
                )
                totals, parts = time_segmenter(segmenter, image, args.warmup, args.runs)
                median, p99 = statistics.median(totals), float(np.percentile(totals, 99))
                variant = f"{segmenter.precision}{' autotuned' if autotune else ' compiled' if compiled else ' eager'}"
                note = "baseline" if (precision, compiled) == ("fp32", False) else ""
                if precision != segmenter.precision:
                    note = f"asked {precision}: not native here"
                network_ms, crf_ms = (statistics.median(parts.get(k, [float("nan")])) for k in ("network", "crf"))
                print(f"64x{width:<5} {variant:>14} {median:8.3f} {p99:8.3f} {network_ms:8.3f} {crf_ms:8.3f}  {note}")
    goal_512, goal_2048 = GOALS_MS["net 64x512"], GOALS_MS["net 64x2048"]
    print(f"goals on an H100-class GPU: <= {goal_512} ms at 64x512, <= {goal_2048} ms at 64x2048")


def compile_choices(args: argparse.Namespace) -> list[tuple[bool, bool]]:
    """Part a's (compiled, autotuned) rows: ``--compile``'s, and with ``--autotune`` compiled ones autotuned too."""
    chosen = [(compiled, False) for compiled in {"off": (False,), "on": (True,), "both": (False, True)}[args.compile]]
    return [*chosen, (True, True)] if args.autotune else chosen


def time_segmenter(
    segmenter: NetworkSegmenter, image: torch.Tensor, warmup: int, runs: int
) -> tuple[list[float], dict[str, list[float]]]:
    """Per-run total ms (events around the call) and the parts' ms, ``runs`` runs after ``warmup``."""
    totals: list[float] = []
    parts: dict[str, list[float]] = {}
    for i in range(warmup + runs):
        clock = StageClock(segmenter.device, events=True)
        with clock.stage("total"):
            segmenter.segment_on_device(image, clock)
        synchronize(segmenter.device)
        if i >= warmup:
            for name, ms in clock.read().items():
                (totals if name == "total" else parts.setdefault(name, [])).append(ms)
    return totals, parts


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- b. Pipeline.process -------------------------------------------------------------------------


def process_part(args: argparse.Namespace, scans: list[np.ndarray], pipelines: dict[str, Pipeline]) -> None:
    print(f"\nb. Pipeline.process on {args.scans} scans (64x2048), per stage p50 / p99 ms (baseline: projection cpu)")
    columns: dict[str, dict[str, list[float]]] = {}
    for projection, pipeline in pipelines.items():
        times: dict[str, list[float]] = {}
        for i in range(args.scans):
            start = time.perf_counter()
            result = pipeline.process(scans[i % len(scans)], 0.1 * (i + 1))
            times.setdefault("wall (call)", []).append((time.perf_counter() - start) * 1e3)
            for name, ms in result.timings_ms.items():
                times.setdefault(name, []).append(ms)
        columns[projection] = times
    stage_table({f"projection {p}": times for p, times in columns.items()}, ("wall (call)",), 22)


def stage_table(columns: dict[str, dict[str, list[float]]], extra: tuple[str, ...], width: int) -> None:
    """One row per stage (the node's stage order, then ``extra``), one p50 / p99 cell per column; rows that no
    column has are left out.
    """
    print(f"{'stage':>16} " + " ".join(f"{column:>{width}}" for column in columns))
    for name in (*STAGE_COLUMNS, "segmentation", "detection", *extra):
        cells = [times.get(name) for times in columns.values()]
        if all(cell is None for cell in cells):
            continue
        pairs = (percentiles(cell or []) for cell in cells)
        print(f"{name:>16} " + " ".join(f"{f'{p50:.2f} / {p99:.2f}':>{width}}" for p50, p99 in pairs))


# -- c. the node's worker at 10 and 20 Hz --------------------------------------------------------


class _Failures:
    """The worker's failure counter (the node passes its NodeStats)."""

    def __init__(self) -> None:
        self.count = 0

    def frame_failed(self) -> None:
        self.count += 1


def paced_part(args: argparse.Namespace, scans: list[np.ndarray], pipelines: dict[str, Pipeline]) -> None:
    print(f"\nc. the node's latest-wins worker, {args.seconds:g} s per row; latency = put -> result, ms")
    print(f"{'row':>28} {'scans':>6} {'p50':>8} {'p99':>8} {'max':>8} {'dropped':>12}  note")
    stages: dict[str, dict[str, list[float]]] = {}
    for rate in (10.0, 20.0):
        for projection, pipeline in pipelines.items():
            run = run_paced(pipeline, scans, rate, args.seconds)
            p50, p99 = percentiles(run.latencies)
            share = f"{run.dropped} ({100.0 * run.dropped / max(run.put, 1):.0f}%)"
            note = "baseline" if projection == "cpu" else ""
            note += f" {run.failed} failed" if run.failed else ""
            note += " first scans " + ", ".join(f"{ms:.1f}" for ms in run.latencies[:3])  # a warm-up left undone shows
            worst = max(run.latencies, default=float("nan"))
            name = f"{rate:g} Hz, projection {projection}"
            print(f"{name:>28} {len(run.latencies):6d} {p50:8.2f} {p99:8.2f} {worst:8.2f} {share:>12}  {note}")
            stages[name] = run.stages
    print(f"goal on an H100-class GPU: p99 <= {GOALS_MS['p99 at 20 Hz']} ms at 20 Hz (through the node, over DDS)")
    print("where the latency goes, p50 / p99 ms ('wait': put -> the worker starts the scan; 'call': process)")
    stage_table(stages, ("wait", "call"), 28)


@dataclass
class PacedRun:
    """One row of part c: latencies (ms), scans put, dropped and failed, and per-stage ms of the processed scans."""

    latencies: list[float] = field(default_factory=list)
    put: int = 0
    dropped: int = 0
    failed: int = 0
    stages: dict[str, list[float]] = field(default_factory=dict)


def run_paced(pipeline: Pipeline, scans: list[np.ndarray], rate_hz: float, seconds: float) -> PacedRun:
    """Scans put at ``rate_hz`` into the node's worker for ``seconds``; what came of them."""
    run = PacedRun()
    failures = _Failures()
    worker: LatestWorker[tuple[int, float]] = LatestWorker("bench_gpu_worker")

    def handle(item: tuple[int, float]) -> None:
        index, put_at = item
        started = time.perf_counter()
        result = pipeline.process(scans[index % len(scans)], index / rate_hz)
        done = time.perf_counter()
        run.latencies.append((done - put_at) * 1e3)
        for name, ms in (("wait", (started - put_at) * 1e3), ("call", (done - started) * 1e3)):
            run.stages.setdefault(name, []).append(ms)
        for name, ms in result.timings_ms.items():
            run.stages.setdefault(name, []).append(ms)

    # as the node: the warm-up in the worker's thread (a compiled network's CUDA graphs are per thread)
    issues = IssueLog(lambda line: print(line, file=sys.stderr), "bench")
    worker.start(handle, failures, issues, before=pipeline.warm_up)
    worker.wait_ready()
    next_at = time.perf_counter()
    end = next_at + seconds
    while next_at < end:
        time.sleep(max(0.0, next_at - time.perf_counter()))
        worker.slot.put((run.put, time.perf_counter()))
        run.put += 1
        next_at += 1.0 / rate_hz
    time.sleep(0.5)  # the last scan finishes
    worker.stop()
    run.dropped, run.failed = worker.slot.dropped, failures.count
    return run


# -- d. offline batches --------------------------------------------------------------------------


def batch_part(args: argparse.Namespace, scans: list[np.ndarray], pipeline: Pipeline) -> None:
    print(f"\nd. offline throughput, Pipeline.process_batch over {args.scans} scans (projection cpu), frames/s")
    print(f"{'batch':>6} {'frames/s':>10} {'ms/frame':>10}  note")
    frames = [scans[i % len(scans)] for i in range(args.scans)]
    for batch in args.batch:
        pipeline.process_batch(frames[:batch], [0.0] * batch)  # warm-up: a compiled network compiles for this batch
        start = time.perf_counter()
        for first in range(0, len(frames), batch):
            chunk = frames[first : first + batch]
            pipeline.process_batch(chunk, [0.0] * len(chunk))
        seconds = time.perf_counter() - start
        note = "baseline" if batch == args.batch[0] else ""
        print(f"{batch:6d} {len(frames) / seconds:10.1f} {1e3 * seconds / len(frames):10.2f}  {note}")


# -- main ----------------------------------------------------------------------------------------


@contextmanager
def timed(what: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    print(f"({what}: {time.perf_counter() - start:.0f} s)", file=sys.stderr)


def conditions(args: argparse.Namespace, scans: list[np.ndarray]) -> str:
    device = torch.device(args.device)
    where = f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "CPU (no GPU)"
    cuda = f", CUDA {torch.version.cuda}" if device.type == "cuda" else ""
    points = statistics.mean(len(s) for s in scans)
    return (
        f"{where}; torch {torch.__version__}{cuda}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}\n{args.data}: {len(scans)} scans, {points:,.0f} points on average; "
        f"precision {args.precision}, compile {args.compile}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of KITTI .bin scans (HDL-64E)")
    parser.add_argument("--device", default="cuda", help="torch device (default cuda; cpu for a quick check)")
    parser.add_argument("--parts", nargs="+", choices="abcd", default=list("abcd"))
    parser.add_argument("--precision", choices=PRECISIONS, default="bf16", help="parts b-d (default bf16)")
    parser.add_argument("--network-precisions", choices=PRECISIONS, nargs="+", default=list(PRECISIONS),
                        help="part a: the precisions timed (default all)")  # fmt: skip
    parser.add_argument("--compile", choices=("off", "on", "both"), default="both",
                        help="a: eager and/or compiled rows; b-d: compiled unless off (default both)")  # fmt: skip
    parser.add_argument("--autotune", action="store_true",
                        help="a: also max-autotune rows (segmenter.autotune); b-d: autotuned; GPU only")  # fmt: skip
    parser.add_argument("--widths", type=int, nargs="+", default=[512, 2048], help="part a image widths")
    parser.add_argument("--runs", type=int, default=200, help="part a: timed runs per row (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="part a: untimed runs first (default 20)")
    parser.add_argument("--scans", type=int, default=360, help="parts b and d: scans (default 360)")
    parser.add_argument("--seconds", type=float, default=30.0, help="part c: seconds per row (default 30)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 16], help="part d: batch sizes")
    args = parser.parse_args(argv)
    if args.autotune and (torch.device(args.device).type != "cuda" or args.compile == "off"):
        parser.error("--autotune needs --device cuda and a compiled network (--compile on or both)")
    if torch.device(args.device).type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed sizes: let cuDNN pick each conv's fastest kernel
    scans = [scan.points for scan in open_dataset(args.data)]
    print(conditions(args, scans))
    if "a" in args.parts:
        with timed("part a"):
            network_part(args, scans)
    compiled = args.compile != "off"
    pipelines: dict[str, Pipeline] = {}
    if set("bcd") & set(args.parts):
        with timed("pipelines built and warmed up"):
            for projection in ("cpu", "device"):
                pipelines[projection] = Pipeline(settings(args, projection, compiled))
                pipelines[projection].warm_up()
                for scan in scans[:3]:  # the real size: numba, the compiled network, the pinned buffers
                    pipelines[projection].process(scan, 0.0, track=False)
    parts: dict[str, Callable[[], Any]] = {
        "b": lambda: process_part(args, scans, pipelines),
        "c": lambda: paced_part(args, scans, pipelines),
        "d": lambda: batch_part(args, scans, pipelines["cpu"]),
    }
    gc.freeze()  # as the node does after its warm-up: what exists now stays out of the collector's full passes
    try:
        for name, run in parts.items():
            if name in args.parts:
                with timed(f"part {name}"):
                    run()
    finally:
        gc.unfreeze()  # main() may run inside another process (the tests)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
