"""Range-image projection of a real 120k-point HDL-64E scan: the numba fast path vs the numpy reference.

    .venv/bin/python benchmarks/bench_projection.py [--repeat N]

The scan is SemanticKITTI 000000 (123 389 points, no ring field, so rows come from the HDL-64E beam
table with its per-laser origin heights). Rows of the table (milliseconds over N runs after a warm-up
that compiles the numba kernels; the variants are interleaved so a busy machine slows all alike):

- ``project`` 64 x 2048, full turn: the whole public call (input view, rows, columns, nearest-wins
  scatter, image gather), fast path vs ``backend="numpy"`` (the baseline);
- the same with only the hot loop (``project_fast`` vs ``project_reference``), to show what the
  Python-side work around it costs;
- ``project`` 64 x 2048 of the same points with a ``ring`` field (their storage-order rings), so rows
  need no beam-table search;
- ``project`` 64 x 512, front 90 deg (the SqueezeSeg setup);

then where the fast path's time goes (full turn): allocating and filling the outputs, the first pass
(range and column of every point, vectorised), the second (row from the beam table, nearest-wins
scatter) and the image gather.

Goal: the fast path within 3 ms for the full turn on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from perception_ws.calib.sensors import get_sensor
from perception_ws.io import load
from perception_ws.kernels.projection import (
    _ATAN_COEFFICIENTS,
    _ATAN_TOLERANCE,
    ROWS_TABLE,
    ColumnRule,
    RowRule,
    _ranges_and_columns,
    _rows_and_owners,
    gather_image_fast,
    project_fast,
    project_reference,
)
from perception_ws.projection import project, rings_from_scan_order

REAL_DATA = Path(
    os.environ.get("PERCEPTION_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
)
GOAL_MS = 3.0


def interleaved_times(variants: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Milliseconds per run of each variant; one warm-up call each, then ``repeat`` interleaved rounds."""
    for run in variants.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(1e3 * (time.perf_counter() - start))
    return times


def _fast_path_breakdown(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, rule: RowRule, columns: ColumnRule, repeat: int
) -> dict[str, list[float]]:
    """The stages of ``project_fast`` + ``gather_image_fast`` timed one by one (same calls, same order)."""
    n, height = len(x), 64
    xc, yc, zc = (np.ascontiguousarray(v) for v in (x, y, z))
    ranges, cols, rows = np.empty(n), np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)
    owner = np.full((height, columns.width), -1, dtype=np.int32)
    no_rows = np.zeros(1, dtype=np.int32)

    def allocate() -> None:
        np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n), np.full((height, columns.width), -1, np.int32)

    def first_pass() -> None:
        _ranges_and_columns(
            xc,
            yc,
            zc,
            columns.right_rad,
            columns.span_rad,
            columns.width,
            _ATAN_COEFFICIENTS,
            _ATAN_TOLERANCE,
            ranges,
            cols,
        )

    def second_pass() -> None:
        owner.fill(-1)
        _rows_and_owners(
            xc,
            yc,
            zc,
            ROWS_TABLE,
            no_rows,
            rule.tan_elevations,
            rule.beam_heights,
            rule.sorted_beyond,
            0.0,
            0.0,
            columns.right_rad,
            columns.span_rad,
            columns.width,
            height,
            ranges,
            cols,
            rows,
            owner.reshape(-1),
        )

    return interleaved_times(
        {
            "contiguous copies of x, y, z": lambda: [np.ascontiguousarray(v) for v in (x, y, z)],
            "allocate rows, cols, ranges, owner": allocate,
            "pass 1: range + column (vectorised)": first_pass,
            "pass 2: table row + nearest-wins scatter": second_pass,
            "image gather (3 MB float32 image)": lambda: gather_image_fast(owner, xc, yc, zc, None, ranges),
        },
        repeat,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    scan = load(REAL_DATA / "semantickitti" / "000000.bin")
    sensor = get_sensor("hdl64e")
    x, y, z = (scan.points[axis] for axis in ("x", "y", "z"))
    rule = RowRule.table(np.radians(sensor.elevations_deg), sensor.beam_heights_m)
    full_turn = ColumnRule(-math.pi, 2.0 * math.pi, 2048)

    fast = project(scan, sensor, fov_deg=360.0, width=2048)
    reference = project(scan, sensor, fov_deg=360.0, width=2048, backend="numpy")
    identical = all(
        np.array_equal(getattr(fast, name), getattr(reference, name)) for name in ("rows", "cols", "owner", "image")
    )

    # the same scan with a ring field (KITTI's storage-order rings): rows without the beam-table search
    ringed = np.empty(len(scan), dtype=[*scan.points.dtype.descr, ("ring", "<u2")])
    for name in scan.points.dtype.names or ():
        ringed[name] = scan.points[name]
    ringed["ring"] = rings_from_scan_order(scan)

    load_before = os.getloadavg()[0]
    times = interleaved_times(
        {
            "project 64x2048 360 deg": lambda: project(scan, sensor, fov_deg=360.0, width=2048),
            "project 64x2048 360 deg (numpy)": lambda: project(scan, sensor, 360.0, 2048, backend="numpy"),
            "hot loop 64x2048 360 deg": lambda: project_fast(x, y, z, rule, full_turn, 64),
            "hot loop 64x2048 360 deg (numpy)": lambda: project_reference(x, y, z, rule, full_turn, 64),
            "project 64x2048, ring field": lambda: project(ringed, sensor, fov_deg=360.0, width=2048),
            "project 64x2048, ring field (numpy)": lambda: project(ringed, sensor, 360.0, 2048, backend="numpy"),
            "project 64x512 front 90 deg": lambda: project(scan, sensor, fov_deg=90.0, width=512),
            "project 64x512 front 90 deg (numpy)": lambda: project(scan, sensor, 90.0, 512, backend="numpy"),
        },
        args.repeat,
    )
    load_after = os.getloadavg()[0]

    print(f"SemanticKITTI 000000: {len(scan)} points, HDL-64E beam-table rows; {args.repeat} interleaved runs")
    print(f"fast path == numpy reference (rows, cols, owner, image): {identical}")
    print(f"1-minute load average {load_before:.2f} before, {load_after:.2f} after (2 cores)")
    print(f"{'case':30s} {'numba ms':>9s} {'min':>7s} {'p90':>7s}   {'numpy ms':>9s} {'speed-up':>9s}")
    cases = ("project 64x2048 360 deg", "hot loop 64x2048 360 deg", "project 64x2048, ring field")
    for name in (*cases, "project 64x512 front 90 deg"):
        ours, base = times[name], times[f"{name} (numpy)"]
        median, baseline = statistics.median(ours), statistics.median(base)
        p90 = float(np.percentile(ours, 90))
        print(f"{name:30s} {median:9.2f} {min(ours):7.2f} {p90:7.2f}   {baseline:9.1f} {baseline / median:8.1f}x")

    breakdown = _fast_path_breakdown(x, y, z, rule, full_turn, args.repeat)
    print("\nfast path, full turn, by stage (median ms):")
    for name, values in breakdown.items():
        print(f"  {name:44s} {statistics.median(values):6.2f}")
    best = statistics.median(times["project 64x2048 360 deg"])
    verdict = "met" if best <= GOAL_MS else "NOT met"
    print(f"goal: project 64x2048 full turn <= {GOAL_MS:.0f} ms -> {verdict} ({best:.2f} ms median)")


if __name__ == "__main__":
    main()
