"""Per-stage times of the Pipeline on simulated scans in the CPU preset, and the object stage's parts.

    python -m perception_ws.ros_env .venv/bin/python benchmarks/bench_objects_stage.py [--frames 10] [--repeats 3]

Scans: bench_e2e.sim_scans (HDL-64E x 2048, ~125k points, 10 Hz). Settings: config/perception_cpu_front.yaml
with segmenter.compile false, plus bench_e2e.NODE_SETTINGS (the DBSCAN radius of the node benchmarks), so the
object stage sees the network's labels. One warm-up scan, then each scan ``--repeats`` times (tracks reset
between repeats, so every repeat sees the same tracker states).

Tables: median and p99 per stage (PipelineResult.timings_ms) and markers_msg (when the ROS messages import);
then the box fits of each scan's detections (the points given their instance id): the numba heading
costs against the numpy reference (the baseline), ms per scan, and how many headings agree.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from perception_ws.config import PipelineConfig
from perception_ws.instances.box_fit import heading_costs, heading_costs_reference, heading_search
from perception_ws.pipeline import STAGES, Pipeline, PipelineResult

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_e2e  # the e2e benchmark's scans and settings


def percentiles(values: list[float]) -> str:
    return f"{np.median(values):>9.2f}{np.percentile(values, 99):>9.2f}"


def markers_timer() -> Callable[..., Any] | None:
    """markers_msg, or None where the ROS message packages do not import (run under perception_ws.ros_env)."""
    try:
        from perception_ws.nodes.markers import markers_msg
    except ImportError:
        return None
    return markers_msg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    load_before = os.getloadavg()
    scans = bench_e2e.sim_scans(args.frames, 10.0)
    with tempfile.TemporaryDirectory() as folder:
        weights, note = bench_e2e.untrained_weights(Path(folder))
        preset = bench_e2e.preset_settings(bench_e2e.CPU_PRESET)
        settings = {**bench_e2e.NODE_SETTINGS, **preset, "segmenter.compile": False, "segmenter.weights": weights}
        config = PipelineConfig().replace(**settings)
        pipeline = Pipeline(config)
    pipeline.warm_up()
    pipeline.process(scans[0], 0.0)
    markers_msg = markers_timer()
    header = None
    if markers_msg is not None:
        from std_msgs.msg import Header

        header = Header(frame_id="lidar")

    times: dict[str, list[float]] = {}
    results: list[PipelineResult] = []
    with tqdm(total=args.repeats * len(scans), desc="pipeline", unit="scan") as bar:
        for repeat in range(args.repeats):
            pipeline.reset()
            for index, scan in enumerate(scans):
                result = pipeline.process(scan, 100.0 + index / 10.0)
                for stage, ms in result.timings_ms.items():
                    times.setdefault(stage, []).append(ms)
                if markers_msg is not None:
                    start = time.perf_counter()
                    markers_msg(header, result.detections, result.tracks, config.classes)
                    times.setdefault("markers_msg", []).append((time.perf_counter() - start) * 1e3)
                if repeat == 0:
                    results.append(result)
                bar.update()

    boxes = np.mean([len(r.detections) for r in results])
    points = np.mean([len(s) for s in scans])
    print(f"\n{len(scans)} simulated scans x {args.repeats}, ~{points:.0f} points, {boxes:.1f} detections per scan")
    print(f"segmenter: {pipeline.segmenter_summary.strip()} ({note})")
    print(f"{'stage':<18}{'median':>9}{'p99':>9}  ms")
    for stage in (*STAGES, "total", "markers_msg"):
        if stage in times:
            print(f"{stage:<18}{percentiles(times[stage])}")

    # the box fits of each scan's objects: kernel vs the numpy reference (the pre-kernel code path)
    agree = total = 0
    fit_ms: dict[str, list[float]] = {"numba kernel": [], "numpy reference (baseline)": []}
    xyz_scans = [np.column_stack([s["x"], s["y"], s["z"]]).astype(np.float64) for s in scans]
    for xyz, result in zip(xyz_scans, results, strict=True):
        objects = [xyz[result.instances == k, :2] for k in range(1, len(result.detections) + 1)]
        objects = [xy for xy in objects if len(xy)]
        chosen = {}
        for name, costs in (("numba kernel", heading_costs), ("numpy reference (baseline)", heading_costs_reference)):
            start = time.perf_counter()
            chosen[name] = [heading_search(xy, costs=costs) for xy in objects]
            fit_ms[name].append((time.perf_counter() - start) * 1e3)
        agree += sum(a == b for a, b in zip(*chosen.values(), strict=True))
        total += len(objects)
    print(f"\nheading search over each scan's objects ({total} objects): ms per scan")
    print(f"{'costs':<28}{'median':>9}{'p99':>9}")
    for name, values in fit_ms.items():
        print(f"{name:<28}{percentiles(values)}")
    print(f"same heading: {agree} / {total}")
    load_after = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs; load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/"
          f"{load_before[2]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
