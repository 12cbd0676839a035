"""Labels back to hidden points: the bounded range-image search vs the k-d tree over every owner (the baseline).

    .venv/bin/python benchmarks/bench_back_projection.py [--rounds 6] [--width 2048]

Scans: the real HDL-64E sweeps of ../shared/data/real (kitti_object velodyne 000000-000002, SemanticKITTI 000000;
~121k points each) projected over the full turn at ``--width`` columns. For each, the points that lost their pixel
to a nearer one get the nearest pixel owner in 3D, by ``nearest_owners_reference`` (scipy k-d tree: build over
~105k owners, then one query) and ``nearest_owners`` (kernels/nearest_owner.py), interleaved scan by scan; the
first round (numba compilation) is dropped. Printed: p50 / p99 ms per method, and whether every owner found is as
near as the tree's (equal distances may pick another owner).

Goal: the search under 5 ms p50 at 64 x 2048 on the 2-core development machine (the tree takes about 25).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

from perception_ws.calib.sensors import load_sensor
from perception_ws.io import load
from perception_ws.kernels.nearest_owner import nearest_owners, nearest_owners_reference
from perception_ws.projection import Projection, project

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("PERCEPTION_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


def hidden_points(projection: Projection) -> tuple[np.ndarray, np.ndarray]:
    """The points that lost their pixel, and those pixels (flat)."""
    seen = np.flatnonzero(projection.in_view)
    pixel = projection.rows[seen].astype(np.int64) * projection.width + projection.cols[seen]
    lost = projection.owner.reshape(-1)[pixel] != seen
    return seen[lost], pixel[lost]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="passes over the scans (the first is dropped)")
    parser.add_argument("--width", type=int, default=2048, help="columns of the full turn (default 2048)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    paths = [*sorted((REAL / "kitti_object" / "velodyne").glob("*.bin")), REAL / "semantickitti" / "000000.bin"]
    sensor = load_sensor("hdl64e")
    projections = [project(load(path), sensor, fov_deg=360.0, width=args.width) for path in paths]
    times: dict[str, list[float]] = {"k-d tree (baseline)": [], "bounded search": []}
    as_near = True
    for round_ in range(args.rounds):
        for projection in projections:
            hidden, pixels = hidden_points(projection)
            start = time.perf_counter()
            tree = nearest_owners_reference(projection.xyz, hidden, projection.owner)
            middle = time.perf_counter()
            found = nearest_owners(projection.xyz, hidden, pixels, projection.owner, 2.0 * math.pi)
            end = time.perf_counter()
            if round_:
                times["k-d tree (baseline)"].append(1e3 * (middle - start))
                times["bounded search"].append(1e3 * (end - middle))
            owners = projection.owner.reshape(-1)
            xyz = projection.xyz.astype(np.float64)
            gap = np.linalg.norm(xyz[owners[found]] - xyz[hidden], axis=1) - np.linalg.norm(
                xyz[owners[tree]] - xyz[hidden], axis=1
            )
            as_near &= bool(np.all(np.abs(gap) <= 1e-9))
    hidden_counts = [len(hidden_points(p)[0]) for p in projections]
    print(f"{len(paths)} real scans at 64 x {args.width}, {min(hidden_counts)}-{max(hidden_counts)} hidden points each")
    print(f"{'method':22s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, values in times.items():
        print(f"{name:22s} {np.median(values):8.1f} {np.percentile(values, 99):8.1f}")
    print(f"every owner found as near as the tree's: {as_near}")
    after = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs; load average (1 min) before {load_before:.2f}, after {after:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
