"""Write a training checkpoint's network as a weights file with its manifest (no scoring: for a machine without
the real frames; ``scripts/ship_weights.py`` scores as it ships).

    python3 scripts/checkpoint_weights.py CHECKPOINT OUT.pt [--machine TEXT]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perception_ws.models import save_weights
from perception_ws.models.segmenter import RangeSegmenter
from perception_ws.models.spvnas.point_model import PointVoxelSegmenter
from perception_ws.models.weights import any_model_from_config
from perception_ws.training.checkpoint import load_checkpoint


def network_and_record(checkpoint: Path, machine: str) -> tuple[RangeSegmenter | PointVoxelSegmenter, dict[str, Any]]:
    """The checkpoint's network (eval mode) and the ``training`` record its weights manifest gets."""
    state = load_checkpoint(checkpoint)
    model = any_model_from_config(state["model_config"])  # either family: range image or point-voxel
    model.load_state_dict(state["model"])
    config = state["config"]
    training = {
        "data": "simulated only (no real label read; a real target only where settings.target names one)",
        "steps": int(state["step"]),
        "batch_size": config["batch_size"],
        "samples_seen": int(state["step"]) * int(config["batch_size"]),
        "settings": config,
        "machine": machine,
    }
    return model.eval(), training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--machine", default="", help="where it was trained, for the manifest")
    args = parser.parse_args()
    model, training = network_and_record(args.checkpoint, args.machine)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(save_weights(model, args.out, training=training, scores={}))


if __name__ == "__main__":
    main()
