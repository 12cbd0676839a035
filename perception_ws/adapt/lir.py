"""Learned intensity rendering (LIR): train the hybrid and the L2 network on unlabelled scans and compare them.

``python -m perception_ws.adapt.lir --target PATH --out DIR [--steps N] [--also PATH ...]`` trains both
networks on the target's training frames (:mod:`perception_ws.adapt.lir_train`) and writes to ``DIR``:
``lir_hybrid.pt`` / ``lir_l2.pt`` (each with its ``.json`` manifest; ``--intensity lir:DIR/lir_hybrid.pt``
renders with one in ``perception sim generate`` and ``perception train``), ``lir_compare.json`` and
``lir_compare.txt`` (held-back MSE of both networks and of predicting the training frames' mean
intensity, on the target's held-back frames and on every ``--also`` recording, never trained on) and
``lir_compare.png`` (one held-back scan: real intensity above both renders).

The simulator's hand-made reflectance model is not scored here: it needs each surface's albedo,
incidence angle and retro-reflectivity, which a real scan does not record.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception_ws.adapt.lir_coding import MODES
from perception_ws.adapt.lir_model import INTENSITY, MASK, LirModel, pixel_mse
from perception_ws.adapt.lir_picture import save_intensity_rows
from perception_ws.adapt.lir_train import LirSettings, holdout_split, train_lir
from perception_ws.adapt.target import TargetScans
from perception_ws.errors import PerceptionError
from perception_ws.io.atomic import atomic_file
from perception_ws.models.weights import json_safe


def mean_intensity(images: Sequence[np.ndarray]) -> float:
    """The mean intensity over the valid pixels of ``images`` (the constant that best predicts them in MSE)."""
    return float(np.mean(np.concatenate([im[..., INTENSITY][im[..., MASK] > 0] for im in images])))


def compare(
    target: TargetScans,
    also: Sequence[TargetScans],
    steps: int,
    batch_size: int,
    seed: int,
    progress: bool,
    device: str = "cpu",
) -> tuple[dict[str, Any], dict[str, LirModel]]:
    """Both networks trained on ``target``; the MSE table {set: {predictor: mse}} with its conditions."""
    train, held = holdout_split(len(target), LirSettings().holdout, seed)
    mean = mean_intensity([target.images[i] for i in train])
    sets = {f"{target.path} held-back {held}": [target.images[i] for i in held]}
    sets.update({f"{extra.path} (all {len(extra)})": extra.images for extra in also})
    models = {mode: train_lir(target, mode, steps, batch_size, device, seed, progress) for mode in MODES}
    table: dict[str, dict[str, float]] = {}
    for name, images in sets.items():
        row = {f"lir {mode}": model.mse(images) for mode, model in models.items()}
        row["training mean"] = pixel_mse([np.full(im.shape[:2], mean, np.float32) for im in images], images)
        table[name] = row
    for model in models.values():
        model.scores = {"held_out_mse": table}
    conditions = {
        "target": target.describe(), "train_frames": train, "held_out_frames": held, "steps": steps,
        "batch_size": batch_size, "crop_width": target.crop_width, "seed": seed, "device": device,
        "torch_threads": torch.get_num_threads(), "training_mean_intensity": mean,
    }  # fmt: skip
    return {"conditions": conditions, "mse": table}, models


def format_table(result: dict[str, Any]) -> str:
    """The MSE table of :func:`compare` as text, one line per scored set, and its conditions."""
    table: dict[str, dict[str, float]] = result["mse"]
    predictors = list(next(iter(table.values())))
    lines = ["MSE of intensity on valid pixels | " + " | ".join(predictors)]
    lines += [f"{name} | " + " | ".join(f"{row[p]:.4f}" for p in predictors) for name, row in table.items()]
    c = result["conditions"]
    lines.append(
        f"trained {c['steps']} steps x {c['batch_size']} crops of {c['crop_width']} columns on frames "
        f"{c['train_frames']} of {c['target']['path']}, {c['device']}, {c['torch_threads']} torch threads"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line of the module doc; 0 on success, 2 on bad input (one line on stderr)."""
    parser = argparse.ArgumentParser(prog="python -m perception_ws.adapt.lir", description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True, help="unlabelled real scans (any path perception_ws.io reads)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--also", action="append", default=[], help="more recordings to score on (never trained)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per network (default 300)")
    parser.add_argument("--batch-size", type=int, default=2, help="crops per step (default 2)")
    parser.add_argument("--crop-width", type=int, default=512, help="crop columns (default 512)")
    parser.add_argument("--sensor", default="hdl64e", help="the target's sensor model (default hdl64e)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        target = TargetScans(Path(args.target), args.sensor, crop_width=args.crop_width, seed=args.seed)
        also = [TargetScans(Path(p), args.sensor, crop_width=args.crop_width) for p in args.also]
        result, models = compare(
            target, also, args.steps, args.batch_size, args.seed, not args.quiet, device=args.device
        )
    except PerceptionError as exc:
        print(f"lir: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for mode, model in models.items():
        model.save(out / f"lir_{mode}.pt")
    with atomic_file(out / "lir_compare.json") as handle:
        handle.write((json.dumps(json_safe(result), indent=2) + "\n").encode())
    text = format_table(result)
    with atomic_file(out / "lir_compare.txt") as handle:
        handle.write((text + "\n").encode())
    shown = target.images[result["conditions"]["held_out_frames"][0]]
    valid = shown[..., MASK] > 0
    renders = {mode: model.render(shown[..., :3], valid) for mode, model in models.items()}
    save_intensity_rows(out / "lir_compare.png", shown[..., INTENSITY], valid, renders,
                        f"held-back scan of {target.path}: real vs rendered intensity")  # fmt: skip
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
