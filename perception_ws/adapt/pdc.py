"""Progressive domain calibration (PDC, SqueezeSegV2; docs/algorithms.md §5): after training, re-estimate
every batch-norm layer's running mean and variance on unlabelled real scans, layer by layer from the first,
each on the inputs it receives once every earlier layer is already calibrated.

The model stays in eval mode throughout, so each forward pass normalises with the stored statistics: those
of the layers already done are the calibrated ones, those of later layers are not read yet. For the layer
in turn a forward pre-hook accumulates, in float64, the per-channel sums of its input over every pixel of
every batch (all pixels, empty ones included, as training's batch statistics were), and the pass stops
right there (nothing after it is needed). The new running variance is the unbiased pooled variance, the
convention of BatchNorm's own running estimate. Forward order is read from one traced pass: in SqueezeSeg
it differs from the order the modules are declared in.

``python -m perception_ws.adapt.pdc --weights W --target PATH --out FILE`` calibrates a weights file.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from perception_ws.adapt.target import TargetScans
from perception_ws.errors import PerceptionError

Progress = Callable[[int, int, str], None]
#: the layers calibrated (track_running_stats on: their running mean/var are what eval mode reads).
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class LayerCalibration:
    """One calibrated layer: its name and how far its statistics moved (mean absolute change per channel)."""

    name: str
    channels: int
    mean_shift: float
    var_shift: float


class _LayerReachedError(Exception):
    """Raised by the hook once the layer in turn has seen its input: the rest of the pass is not needed."""


def batch_norm_layers(model: nn.Module, sample: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """The model's batch-norm layers in the order one forward pass of ``sample`` runs them."""
    names: dict[nn.Module, str] = {
        module: name
        for name, module in model.named_modules()
        if isinstance(module, BATCH_NORMS) and module.track_running_stats
    }
    order: list[nn.Module] = []

    def record(module: nn.Module, inputs: object) -> None:
        if module not in order:
            order.append(module)

    hooks = [module.register_forward_pre_hook(record) for module in names]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return [(names[m], m) for m in order]


def calibrate(
    model: nn.Module,
    target: TargetScans,
    batches: int,
    batch_size: int,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> list[LayerCalibration]:
    """Re-estimate every batch-norm layer of ``model`` in place on ``batches`` x ``batch_size`` target crops
    (the same crops for every layer), first to last; ``progress(done, total, name)`` after each layer.
    """
    if batches < 1 or batch_size < 1:
        raise PerceptionError(f"pdc: batches and batch_size must be >= 1; got {batches} and {batch_size}")
    channels = int(getattr(model, "in_channels", 6))
    device = torch.device(device)
    model.to(device).eval()
    images = [
        torch.from_numpy(target.batch(range(i * batch_size, (i + 1) * batch_size)))[:, :channels]
        for i in range(batches)
    ]
    layers = batch_norm_layers(model, images[0].to(device))
    if not layers:
        raise PerceptionError(f"pdc: {type(model).__name__} has no batch-norm layer to calibrate")
    report = []
    for done, (name, layer) in enumerate(layers, start=1):
        mean, var = _input_statistics(model, layer, images, device)
        running_mean, running_var = layer.running_mean, layer.running_var
        assert isinstance(running_mean, torch.Tensor) and isinstance(running_var, torch.Tensor)
        report.append(
            LayerCalibration(
                name=name,
                channels=int(mean.numel()),
                mean_shift=float((mean - running_mean.double()).abs().mean()),
                var_shift=float((var - running_var.double()).abs().mean()),
            )
        )
        running_mean.copy_(mean)
        running_var.copy_(var)
        if progress is not None:
            progress(done, len(layers), name)
    return report


@torch.no_grad()
def _input_statistics(
    model: nn.Module, layer: nn.Module, images: Sequence[torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance of ``layer``'s input over all pixels of all ``images``."""
    sums: list[torch.Tensor] = []

    def accumulate(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].double().transpose(0, 1).flatten(1)  # (C, B*H*W)
        sums.append(torch.stack([torch.full_like(x[:, 0], x.shape[1]), x.sum(dim=1), x.square().sum(dim=1)]))
        raise _LayerReachedError

    hook = layer.register_forward_pre_hook(accumulate)
    try:
        for batch in images:
            with contextlib.suppress(_LayerReachedError):
                model(batch.to(device))
    finally:
        hook.remove()
    count, total, squares = torch.stack(sums).sum(dim=0)
    mean = total / count
    var = (squares - count * mean.square()) / (count - 1)
    return mean, var.clamp_min(0.0)


def main(argv: list[str] | None = None) -> int:
    """Calibrate a weights file on a target and save the result with a manifest recording the calibration."""
    from perception_ws.models.weights import DEFAULT_WEIGHTS, load_weights, read_manifest, save_weights

    parser = argparse.ArgumentParser(prog="python -m perception_ws.adapt.pdc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="weights .pt to calibrate (default: the shipped ones)")
    parser.add_argument("--target", required=True, help="unlabelled real scans (a folder, file or bag)")
    parser.add_argument("--out", required=True, help="the calibrated weights .pt (its .json manifest goes beside)")
    parser.add_argument("--sensor", default="hdl64e", help="the target's sensor (default hdl64e)")
    parser.add_argument("--frames", type=int, default=None, help="use only the first N target scans")
    parser.add_argument("--crop-width", type=int, default=512, help="columns of each crop (default 512)")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="where the crops start (default 0)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        source = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
        model = load_weights(source, device=args.device)
        manifest = read_manifest(source)
        target = TargetScans(
            Path(args.target), sensor=args.sensor, crop_width=args.crop_width, seed=args.seed, max_frames=args.frames
        )
        report = calibrate(model, target, args.batches, args.batch_size, args.device, _print_progress)
        pdc = {
            "target": str(target.path),
            "frames": len(target),
            "sensor": args.sensor,
            "crop_width": args.crop_width,
            "batches": args.batches,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "layers": [asdict(layer) for layer in report],
        }
        training: dict[str, Any] = {**manifest.get("training", {"data": "unknown", "steps": 0}), "pdc": pdc}
        training.setdefault("calibrated_from", str(source))
        # the scores of the uncalibrated model no longer describe this one
        out = save_weights(model, Path(args.out), training=training, scores={})
    except PerceptionError as exc:
        print(f"pdc: error: {exc}", file=sys.stderr)
        return 2
    print(f"pdc: {len(report)} batch-norm layers calibrated on {len(target)} frames of {target.path}; {out}")
    return 0


def _print_progress(done: int, total: int, name: str) -> None:
    print(f"pdc: {done}/{total} {name}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
