"""Per-scan segmentation time of the CPU runtimes on real scans: torch fp32 (the named baseline, same run) against
onnxruntime and OpenVINO running fp32 and int8 exports, at each export's size and each thread count.

    python benchmarks/bench_onnx_runtime.py [SCAN ...] [--onnx FILE.onnx ...] [--threads 1 2] [--repeats N]

Each FILE.onnx is a fixed-size export (``perception export --format onnx``) or its int8 copy (``perception
quantize``); its manifest gives its width (the view: 512 columns per 90 degrees, centred on +x) and precision.
Without --onnx the four files are made first in a temporary folder (a few minutes): the shipped weights exported
at 64 x 512 and 64 x 2048 and quantised (calibration kitti_sequence_pcd, checks kitti_squeezeseg and semantickitti);
where the int8 copy fails the accuracy rule (64 x 2048 did with ``--fp32-layers fixed``) it is made anyway for
timing and the output says so.
Without SCANs: kitti_object 000000-000002 and kitti_odometry_00 000094 of the real data
(PERCEPTION_REAL_DATA or ../shared/data/real).
For every width, thread count and runtime a pipeline runs one scan untimed (warm-up), then every scan ``repeats``
times; the pipeline's "segmentation" stage time is reported (median and p90 over all runs, ms). Runtimes of one
width and thread count run back to back in one process, so they see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from perception_ws.config import PipelineConfig
from perception_ws.io import load
from perception_ws.models.onnx_format import manifest_precision
from perception_ws.models.onnx_segmenter import read_onnx_manifest
from perception_ws.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("PERCEPTION_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
DEFAULT_SCANS = ("kitti_object/velodyne/000000.bin", "kitti_object/velodyne/000001.bin",
                 "kitti_object/velodyne/000002.bin", "kitti_odometry_00/000094.bin")  # fmt: skip
KITTI_COLUMNS_PER_90_DEG = 512
EXPORT_RUNTIMES = ("onnxruntime", "openvino")
#: the allowance of an int8 copy made for timing only (it failed the real rule): any accuracy passes.
TIMING_ONLY_DROP = 100.0


def make_exports(folder: Path) -> list[str]:
    """fp32 and int8 files at 64 x 512 (front) and 64 x 2048 (360 deg) in ``folder`` (see the module doc)."""
    from perception_ws.errors import ExportError
    from perception_ws.models.onnx_export import ExportShape, export_onnx
    from perception_ws.quantization import quantize_export

    files = []
    for width, check_data in ((512, "kitti_squeezeseg"), (2048, "kitti_odometry_00")):
        fov = 90.0 * width / KITTI_COLUMNS_PER_90_DEG
        fp32, int8 = folder / f"seg{width}.onnx", folder / f"seg{width}_int8.onnx"
        export_onnx(None, fp32, ExportShape(64, width), REAL / check_data, fov_deg=fov, frames=1)
        quantise = (fp32, int8, REAL / "kitti_sequence_pcd", [REAL / "kitti_squeezeseg", REAL / "semantickitti"])
        try:
            quantize_export(*quantise)
        except ExportError as refused:
            print(f"64x{width} int8: {refused}; made anyway for timing only")
            quantize_export(*quantise, max_car_iou_drop=TIMING_ONLY_DROP)
        files += [str(fp32), str(int8)]
    return files


def variants(files: list[str]) -> dict[int, list[tuple[str, dict[str, Any]]]]:
    """Per width: (name, config changes) for torch fp32 and every file on both exported runtimes."""
    by_width: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for file in files:
        manifest = read_onnx_manifest(Path(file))
        width = int(manifest["input"]["shape"][3])
        rows = by_width.setdefault(width, [("torch fp32 (baseline)", {})])
        for runtime in EXPORT_RUNTIMES:
            changes = {"segmenter.runtime": runtime, "segmenter.onnx": file}
            # the file named too: two int8 copies of one export (fp32 layers auto / fixed) can run side by side
            rows.append((f"{runtime} {manifest_precision(manifest)} ({Path(file).name})", changes))
    return by_width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scans", nargs="*", default=[str(REAL / name) for name in DEFAULT_SCANS])
    parser.add_argument("--onnx", nargs="+", help="fixed-size exports (fp32 and/or int8); default: made here")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
        run(args.scans, args.onnx or make_exports(Path(folder)), args.threads, args.repeats)


def run(scans: list[str], files: list[str], thread_counts: list[int], repeats: int) -> None:
    """Print the table (see the module doc)."""
    clouds = [load(path).points for path in scans]
    print(f"{len(clouds)} scans: {', '.join(scans)}; {repeats} runs each after one warm-up scan")
    print("| input | threads | runtime | median ms | p90 ms | torch median / this |")
    print("|---|---|---|---|---|---|")
    for width, rows in sorted(variants(files).items()):
        fov = 90.0 * width / KITTI_COLUMNS_PER_90_DEG
        for threads in thread_counts:
            view = {"sensor.fov_deg": fov, "sensor.width": width, "segmenter.threads": threads}
            baseline = None
            for name, changes in rows:
                pipeline = Pipeline(PipelineConfig().replace(**view, **changes))
                pipeline.process(clouds[0], 0.0, track=False)  # warm-up
                times = [
                    pipeline.process(cloud, 0.0, track=False).timings_ms["segmentation"]
                    for _ in range(repeats)
                    for cloud in clouds
                ]
                median = statistics.median(times)
                baseline = baseline or median  # the first row is torch
                p90 = float(np.percentile(times, 90))
                print(f"| 64x{width} | {threads} | {name} | {median:.1f} | {p90:.1f} | {baseline / median:.2f}x |")


if __name__ == "__main__":
    main()
