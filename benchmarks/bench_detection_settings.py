"""The sweep that picks the detection defaults: clustering and box settings scored as boxes (detection_metrics).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_detection_settings.py [--real ../shared/data/real]
        [--sim-scenes 3 5 7 11] [--sim-seconds 1.0] [--no-model]

Data, every frame in `perception eval`'s view (:func:`perception_ws.evaluation.prepare_frame`: the front 90 deg
as a 64 x 512 range image, the view the shipped model was trained for):

- simulated drives (``bench_cluster_radius.sim_drives``: the scene seeds, 10 Hz, LiDAR noise seed 5); truth:
  the simulator's boxes with their centre in the front 90 deg; labels: the simulator's (``oracle``) and the
  shipped model's (``model``, :class:`~perception_ws.evaluation.NetworkPredictor`);
- the real KITTI object frames; truth: label_2 (:func:`~perception_ws.detection_eval.box_truth`); labels: the
  boxes' point labels (oracle) and the model's (confirmation only).

Detections: :class:`~perception_ws.detection_eval.LabelDetector` (the node's detection stage) with the settings
of a row, everything else at the node's defaults. The choice, stage by stage (each stage starts from the
winners of the ones before; the first value of every grid is the current default):

1. cars: ``car_eps_m`` x ``car_min_samples``, by car F1 at BEV IoU >= 0.5 on the simulated drives, model labels;
2. the other classes: ``eps_m`` x ``min_samples``, by the mean F1 of pedestrian and cyclist, same criterion;
3. ``merge_overlap``, ``remove_ground``, ``box_method``, by the mean F1 of the three classes.

Ties (F1 within :data:`TIE` of the stage's best): the row that changes the fewest settings from the node's defaults
(a tie does not move a default), then fewer false detections per frame in the camera view, then the earlier row.
The real frames are printed beside each row to confirm, not to choose. Last, the whole box tables (every class
and criterion) of the defaults and of the chosen settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception_ws.config import PipelineConfig
from perception_ws.detection_eval import LabelDetector, box_truth, front_view
from perception_ws.detection_metrics import DetectionMetrics, FrameTruth
from perception_ws.evaluation import prepare_frame
from perception_ws.io import open_dataset
from perception_ws.labels import KITTI3
from perception_ws.schema import flatten

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cluster_radius import sim_drives

#: F1 this close to a stage's best counts as a tie.
TIE = 0.01
CRITERION = "bev_iou_0.5"
STAGES: list[tuple[str, dict[str, list[Any]], tuple[str, ...]]] = [
    (
        "cars",
        {"detection.car_eps_m": [0.3, 0.5, 0.7, 1.0, 1.3, 1.6, 2.0], "detection.car_min_samples": [20, 10, 5]},
        ("car",),
    ),
    (
        "other classes",
        {"detection.eps_m": [0.3, 0.5, 0.7], "detection.min_samples": [20, 10, 5]},
        ("pedestrian", "cyclist"),
    ),
    (
        "merge, ground, boxes",
        {
            "detection.merge_overlap": [0.3, 0.0, 0.1, 0.5],
            "detection.remove_ground": [False, True],
            "detection.box_method": ["search", "min_area"],
        },
        ("car", "pedestrian", "cyclist"),
    ),
]


@dataclass
class Frame:
    """One frame as the sweep scores it: the points in view, their labels (oracle and model) and the truth."""

    xyz: np.ndarray
    labels: dict[str, np.ndarray]
    truth: FrameTruth


def sim_frames(scenes: list[int], seconds: float, predict: Callable[[Any], np.ndarray] | None) -> list[Frame]:
    out = []
    for drive in sim_drives(scenes, seconds):
        for f in drive:
            view = prepare_frame(f.scan, fov_deg=90.0)
            truth = box_truth(f.scan, "sim")
            assert truth is not None and view.labels is not None
            labels = {"oracle": view.labels} | ({"model": predict(view)} if predict else {})
            out.append(Frame(view.xyz, labels, dataclasses.replace(truth, in_scope=front_view)))
    return out


def real_frames(root: Path, predict: Callable[[Any], np.ndarray] | None) -> list[Frame]:
    out = []
    for scan in open_dataset(root / "kitti_object"):
        view = prepare_frame(scan)
        truth = box_truth(scan, "kitti")
        assert truth is not None and view.labels is not None
        out.append(Frame(view.xyz, {"oracle": view.labels} | ({"model": predict(view)} if predict else {}), truth))
    return out


def score(frames: list[Frame], config: PipelineConfig, labels: str) -> DetectionMetrics:
    detector = LabelDetector(config)
    metrics = DetectionMetrics(KITTI3)
    for f in frames:
        metrics.update(detector(f.xyz, f.labels[labels]), f.truth)
    return metrics


def f1(metrics: DetectionMetrics, classes: Iterable[str]) -> float:
    values = [metrics.counts[c][CRITERION].f1 for c in classes]
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


def false_rate(metrics: DetectionMetrics, classes: Iterable[str]) -> float:
    return sum(metrics.false_per_frame(c, CRITERION) for c in classes)


def changed(setting: dict[str, Any]) -> int:
    """How many of ``setting``'s values differ from the node's defaults."""
    defaults = flatten(PipelineConfig())
    return sum(defaults[key] != value for key, value in setting.items())


def cells(metrics: DetectionMetrics | None) -> str:
    """Car P / R / R50 / false per frame, pedestrian and cyclist F1, at the criterion."""
    if metrics is None:
        return ""
    c = metrics.counts["car"][CRITERION]
    ped, cyc = (metrics.counts[n][CRITERION].f1 for n in ("pedestrian", "cyclist"))
    return (
        f"{c.precision:5.2f} {c.recall:5.2f} {c.recall_many:5.2f} {metrics.false_per_frame('car', CRITERION):5.2f} "
        f"{ped:5.2f} {cyc:5.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/real")
    parser.add_argument("--sim-scenes", type=int, nargs="+", default=[3, 5, 7, 11])
    parser.add_argument("--sim-seconds", type=float, default=1.0)
    parser.add_argument("--no-model", action="store_true", help="oracle labels only (choose on them)")
    args = parser.parse_args()
    predict = None
    if not args.no_model:
        from perception_ws.evaluation import NetworkPredictor
        from perception_ws.models import load_weights

        predict = NetworkPredictor(load_weights(None))
    choose_on = "oracle" if args.no_model else "model"
    sim = sim_frames(args.sim_scenes, args.sim_seconds, predict)
    real = real_frames(args.real, predict)
    sim_cars = sum(c.objects for c in [score(sim, PipelineConfig(), "oracle").counts["car"][CRITERION]])
    print(f"sim: scenes {args.sim_scenes}, {len(sim)} frames, {sim_cars} car boxes in view; real: {len(real)} frames")
    print(
        f"choice: F1 at {CRITERION} on sim, {choose_on} labels; ties within {TIE}: fewest changes, false/frame, order"
    )
    print("columns per label source: car P R R50 false/frame, pedestrian F1, cyclist F1 (all at BEV IoU >= 0.5)")
    chosen: dict[str, Any] = {}
    for stage, grid, classes in STAGES:
        print(f"\n## {stage} (chosen by {', '.join(classes)})")
        print(f"{'setting':58s} | sim {choose_on:6s} | {'sim oracle' if predict else ''} | real oracle | real model")
        rows = []
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            setting = dict(zip(keys, values, strict=True))
            config = PipelineConfig().replace(**chosen, **setting)
            sim_scores = {name: score(sim, config, name) for name in sim[0].labels}
            real_scores = {name: score(real, config, name) for name in real[0].labels}
            main_scores = sim_scores[choose_on]
            rows.append((setting, f1(main_scores, classes), false_rate(main_scores, classes)))
            label = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in setting.items())
            print(
                f"{label:58s} | {cells(main_scores)} | {cells(sim_scores.get('oracle') if predict else None)} | "
                f"{cells(real_scores['oracle'])} | {cells(real_scores.get('model'))} | F1 {rows[-1][1]:.3f}",
                flush=True,
            )
        best = max(r[1] for r in rows)
        tied = [r for r in rows if r[1] >= best - TIE]
        winner = min(tied, key=lambda r: (changed(r[0]), r[2]))  # min keeps the earliest of equal keys
        chosen.update(winner[0])
        print(f"-> {winner[0]} (F1 {winner[1]:.3f}, best {best:.3f}, false/frame {winner[2]:.2f})")
    print(f"\nchosen: {chosen}")
    for title, config in (("the defaults", PipelineConfig()), ("chosen", PipelineConfig().replace(**chosen))):
        for name, frames in (("sim", sim), ("real", real)):
            for labels in frames[0].labels:
                print(f"\n{title}, {name}, {labels} labels:\n{score(frames, config, labels).table()}")


if __name__ == "__main__":
    main()
