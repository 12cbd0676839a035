"""Turn a training checkpoint (or a weights file, e.g. one calibrated by PDC) into shipped weights, scored on the
real frames.

    .venv/bin/python scripts/ship_weights.py CHECKPOINT_OR_WEIGHTS [--real DIR] [--out weights/default.pt]
    .venv/bin/python scripts/ship_weights.py W.pt --score DIR [DIR ...] --out weights/vlp16.pt   # other frames

``--score``: labelled frames of another sensor to score on instead of the real HDL-64E sources (e.g. simulated
frames of a sensor profile, for a sensor with no labelled real frames); the manifest keys them by folder name.

The manifest records the model config, the training run (data, steps, settings from the checkpoint) and the
scores of ``perception eval`` on every labelled real source, so the numbers travel with the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from checkpoint_weights import network_and_record  # scripts/ is the script's own folder on sys.path

from perception_ws.evaluation import evaluate
from perception_ws.models import load_weights, save_weights
from perception_ws.models.weights import manifest_path, read_manifest

SOURCES = ("kitti_squeezeseg", "kitti_object", "semantickitti")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/real")
    parser.add_argument("--out", type=Path, default=Path("perception_ws/models/weights/default.pt"))
    parser.add_argument("--machine", default="", help="where it was trained, for the manifest")
    parser.add_argument("--score", type=Path, nargs="+", help="labelled folders to score on instead of --real's")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if manifest_path(args.checkpoint).is_file():  # a weights file: its own training record travels on
        model = load_weights(args.checkpoint)
        training = dict(read_manifest(args.checkpoint)["training"])
    else:
        model, training = network_and_record(args.checkpoint, args.machine)
    model.eval()
    scores = {}
    for folder in args.score or [args.real / name for name in SOURCES]:
        result = evaluate(model, folder, progress=True)
        print(result.table())
        scores[folder.name] = result.to_json()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = save_weights(model, args.out, training=training, scores=scores)
    print(f"wrote {path} and its manifest")


if __name__ == "__main__":
    main()
