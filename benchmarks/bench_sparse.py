"""The sparse engine against spconv on one real scan: each sparse-conv kind, and SPVCNN / MinkUNet forwards.

    .venv/bin/python benchmarks/bench_sparse.py                       # 2 CPU threads, ours vs spconv
    .venv/bin/python benchmarks/bench_sparse.py --threads 1           # one thread (a shared machine: see below)
    python3 benchmarks/bench_sparse.py --device cuda                  # our engine on a GPU (spconv's wheel is CPU)
    python3 benchmarks/bench_sparse.py --device cuda --per-offset     # the GPU without the grouped bmm convs
    python3 benchmarks/bench_sparse.py --device cuda --weights subnet.pt --precision fp32 bf16   # a searched SPVNAS

Named baseline: spconv 2.3.8 (the ``sparse`` extra, CPU build) in the same run, with the same weights and
the same output voxels (``interop.SpconvConv3d``; the networks are the same ``PointVoxelUNet`` with every
sparse conv run by spconv, so norms, point branch and hashing of the point-voxel ops are ours in both).
Input: SemanticKITTI 000000.bin (PERCEPTION_REAL_DATA or ../shared/data/real; ``--data`` for another
KITTI .bin), features x y z remission, voxelised at ``--voxel-size`` m. Batch 1, eval mode, no gradients.

``cold``: a fresh cache each call, so the kernel maps (ours) or index pairs (spconv) are built inside the
timed call, as in the first layer of each kind in a forward pass; ``warm``: maps cached, the conv alone.
Networks are always cold (a new scan each forward). ``--weights`` adds rows for trained point networks (a
searched SPVNAS sub-network from ``perception search``, or any SPVCNN / SPVNAS weights), run as the node runs
them (``forward_points`` on the scan, at the weights' own voxel size), ours only; ``--precision`` runs every
network row under that autocast (bf16 / fp16: the convs' matmuls; gathers and hashing stay exact).
Times: median (and min) over ``--repeats`` after ``--warmup``. ``peak MB``: the largest rise in resident memory during
a row (CPU: /proc VmHWM, reset per row, measured in a second pass of this script in a child process with
MALLOC_MMAP_THRESHOLD_=65536 so that freed tensors leave at once; the timings come from the first pass, with the
ordinary allocator) or of allocated GPU memory. spconv always runs on one torch thread (its CPU kernels race on more:
see ``perception_ws/models/sparse/interop.py``), so ``--threads`` sets ours only. On a machine shared with other jobs,
2 threads can be much slower than 1 (a descheduled OpenMP thread stalls every parallel op): run both and read the
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from perception_ws.models.sparse import Conv3d, SparseCache, SparseTensor, initial_voxelize, offset_groups
from perception_ws.models.sparse import conv as conv_module
from perception_ws.models.sparse.interop import rows_of
from perception_ws.models.spvnas import PointVoxelUNet, build_minkunet, build_spvcnn, make_points
from perception_ws.models.spvnas.complexity import sparse_model_complexity
from perception_ws.models.spvnas.kit import spconv_kit
from perception_ws.models.spvnas.network import scaled_widths
from perception_ws.models.spvnas.point_model import PointVoxelSegmenter
from perception_ws.models.weights import load_point_weights

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

DEFAULT_SCAN = Path(
    os.environ.get("PERCEPTION_REAL_DATA", Path(__file__).resolve().parents[1].parent / "shared/data/real")
)
#: (row name, kernel size, stride, transposed)
LAYERS = [("submanifold k3", 3, 1, False), ("strided k2 s2", 2, 2, False), ("transposed k2 s2", 2, 2, True)]
#: every conv kind the U-Nets use, plus kernel 1 and 3-stride-2: checked GPU against CPU before timing
CHECKED_KINDS = [(3, 1, False), (1, 1, False), (2, 2, False), (3, 2, False), (2, 2, True), (3, 2, True)]
#: the largest difference allowed between the GPU's and the CPU's output features
GPU_TOLERANCE = 1e-4


class PeakMemory:
    """The largest rise of memory in use while inside the block: VmHWM on the CPU, the allocator on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak_mb = device, 0.0

    @staticmethod
    def _status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
            self.base = self._status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.peak_mb = (self._status("VmHWM") - self.base) / 2**20


def _time(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> tuple[float, float, float]:
    """(median ms, min ms, peak MB) of ``fn``."""
    for _ in range(warmup):
        fn()
    times = []
    with PeakMemory(device) as memory:
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times), memory.peak_mb


def _scan(path: Path, device: torch.device) -> tuple[np.ndarray, Callable[[float], object]]:
    scan = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
    xyz, feats = torch.from_numpy(scan[:, :3]).to(device), torch.from_numpy(scan).to(device)
    return scan, lambda voxel: make_points(xyz, feats, voxel)


