"""Point-cloud conversion and file formats on a real KITTI scan, each against a named baseline.

    .venv/bin/python benchmarks/bench_cloud.py [--repeat N]

Rows (median of N runs, milliseconds):
- from_msg (zero-copy view) vs a per-point ``struct.unpack`` loop, the naive rclpy-node decode
  (timed on 2 000 points and scaled to the whole scan);
- to_msg (one memcpy into array.array, kept by rclpy's setter) vs the plain rclpy way,
  ``PointCloud2(data=points.tobytes())`` (header and fields aside);
- read_pcd vs Open3D's tensor reader (``open3d.t.io.read_point_cloud``), binary and binary_compressed;
- LZF decompression: the numba kernel vs the plain Python reference (timed on 64 KiB and scaled).
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import open3d as o3d
from sensor_msgs.msg import PointCloud2

from perception_ws.cloud import as_structured, from_msg, to_msg
from perception_ws.io.pcd import PcdData, read_pcd, write_pcd
from perception_ws.kernels.lzf import lzf_compress, lzf_decompress, lzf_decompress_reference

REAL_DATA = Path(
    os.environ.get("PERCEPTION_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
)


def median_ms(run: Callable[[], object], repeat: int) -> float:
    run()  # warm-up (imports, numba compilation)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def unpack_loop(msg: PointCloud2, count: int) -> list[tuple[float, ...]]:
    data, step = bytes(msg.data), msg.point_step
    return [struct.unpack_from("<ffff", data, i * step) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    raw = np.fromfile(REAL_DATA / "kitti_odometry_00" / "000094.bin", dtype=np.float32).reshape(-1, 4)
    points = as_structured(raw)
    n = len(points)
    msg = to_msg(points, frame_id="velo")
    rows: list[tuple[str, float, str, float]] = []

    sample = 2000
    rows.append(
        (
            "from_msg",
            median_ms(lambda: from_msg(msg), args.repeat),
            "struct.unpack per point",
            median_ms(lambda: unpack_loop(msg, sample), max(3, args.repeat // 4)) * n / sample,
        )
    )

    def bytes_setter() -> None:
        PointCloud2(data=points.tobytes())

    rows.append(
        (
            "to_msg",
            median_ms(lambda: to_msg(points, frame_id="velo"), args.repeat),
            "PointCloud2(data=bytes)",
            median_ms(bytes_setter, max(3, args.repeat // 4)),
        )
    )

    with tempfile.TemporaryDirectory() as folder:
        encodings: tuple[PcdData, ...] = ("binary", "binary_compressed")
        for data in encodings:
            path = Path(folder) / f"{data}.pcd"
            write_pcd(path, points, data=data)
            rows.append(
                (
                    f"read_pcd {data}",
                    median_ms(lambda p=path: read_pcd(p), args.repeat),  # type: ignore[misc]
                    "open3d.t.io.read_point_cloud",
                    median_ms(lambda p=path: o3d.t.io.read_point_cloud(p), args.repeat),  # type: ignore[misc]
                )
            )

    planar = np.ascontiguousarray(raw.T).view(np.uint8).reshape(-1)
    packed = lzf_compress(planar)
    head = 1 << 16
    small = lzf_compress(planar[:head])
    rows.append(
        (
            "lzf_decompress (numba)",
            median_ms(lambda: lzf_decompress(packed, len(planar)), args.repeat),
            "plain Python reference",
            median_ms(lambda: lzf_decompress_reference(small, head), 3) * len(planar) / head,
        )
    )

    print(f"real KITTI scan: {n} points x {points.dtype.itemsize} bytes; median of {args.repeat} runs")
    print(f"{'operation':28s} {'ms':>9s}   {'baseline':30s} {'ms':>9s} {'speed-up':>9s}")
    for name, ours, baseline, theirs in rows:
        print(f"{name:28s} {ours:9.3f}   {baseline:30s} {theirs:9.1f} {theirs / ours:8.1f}x")


if __name__ == "__main__":
    main()
