"""DBSCAN runtime: ours (numba voxel grid) vs scikit-learn (the thesis' choice) vs Open3D.

Inputs from the real SemanticKITTI scan: its 41,313 non-ground points (every point not labelled
road, parking, sidewalk, other-ground or terrain) and the whole 123,389-point scan; eps 0.3 m,
minPts 20 (the thesis' settings). The methods run round-robin so that a burst of load on the
machine hits all of them alike; each result is checked to be the same partition as scikit-learn's.

    .venv/bin/python benchmarks/bench_dbscan.py [--runs 15] [--data ../shared/data/real]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import open3d as o3d
from sklearn.cluster import DBSCAN

from perception_ws.instances import dbscan
from perception_ws.io import load
from perception_ws.kernels.dbscan import dbscan_grid
from perception_ws.labels import SEMANTIC_KITTI

EPS, MIN_POINTS = 0.3, 20
GROUND_CLASSES = ("road", "parking", "sidewalk", "other-ground", "terrain")
REPO = Path(__file__).resolve().parents[1]


def sklearn_labels(xyz: np.ndarray) -> np.ndarray:
    return DBSCAN(eps=EPS, min_samples=MIN_POINTS).fit_predict(xyz)


def open3d_labels(cloud: o3d.geometry.PointCloud) -> np.ndarray:
    return np.asarray(cloud.cluster_dbscan(eps=EPS, min_points=MIN_POINTS, print_progress=False))


def same_partition(labels: np.ndarray, reference: np.ndarray, core: np.ndarray) -> bool:
    """Same noise points, and a one-to-one relabelling that maps the clusters of all core points."""
    if not np.array_equal(labels == -1, reference == -1):
        return False
    pairs = np.unique(np.stack([labels[core], reference[core]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def time_round_robin(methods: dict[str, Callable[[], object]], runs: int) -> dict[str, np.ndarray]:
    for run in methods.values():  # warm-up: numba's cached compile, Open3D's thread pool
        run()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(runs):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: np.array(t) for name, t in times.items()}


def bench(title: str, xyz: np.ndarray, runs: int) -> dict[str, np.ndarray]:
    xyz = np.ascontiguousarray(xyz, dtype=np.float64)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    reference = sklearn_labels(xyz)
    core = dbscan_grid(xyz, EPS, MIN_POINTS)[1]
    checks = {"ours": dbscan(xyz, EPS, MIN_POINTS), "scikit-learn": reference, "Open3D": open3d_labels(cloud)}
    times = time_round_robin(
        {
            "ours": lambda: dbscan(xyz, EPS, MIN_POINTS),
            "scikit-learn": lambda: sklearn_labels(xyz),
            "Open3D": lambda: open3d_labels(cloud),
        },
        runs,
    )
    print(f"\n{title}: {len(xyz):,} points, eps {EPS} m, minPts {MIN_POINTS}, {runs} runs each")
    print(f"{'method':<14}{'median ms':>11}{'mean ± std ms':>20}{'std/mean':>10}{'ours faster':>13}  same partition")
    ours = float(np.median(times["ours"]))
    for name, t in times.items():
        median, mean, std = float(np.median(t)), float(t.mean()), float(t.std())
        same = same_partition(checks[name], reference, core)
        print(
            f"{name:<14}{median:>11.2f}{f'{mean:.2f} ± {std:.2f}':>20}{std / mean:>10.1%}"
            f"{median / ours:>12.1f}x  {'yes' if same else 'NO'} ({checks[name].max() + 1} clusters)"
        )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "real")
    args = parser.parse_args()
    scan = load(args.data / "semantickitti" / "000000.bin")
    assert scan.semantic is not None
    ground = np.isin(scan.semantic, [SEMANTIC_KITTI.id_of(name) for name in GROUND_CLASSES])
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores shared with other jobs)")
    results = {
        "non-ground": bench("non-ground points of the SemanticKITTI scan", scan.xyz[~ground], args.runs),
        "full scan": bench("the whole SemanticKITTI scan", scan.xyz, args.runs),
    }
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print("\ngoals: >= 20x faster than scikit-learn, >= 5x faster than Open3D, our std < 10 % of our mean")
    for name, times in results.items():
        ours = times["ours"]
        print(
            f"  {name}: {np.median(times['scikit-learn']) / np.median(ours):.1f}x scikit-learn, "
            f"{np.median(times['Open3D']) / np.median(ours):.1f}x Open3D, std/mean {ours.std() / ours.mean():.1%}"
        )
    print("thesis (scikit-learn 0.15, Xeon, front 90 degrees of KITTI scans): 27.3 ± 45.8 ms")


if __name__ == "__main__":
    main()
