"""Per-scan segmentation time of segmenter.runtime torch and onnxruntime on real scans, front 90 deg 64 x 512.

    python benchmarks/bench_onnx_runtime.py FILE.onnx SCAN [SCAN ...] [--threads N]

FILE.onnx: ``perception export --format onnx --height 64 --width 512`` of the shipped weights. Each pipeline
first runs one scan untimed (warm-up); then the "segmentation" stage time of every scan is printed.
"""

from __future__ import annotations

import argparse
import statistics

from perception_ws.config import PipelineConfig
from perception_ws.io import load
from perception_ws.pipeline import Pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx")
    parser.add_argument("scans", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    front = {"sensor.fov_deg": 90.0, "sensor.width": 512, "segmenter.threads": args.threads}
    runtimes = {
        "torch": {},
        "onnxruntime": {"segmenter.runtime": "onnxruntime", "segmenter.onnx": args.onnx},
    }
    clouds = [load(path).points for path in args.scans]
    for name, changes in runtimes.items():
        pipeline = Pipeline(PipelineConfig().replace(**front, **changes))
        pipeline.process(clouds[0], 0.0)  # warm-up
        times = [pipeline.process(cloud, 0.0, track=False).timings_ms["segmentation"] for cloud in clouds]
        each = [round(t, 1) for t in times]
        print(f"{name:12s} segmentation ms per scan: {each}, median {statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
