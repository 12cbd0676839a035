"""Throughput of `perception label` on the real HDL-64E sequence against the node's per-scan time, CPU or GPU.

    .venv/bin/python benchmarks/bench_label.py [--data DIR] [--config YAML] [--repeat N] [--device cuda]
                                               [--batch 1 8 16] [--formats semantickitti kitti]

Frames: every scan of ``DIR`` (default ../shared/data/real/kitti_odometry_00, KITTI odometry sequence 00,
~121k points each). Settings: the perception node's (its defaults, or ``--config``): the shipped model on
``--device`` (default: the config's, the CPU). Rows, interleaved ``--repeat`` times in this run so that a
busy machine slows all alike:

- ``Pipeline.process`` (the named baseline): the node's per-scan work alone, the scans already in memory,
  after one warm-up scan (numba kernels compiled);
- ``label, loop``: :func:`label_dataset`'s frame loop (read the scan, the same pipeline, write and checksum
  the files) with one format, then with ``--formats`` (default all four), at each ``--batch`` size (range
  images through the network together: :meth:`Pipeline.process_batch`); frames over the loop's seconds;
- ``label, command``: the same runs over their whole wall time: opening the source, loading the weights,
  the manifest, and with ``mcap`` the MCAP assembled after the loop.
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
    parser.add_argument("--device", default=None, help="torch device (default: the config's)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="network batch sizes to measure")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    args = parser.parse_args()
    config = pipeline_config(args.config, None, args.device)
    scans = list(open_dataset(args.data))
    pipeline = Pipeline(config)
    pipeline.process(scans[0].points, 0.0, track=False)  # warm-up: numba kernels, torch's first call

    rows: dict[str, list[float]] = {}  # row -> frames per second, one per repeat
    for _ in range(args.repeat):
        start = time.perf_counter()
        for scan in scans:
            pipeline.process(scan.points, 0.0, track=False)
        rows.setdefault("Pipeline.process (baseline)", []).append(len(scans) / (time.perf_counter() - start))
        for batch in args.batch:
            for formats in (("semantickitti",), tuple(args.formats)):
                name = "+".join(formats) + (f", batch {batch}" if batch > 1 else "")
                options = LabelOptions(formats=formats, batch_size=batch, progress=False)
                with tempfile.TemporaryDirectory() as out:
                    start = time.perf_counter()
                    summary = label_dataset(args.data, out, config, options)
                    wall = time.perf_counter() - start
                rows.setdefault(f"label, loop ({name})", []).append(summary.frames_now / summary.seconds_now)
                rows.setdefault(f"label, command ({name})", []).append(summary.frames_now / wall)

    points = sum(len(s) for s in scans) / len(scans)
    print(f"{args.data}: {len(scans)} scans, {points:,.0f} points on average; {args.repeat} repeats")
    print(
        f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
        f"{pipeline.segmenter_summary.strip(' ()')}"
    )
    baseline = statistics.median(rows["Pipeline.process (baseline)"])
    print(f"| {'row':<50} | frames/s (median, min-max) | ms/frame | vs baseline |")
    print(f"|{'-' * 52}|----------------------------|----------|-------------|")
    for name, values in rows.items():
        median = statistics.median(values)
        spread = f"{median:.2f} ({min(values):.2f}-{max(values):.2f})"
        print(f"| {name:<50} | {spread:<26} | {1e3 / median:8.0f} | {median / baseline:10.2f}x |")


if __name__ == "__main__":
    main()
