"""Throughput of `perception label` on the real HDL-64E sequence against the node's per-scan time, on the CPU.

    .venv/bin/python benchmarks/bench_label.py [--data DIR] [--config YAML] [--repeat N]

Frames: every scan of ``DIR`` (default ../shared/data/real/kitti_odometry_00, KITTI odometry sequence 00,
~121k points each). Settings: the perception node's (its defaults, or ``--config``): the shipped model on
the CPU. Rows, interleaved ``--repeat`` times in this run so that a busy machine slows all alike:

- ``Pipeline.process`` (the named baseline): the node's per-scan work alone, the scans already in memory,
  after one warm-up scan (numba kernels compiled);
- ``label, loop``: :func:`label_dataset`'s frame loop (read the scan, the same pipeline, write and checksum
  the files) with one format, then with all four; frames over the loop's seconds;
- ``label, command``: the same runs over their whole wall time: opening the source, loading the weights,
  the manifest, and with ``mcap`` the MCAP assembled after the loop.

GPU numbers are not measured here (no GPU on the development machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from perception_ws.io import open_dataset
from perception_ws.labelling.options import FORMATS, LabelOptions, pipeline_config
from perception_ws.labelling.run import label_dataset
from perception_ws.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("PERCEPTION_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=REAL / "kitti_odometry_00")
    parser.add_argument("--config", default=None, help="the perception node's params YAML (default: its defaults)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    config = pipeline_config(args.config, None, None)
    scans = list(open_dataset(args.data))
    pipeline = Pipeline(config)
    pipeline.process(scans[0].points, 0.0, track=False)  # warm-up: numba kernels, torch's first call

    rows: dict[str, list[float]] = {}  # row -> frames per second, one per repeat
    for _ in range(args.repeat):
        start = time.perf_counter()
        for scan in scans:
            pipeline.process(scan.points, 0.0, track=False)
        rows.setdefault("Pipeline.process (baseline)", []).append(len(scans) / (time.perf_counter() - start))
        for formats in (("semantickitti",), FORMATS):
            name = "+".join(formats) if len(formats) == 1 else "all four formats"
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                summary = label_dataset(args.data, out, config, LabelOptions(formats=formats, progress=False))
                wall = time.perf_counter() - start
            rows.setdefault(f"label, loop ({name})", []).append(summary.frames_now / summary.seconds_now)
            rows.setdefault(f"label, command ({name})", []).append(summary.frames_now / wall)

    points = sum(len(s) for s in scans) / len(scans)
    print(f"{args.data}: {len(scans)} scans, {points:,.0f} points on average; {args.repeat} repeats")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    baseline = statistics.median(rows["Pipeline.process (baseline)"])
    print(f"| {'row':<40} | frames/s (median, min-max) | ms/frame | vs baseline |")
    print(f"|{'-' * 42}|----------------------------|----------|-------------|")
    for name, values in rows.items():
        median = statistics.median(values)
        spread = f"{median:.2f} ({min(values):.2f}-{max(values):.2f})"
        print(f"| {name:<40} | {spread:<26} | {1e3 / median:8.0f} | {median / baseline:10.2f}x |")


if __name__ == "__main__":
    main()
