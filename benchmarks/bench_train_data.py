"""Training samples per second from the two simulated sources, data only (no model): 'sim' against 'sim-gpu'.

    .venv/bin/python benchmarks/bench_train_data.py [--device cpu|cuda] [--workers W] [--batch B] [--steps N]
        [--sensor hdl64e] [--columns 2048] [--crop 512] [--frames-per-scene F] [--dropout measured]

Both read the batches of steps 0 .. N-1 of the same settings (``perception train``'s sample addressing):

- ``sim`` (the baseline row): the DataLoader of :mod:`perception_ws.training.data`, W spawned workers that
  build scenes and render sweeps with ``Lidar.scan`` (torch BVH on the device when it is CUDA, else the
  default backend) and augment on the CPU; batches are moved to the device;
- ``sim-gpu``: :class:`perception_ws.training.gpu_data.SweepBatches`, W spawned workers building scenes
  only; every scene's F sweeps rendered in one call on the device, cropped and augmented there.

Printed: seconds to the first batch (worker start-up, first scenes) and samples/s after it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable

import torch

from perception_ws.training.augment import Augmentation
from perception_ws.training.config import TrainConfig
from perception_ws.training.data import AugmentedSamples, StepBatches, make_loader
from perception_ws.training.gpu_data import SweepBatches
from perception_ws.training.samples import SimulatedSource


def _time(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> tuple[float, float, int]:
    """(seconds to the first batch, seconds for the rest, samples in the rest)."""
    began = time.perf_counter()
    first, samples = 0.0, 0
    for i, (images, _) in enumerate(batches):
        images = images.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i == 0:
            first = time.perf_counter() - began
            began = time.perf_counter()
        else:
            samples += images.shape[0]
    return first, time.perf_counter() - began, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=9)
    parser.add_argument("--sensor", default="hdl64e")
    parser.add_argument("--columns", type=int, default=2048)
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--frames-per-scene", type=int, default=8)
    parser.add_argument("--dropout", default="measured")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of this process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = TrainConfig(
        data="sim-gpu", sensor=args.sensor, columns=args.columns, crop_width=args.crop, batch_size=args.batch,
        frames_per_scene=args.frames_per_scene, dropout=args.dropout, workers=args.workers, device=args.device,
    )  # fmt: skip
    source = SimulatedSource(
        sensor=args.sensor, columns=args.columns, crop_width=args.crop, dropout=args.dropout,
        frames_per_scene=args.frames_per_scene, backend="torch" if device.type == "cuda" else "auto",
    )  # fmt: skip
    samples = AugmentedSamples(source, Augmentation(crop_width=args.crop, columns_per_turn=args.columns), 0)
    loader = make_loader(samples, StepBatches(0, args.steps, args.batch), args.workers)
    rows = [("sim (baseline)", _time(loader, device))]
    rows.append(("sim-gpu", _time(SweepBatches(config).batches(0, args.steps, device, args.workers), device)))
    print(
        f"{args.sensor} {args.columns} columns, crops of {args.crop}, batch {args.batch}, {args.steps} steps, "
        f"{args.frames_per_scene} sweeps per scene, {args.workers} workers, device {device}"
    )
    print(f"{'source':<16}{'first batch s':>14}{'samples/s after':>17}{'speed-up':>10}")
    base = rows[0][1][2] / max(rows[0][1][1], 1e-9)
    for name, (first, rest, count) in rows:
        rate = count / max(rest, 1e-9)
        print(f"{name:<16}{first:>14.2f}{rate:>17.1f}{rate / base:>10.2f}")


if __name__ == "__main__":
    main()