def _gpu_agrees_with_cpu(voxels: SparseTensor, channels: int) -> bool:
    """Every conv kind on the scan's voxels, same weights on the GPU and the CPU: the same voxels and features.

    The GPU cannot run in the test suite (CI has none), so the check runs here, before the GPU is timed."""
    torch.manual_seed(0)
    fine_cpu = SparseTensor(torch.randn(voxels.coords.shape[0], channels), voxels.coords.cpu())
    coarse_cpu = Conv3d(channels, channels, 2, 2)(fine_cpu)
    coarse_cpu = coarse_cpu.with_feats(coarse_cpu.feats.detach())
    print("| GPU vs CPU (fp32) | voxels out | max abs difference |\n|---|---|---|")
    agreed = True
    for k, s, transposed in CHECKED_KINDS:
        x = coarse_cpu if transposed else fine_cpu
        conv = Conv3d(channels, channels, k, s, transposed=transposed)
        with torch.no_grad():
            cpu = conv(SparseTensor(x.feats, x.coords, x.stride, SparseCache(coords={1: fine_cpu.coords})))
            cache = SparseCache(coords={1: fine_cpu.coords.cuda()})
            gpu = conv.cuda()(SparseTensor(x.feats.cuda(), x.coords.cuda(), x.stride, cache))
        rows = rows_of(gpu.coords.cpu(), cpu.coords)
        same_voxels = gpu.coords.shape[0] == cpu.coords.shape[0] and bool((rows >= 0).all())
        worst = float((gpu.feats.cpu()[rows] - cpu.feats).abs().max()) if same_voxels else float("inf")
        agreed &= worst <= GPU_TOLERANCE
        kind = f"{'transposed' if transposed else 'submanifold' if s == 1 else 'strided'} k{k} s{s}"
        print(f"| {kind} | {cpu.coords.shape[0]} | {worst:.2e} |")
    return agreed


def _layer_rows(args: argparse.Namespace, voxels: SparseTensor, device: torch.device) -> list[list[str]]:
    torch.manual_seed(0)
    c = args.channels
    fine = SparseTensor(torch.randn(voxels.coords.shape[0], c, device=device), voxels.coords)
    coarse = Conv3d(c, c, 2, 2).to(device)(fine)
    coarse = coarse.with_feats(coarse.feats.detach())
    engines: list[tuple[str, type[torch.nn.Module]]] = [("ours", Conv3d)]
    if device.type == "cpu" and not args.skip_spconv:
        from perception_ws.models.sparse.interop import SpconvConv3d

        engines.append(("spconv", SpconvConv3d))
    rows = []
    for name, k, s, transposed in LAYERS:
        x = coarse if transposed else fine
        for engine, cls in engines:
            conv = cls(c, c, k, s, transposed=transposed).to(device)

            def cold(conv: torch.nn.Module = conv, x: SparseTensor = x) -> object:
                return conv(SparseTensor(x.feats, x.coords, x.stride, SparseCache(coords={1: fine.coords})))

            warm_input = SparseTensor(x.feats, x.coords, x.stride, SparseCache(coords={1: fine.coords}))
            for mode, fn in (("cold", cold), ("warm", lambda conv=conv, w=warm_input: conv(w))):
                median, best, peak = _time(fn, device, args.warmup, args.repeats)
                rows.append(
                    [
                        f"{name} {c}->{c}",
                        engine,
                        mode,
                        f"{x.coords.shape[0]}",
                        f"{median:.1f}",
                        f"{best:.1f}",
                        f"{peak:.0f}",
                        "",
                    ]
                )
    return rows


def _network_rows(
    args: argparse.Namespace, points_of: Callable[[float], object], device: torch.device
) -> list[list[str]]:
    rows = []
    for precision in args.precision:
        for ratio in args.width_ratio:
            for label, builder in (("SPVCNN", build_spvcnn), ("MinkUNet", build_minkunet)):
                torch.manual_seed(0)
                ours = builder(20, width_ratio=ratio).to(device).eval()
                cost = sparse_model_complexity(ours, points_of(args.voxel_size))  # type: ignore[arg-type]
                models: list[tuple[str, torch.nn.Module]] = [("ours", ours)]
                if device.type == "cpu" and not args.skip_spconv and precision == "fp32":
                    widths = scaled_widths(ratio)
                    ref = PointVoxelUNet(spconv_kit(), 4, 20, widths, point_branch=label == "SPVCNN").eval()
                    ref.load_state_dict(ours.state_dict())
                    models.append(("spconv", ref))
                info = f"{cost.macs / 1e9:.1f} GMACs, {cost.params / 1e6:.2f} M params"
                for engine, model in models:

                    def forward(m: torch.nn.Module = model) -> object:
                        return m(points_of(args.voxel_size))

                    median, best, peak = _time_network(forward, device, precision, args)
                    name = f"{label} x{ratio}" + ("" if precision == "fp32" else f" {precision}")
                    rows.append([name, engine, "cold", "-", f"{median:.0f}", f"{best:.0f}", f"{peak:.0f}", info])
        rows += _weights_rows(args, device, precision)
    return rows


