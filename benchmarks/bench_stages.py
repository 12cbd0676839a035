"""Per-stage times of the Pipeline on real 360° scans under several settings, run interleaved.

    python benchmarks/bench_stages.py [--config YAML] [--variant NAME KEY=VALUE ...] [--rounds 5]

Each variant is the ``--config`` params file (default config/perception_cpu_360.yaml) with its KEY=VALUE
changes (YAML scalars); ``--variant`` may be given several times (default: the preset's own settings against
the fp32, three-CRF-step, no-bf16 baseline). Scans: the real HDL-64E sweeps of ../shared/data/real
(kitti_object velodyne 000000-000002, SemanticKITTI 000000; ~120k points each). Every variant's pipeline
is built and warmed up first (a compiled one compiles then); then, ``--rounds`` times, each variant
processes every scan in turn, so that a machine whose load changes slows all variants alike. Printed:
per variant and stage, median and p99 ms over all its scans (the node adds serialisation: bench_e2e.py).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from perception_ws.config import load_config
from perception_ws.io import load
from perception_ws.pipeline import STAGES, Pipeline

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("PERCEPTION_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
PRESET = REPO / "config" / "perception_cpu_360.yaml"
BASELINE = {"segmenter.precision": "fp32", "segmenter.crf_iterations": -1, "segmenter.compile": False}


def real_scans() -> list[np.ndarray]:
    paths = [*sorted((REAL / "kitti_object" / "velodyne").glob("*.bin")), REAL / "semantickitti" / "000000.bin"]
    return [load(path).points for path in paths]


def parse_variants(given: list[list[str]] | None) -> dict[str, dict[str, Any]]:
    if not given:
        return {"baseline fp32, CRF 3": BASELINE, "preset": {}}
    variants = {}
    for name, *pairs in given:
        changes = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise SystemExit(f"--variant {name}: {pair!r} is not KEY=VALUE")
            changes[key] = yaml.safe_load(value)
        variants[name] = changes
    return variants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=PRESET, help="params YAML (default: the 360° CPU preset)")
    parser.add_argument("--variant", nargs="+", action="append", metavar="NAME [KEY=VALUE ...]")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the scans per variant (default 5)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    base = load_config(args.config).pipeline_config()
    scans = real_scans()
    pipelines = {name: Pipeline(base.replace(**changes)) for name, changes in parse_variants(args.variant).items()}
    for pipeline in pipelines.values():
        pipeline.warm_up()
        pipeline.process(scans[0], 0.0, track=False)
    times: dict[str, list[dict[str, float]]] = {name: [] for name in pipelines}
    for round_ in range(args.rounds):
        for name, pipeline in pipelines.items():
            for index, scan in enumerate(scans):
                stamp = 0.1 * (round_ * len(scans) + index + 1)
                times[name].append(pipeline.process(scan, stamp).timings_ms)
    names = list(pipelines)
    print(f"{'stage':16s} " + " ".join(f"{name[:26]:>26s}" for name in names))
    print(f"{'':16s} " + " ".join(f"{'p50 / p99 ms':>26s}" for _ in names))
    for stage in (*STAGES, "total"):
        cells = []
        for name in names:
            values = [t[stage] for t in times[name] if stage in t]
            cells.append(f"{np.median(values):.1f} / {np.percentile(values, 99):.1f}" if values else "-")
        print(f"{stage:16s} " + " ".join(f"{cell:>26s}" for cell in cells))
    load_after = os.getloadavg()
    points = int(np.mean([len(s) for s in scans]))
    print(f"\n{len(scans)} real scans (~{points} points), {args.rounds} rounds, config {args.config.name}")
    before, after = load_before[0], load_after[0]
    print(f"machine: {os.cpu_count()} CPUs; load average (1 min) before {before:.2f}, after {after:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
