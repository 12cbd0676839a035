"""The adaptation ablation table of docs/algorithms.md §5: every weights file scored on the labelled real frames.

    .venv/bin/python scripts/ablation_table.py --real ../shared/data/real control=runs/control.pt gca=runs/gca.pt

Each row runs ``perception eval --weights W --data REAL/SOURCE --json`` on the three labelled sources and prints one
Markdown row: IoU and precision for car / pedestrian / cyclist per source ("—" where a class has no true point in
the source), then the ``kitti_object`` car boxes: recall at BEV IoU >= 0.5 / >= 0.25 and the false cars a frame in
the camera view at 0.5. No number is picked here: the table is a measurement of weights chosen elsewhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SOURCES = ("kitti_squeezeseg", "semantickitti", "kitti_object")
CLASSES = ("car", "pedestrian", "cyclist")


def evaluate(weights: str, data: Path) -> dict[str, Any]:
    """``perception eval``'s JSON for ``weights`` on ``data``."""
    command = [sys.executable, "-m", "perception_ws.cli", "eval", "--weights", weights, "--data", str(data)]
    done = subprocess.run([*command, "--json", "--quiet"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _cells(result: dict[str, Any], key: str) -> str:
    """car / pedestrian / cyclist values of ``key``; "—" for a class with no true point (its recall is None)."""
    scores = [result["class"][name] for name in CLASSES]
    return " / ".join("—" if s["recall"] is None else f"{s[key]:.1f}" for s in scores)


def row(name: str, weights: str, real: Path) -> str:
    """One Markdown row of the table."""
    cells = [name]
    boxes = "—"
    for source in SOURCES:
        result = evaluate(weights, real / source)
        cells += [_cells(result, "iou"), _cells(result, "precision")]
        car = (result.get("detection") or {}).get("classes", {}).get("car")
        if car:
            strict, loose = car["bev_iou_0.5"], car["bev_iou_0.25"]
            boxes = f"{strict['recall']:.0f} / {loose['recall']:.0f} %; {strict['false_per_frame_in_camera']:.1f} false"
    return "| " + " | ".join([*cells, boxes]) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", type=Path, default=Path("../shared/data/real"), help="the labelled real frames")
    parser.add_argument("rows", nargs="+", metavar="NAME=W.pt", help="row name and weights file")
    args = parser.parse_args()
    print("| row | " + " | ".join(f"`{s}` IoU | precision" for s in SOURCES) + " | car boxes |")
    print("|---" * (2 + 2 * len(SOURCES)) + "|")
    for spec in args.rows:
        name, _, weights = spec.partition("=")
        if not weights:
            parser.error(f"{spec!r}: expected NAME=W.pt")
        print(row(name, weights, args.real), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