def _weights_rows(args: argparse.Namespace, device: torch.device, precision: str) -> list[list[str]]:
    """Rows for ``--weights`` files: each network as the node runs it on the scan (its own voxel size)."""
    scan = np.fromfile(args.data, dtype=np.float32).reshape(-1, 4)
    xyz, feats = torch.from_numpy(scan[:, :3]).to(device), torch.from_numpy(scan).to(device)
    rows = []
    for path in args.weights:
        network = load_point_weights(path, device=str(device))
        cost = sparse_model_complexity(network.net, make_points(xyz, feats, network.voxel_size))

        def forward(n: PointVoxelSegmenter = network) -> object:
            return n.forward_points(xyz, feats)

        median, best, peak = _time_network(forward, device, precision, args)
        name = f"{network.name} {path.name}" + ("" if precision == "fp32" else f" {precision}")
        info = f"{cost.macs / 1e9:.1f} GMACs, {cost.params / 1e6:.2f} M params, voxels {network.voxel_size:g} m"
        rows.append([name, "ours", "cold", "-", f"{median:.1f}", f"{best:.1f}", f"{peak:.0f}", info])
    return rows


def _time_network(
    forward: Callable[[], object], device: torch.device, precision: str, args: argparse.Namespace
) -> tuple[float, float, float]:
    """(median ms, min ms, peak MB) of one network forward under ``precision``'s autocast, without gradients."""
    dtype = PRECISION_DTYPES[precision]

    def run() -> object:
        with torch.no_grad(), torch.autocast(device.type, dtype, enabled=dtype != torch.float32):
            return forward()

    return _time(run, device, args.warmup, args.repeats)


def _peaks_from_a_child(args: argparse.Namespace) -> list[str]:
    """The peak column, measured by this script run again in a child process where glibc serves every block of
    64 KiB or more by mmap: freed tensors leave the resident set at once, so the rise of VmHWM during a row is
    that row's own peak (in this process the timings keep the ordinary allocator)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    cmd = [sys.executable, *sys.argv, "--memory-pass", "--repeats", "1", "--warmup", "1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    peaks: list[str] = json.loads(out.strip().splitlines()[-1])
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_SCAN / "semantickitti" / "000000.bin")
    parser.add_argument("--voxel-size", type=float, default=0.05)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels", type=int, default=32, help="channels of the single-layer rows")
    parser.add_argument("--width-ratio", type=float, nargs="+", default=[0.5], help="network widths (cr)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--skip-spconv", action="store_true")
    parser.add_argument("--skip-networks", action="store_true")
    parser.add_argument(
        "--per-offset", action="store_true", help="one matmul per kernel offset on every device (a GPU groups them)"
    )
    parser.add_argument("--weights", type=Path, nargs="*", default=[], help="trained point networks to time too")
    parser.add_argument(
        "--precision", nargs="+", default=["fp32"], choices=list(PRECISION_DTYPES), help="network rows' autocast"
    )
    parser.add_argument(
        "--min-fill", type=float, default=None,
        help="the grouped path's offset_groups.MIN_FILL (default 0.5): lower, fewer groups (launches), more padding",
    )  # fmt: skip
    parser.add_argument("--memory-pass", action="store_true", help=argparse.SUPPRESS)  # the child of the peaks
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.per_offset:
        conv_module.GROUPED_DEVICES = set()
    if args.min_fill is not None:
        offset_groups.MIN_FILL = args.min_fill
    device = torch.device(args.device)
    scan, points_of = _scan(args.data, device)
    voxels = initial_voxelize(points_of(args.voxel_size))  # type: ignore[arg-type]
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} torch thread(s)"
    print(
        f"{args.data.name}: {scan.shape[0]} points -> {voxels.coords.shape[0]} voxels of {args.voxel_size} m; {where}"
    )
    if device.type == "cuda" and not _gpu_agrees_with_cpu(voxels, args.channels):
        sys.exit(f"bench_sparse: the GPU's outputs differ from the CPU's by more than {GPU_TOLERANCE}")
    rows = _layer_rows(args, voxels, device)
    if not args.skip_networks:
        rows += _network_rows(args, points_of, device)
    if args.memory_pass:
        print(json.dumps([row[6] for row in rows]))
        return
    if device.type == "cpu":
        for row, peak in zip(rows, _peaks_from_a_child(args), strict=True):
            row[6] = peak
    header = ["layer / network", "engine", "maps", "voxels in", "median ms", "min ms", "peak MB", "cost"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
