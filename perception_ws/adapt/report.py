"""The report of `perception adapt`: what the adapted model finds on the target, beside the model it started from.

The target has no labels, so the report cannot score: it counts, per class, the points labelled and the
objects detected in a few target scans (spread over the recording), with the node's pipeline and the target's
fitted sensor table, once with the weights before adaptation (``init``, else the shipped default) and once
with the adapted ones; and it draws the first of those scans both ways (``before_after.png``). A model that
sees people on every pole shows it here as a jump in pedestrian points on scans of empty streets.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from perception_ws.adapt.coverage import FULL_TURN_DEG
from perception_ws.adapt.layout import PROFILE_DIR, REPORT_DIR, WEIGHTS
from perception_ws.io.atomic import atomic_file

REPORT_JSON, REPORT_MD, PICTURE = "report.json", "report.md", "before_after.png"
REPORT_FILES = (REPORT_JSON, REPORT_MD, PICTURE)


def write_report(
    target_path: str, init: str | None, report_frames: int, folder: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """Count and draw before (``init``, else shipped) / after on ``report_frames`` target scans; write report/.

    A report already there (all three files: the picture is written last) is returned as it is: a rerun
    of a finished run does nothing. The PDC stage removes it when it writes new weights.
    """
    from perception_ws.io import open_dataset

    out = folder / REPORT_DIR
    if all((out / name).is_file() for name in REPORT_FILES):
        loaded: dict[str, Any] = json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))
        return loaded
    say("adapt 5/5: report (before / after on target scans)")
    target = Path(target_path).expanduser()
    dataset = open_dataset(target)
    frames = sorted({int(i) for i in np.linspace(0, len(dataset) - 1, min(report_frames, len(dataset)))})
    sensor = str(folder / PROFILE_DIR / "sensor.yaml")
    from perception_ws.models.weights import DEFAULT_WEIGHTS  # "before": never a sensor's own shipped model

    weights = {"before": init or str(DEFAULT_WEIGHTS), "after": str(folder / WEIGHTS)}
    counts = {name: _counts(dataset, frames, sensor, path) for name, path in weights.items()}
    report = {
        "target": str(target),
        "frames": [dataset[i].name or str(i) for i in frames],
        "weights": weights,
        "sensor": sensor,
        "per_frame": counts,
        "node_parameters": {"segmenter.weights": weights["after"], "sensor.model": sensor, **_view(folder)},
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / REPORT_JSON) as handle:
        handle.write((json.dumps(report, indent=2) + "\n").encode())
    with atomic_file(out / REPORT_MD) as handle:
        handle.write(markdown(report).encode())
    _picture(target, frames[0], sensor, weights, out / PICTURE)
    say(markdown(report))
    return report


def _view(folder: Path) -> dict[str, float | int]:
    """``sensor.fov_deg`` and ``sensor.width`` where the target's scans hold only a sector of the turn."""
    from perception_ws.adapt.sensor_profile import SensorProfile

    profile = SensorProfile.load(folder / PROFILE_DIR)
    if profile.coverage.fov_deg >= FULL_TURN_DEG:
        return {}
    width = profile.coverage.node_width(profile.sensor.columns_per_turn)
    return {"sensor.fov_deg": profile.coverage.fov_deg, "sensor.width": width}


def remove_report(folder: Path) -> None:
    """Delete the report files of ``folder`` (they describe weights that are being replaced)."""
    for name in REPORT_FILES:
        (folder / REPORT_DIR / name).unlink(missing_ok=True)


def _pipeline_config(sensor: str, weights: str) -> Any:
    from perception_ws.labelling.options import pipeline_config
    from perception_ws.schema import flatten, schema_from_flat

    config = pipeline_config(None, weights or None, "cpu")
    flat = flatten(config)
    flat["sensor.model"] = sensor
    return schema_from_flat(type(config), flat, "perception adapt report")


def _counts(dataset: Any, frames: list[int], sensor: str, weights: str) -> dict[str, dict[str, float]]:
    """Mean points and detections a frame per class (class 0 left out)."""
    from perception_ws.pipeline import Pipeline

    pipeline = Pipeline(_pipeline_config(sensor, weights))
    names = pipeline.class_set.names
    points: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    for index in frames:
        result = pipeline.process(dataset[index].points, 0.0, track=False)
        ids, n = np.unique(result.labels, return_counts=True)
        points.update({names[i]: int(c) for i, c in zip(ids, n, strict=True) if i > 0})
        objects.update(names[box.label] for box in result.detections)
    return {name: {"points": points[name] / len(frames), "objects": objects[name] / len(frames)} for name in names[1:]}


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table: one row per class, before and after."""
    lines = [
        f"# perception adapt: {report['target']}",
        "",
        f"{len(report['frames'])} target scans ({', '.join(report['frames'])}), sensor table {report['sensor']}; "
        "no labels: counts, not scores.",
        "",
        "| class | points a frame, before | after | objects a frame, before | after |",
        "|---|---|---|---|---|",
    ]
    before, after = report["per_frame"]["before"], report["per_frame"]["after"]
    for name in before:
        lines.append(
            f"| {name} | {before[name]['points']:.0f} | {after[name]['points']:.0f} | "
            f"{before[name]['objects']:.1f} | {after[name]['objects']:.1f} |"
        )
    lines += ["", f"Before: {report['weights']['before']}. After: {report['weights']['after']}.", ""]
    lines.append("Node parameters: " + ", ".join(f"`{k}: {v}`" for k, v in report["node_parameters"].items()) + "\n")
    return "\n".join(lines)


def _picture(target: Path, frame: int, sensor: str, weights: dict[str, str], out: Path) -> None:
    """The first report frame labelled before (top) and after (bottom), one PNG."""
    from perception_ws.labelling.predict_view import compose_prediction, save_stacked

    figures = [
        compose_prediction(target, _pipeline_config(sensor, path), frame, sensor)[0] for path in weights.values()
    ]
    save_stacked(figures, out)
