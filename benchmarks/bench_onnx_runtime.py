"""Per-scan segmentation time of the CPU runtimes on real scans: torch fp32 (the named baseline, same run) against
onnxruntime and OpenVINO running fp32 and int8 exports, at each export's size and each thread count.

    python benchmarks/bench_onnx_runtime.py SCAN [SCAN ...] --onnx FILE.onnx [FILE.onnx ...] [--threads 1 2]
                                            [--repeats N]

Each FILE.onnx is a fixed-size export (``perception export --format onnx``) or its int8 copy (``perception
quantize``); its manifest gives its width (the view: 512 columns per 90 degrees, centred on +x) and precision.
For every width, thread count and runtime a pipeline runs one scan untimed (warm-up), then every scan ``repeats``
times; the pipeline's "segmentation" stage time is reported (median and p90 over all runs, ms). Runtimes of one
width and thread count run back to back in one process, so they see the same machine load.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from perception_ws.config import PipelineConfig
from perception_ws.io import load
from perception_ws.models.onnx_format import manifest_precision
from perception_ws.models.onnx_segmenter import read_onnx_manifest
from perception_ws.pipeline import Pipeline

KITTI_COLUMNS_PER_90_DEG = 512
EXPORT_RUNTIMES = ("onnxruntime", "openvino")


def variants(files: list[str]) -> dict[int, list[tuple[str, dict[str, Any]]]]:
    """Per width: (name, config changes) for torch fp32 and every file on both exported runtimes."""
    by_width: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for file in files:
        manifest = read_onnx_manifest(Path(file))
        width = int(manifest["input"]["shape"][3])
        rows = by_width.setdefault(width, [("torch fp32 (baseline)", {})])
        for runtime in EXPORT_RUNTIMES:
            changes = {"segmenter.runtime": runtime, "segmenter.onnx": file}
            rows.append((f"{runtime} {manifest_precision(manifest)}", changes))
    return by_width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scans", nargs="+")
    parser.add_argument("--onnx", nargs="+", required=True, help="fixed-size exports (fp32 and/or int8)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    clouds = [load(path).points for path in args.scans]
    print(f"{len(clouds)} scans: {', '.join(args.scans)}; {args.repeats} runs each after one warm-up scan")
    print("| input | threads | runtime | median ms | p90 ms | vs torch |")
    print("|---|---|---|---|---|---|")
    for width, rows in sorted(variants(args.onnx).items()):
        fov = 90.0 * width / KITTI_COLUMNS_PER_90_DEG
        for threads in args.threads:
            view = {"sensor.fov_deg": fov, "sensor.width": width, "segmenter.threads": threads}
            baseline = None
            for name, changes in rows:
                pipeline = Pipeline(PipelineConfig().replace(**view, **changes))
                pipeline.process(clouds[0], 0.0, track=False)  # warm-up
                times = [
                    pipeline.process(cloud, 0.0, track=False).timings_ms["segmentation"]
                    for _ in range(args.repeats)
                    for cloud in clouds
                ]
                median = statistics.median(times)
                baseline = baseline or median  # the first row is torch
                p90 = float(np.percentile(times, 90))
                print(f"| 64x{width} | {threads} | {name} | {median:.1f} | {p90:.1f} | {baseline / median:.2f}x |")


if __name__ == "__main__":
    main()
