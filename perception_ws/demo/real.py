"""`perception demo --real`: what the project can do today, end to end, on the real sample frames.

For every source folder of the real data: open it through the io registry, project each frame to a
range image with its sensor model, carry the labels through the image and back to the points (scored
against the originals), draw the frame, and print one summary table. Until the simulator and the ROS
graph land, this is the project's main job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perception_ws.calib.sensors import get_sensor
from perception_ws.errors import DatasetError, PerceptionError
from perception_ws.io import open_dataset
from perception_ws.io.registry import find_reader
from perception_ws.labels import KITTI3
from perception_ws.metrics import ClassMetrics, RuntimeStats
from perception_ws.projection import project
from perception_ws.scan import Scan
from perception_ws.viz.figure import render_scan

#: where the real samples live when --data is not given (beside the repository, as CI lays it out).
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@dataclass
class SourceSummary:
    """One row of the real-data demo's table: what one source folder holds and how well it round-trips."""

    name: str
    reader: str
    frames: int
    points: int
    sensor: str
    pixel_agreement: float | None  # fraction of released pixels our projection reproduces
    label_iou: float | None  # car IoU of labels carried image -> points, vs the originals
    project_ms: RuntimeStats
    picture: Path | None
    note: str = ""


#: the sensors of the real sample folders whose files do not name one (a PCD carries no sensor model).
SAMPLE_SENSORS = {"vlp16": "vlp16", "vlp32": "vlp32c"}


def _default_sensor(scan: Scan, source: Path) -> str:
    if scan.sensor:
        return scan.sensor
    for part in reversed(source.parts):
        if part in SAMPLE_SENSORS:
            return SAMPLE_SENSORS[part]
    return "hdl64e"


def _fov_for(scan: Scan) -> tuple[float, int]:
    """SqueezeSeg frames are front-90° 512-column images; everything else is drawn as a full turn."""
    if scan.range_image is not None:
        return 90.0, scan.range_image.shape[1]
    return 360.0, 2048


def _label_round_trip(scan: Scan, proj_owner: np.ndarray, to_points: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Paint each pixel with its owning point's label, then carry the image back to all points."""
    assert scan.labels is not None
    pixel_labels = np.zeros(proj_owner.shape, dtype=np.int32)
    owned = proj_owner >= 0
    pixel_labels[owned] = scan.labels[proj_owner[owned]]
    return to_points(pixel_labels)


def _summarise_source(folder: Path, name: str, out: Path, max_frames: int) -> SourceSummary:
    dataset = open_dataset(folder)
    reader = find_reader(folder).name
    if len(dataset) == 0:
        note = "; ".join(dataset.notes) or "no frames"
        return SourceSummary(name, reader, 0, 0, "-", None, None, RuntimeStats(), None, note)
    timing = RuntimeStats()
    metrics = ClassMetrics(KITTI3)
    agree: list[float] = []
    scored = False
    points = 0
    picture: Path | None = None
    sensor_name = "-"
    for index in range(min(max_frames, len(dataset))):
        scan = dataset[index]
        sensor_name = _default_sensor(scan, folder)
        sensor = get_sensor(sensor_name)
        fov, width = _fov_for(scan)
        if index == 0:  # the first call compiles the numba kernels: keep that out of the timings
            project(scan, sensor, fov_deg=fov, width=width, row_source="table")
        with timing.timer():
            proj = project(scan, sensor, fov_deg=fov, width=width, row_source="table")
        points += len(scan)
        if scan.pixels is not None:
            same = (proj.rows == scan.pixels[:, 0]) & (proj.cols == scan.pixels[:, 1])
            agree.append(float(same.mean()))
        if scan.labels is not None:
            in_view = proj.in_view
            back = _label_round_trip(scan, proj.owner, proj.labels_to_points)
            metrics.update(scan.labels[in_view], back[in_view])
            scored = True
        if index == 0:
            png = out / f"{name.replace('/', '_')}.png"
            picture = render_scan(scan, png, projection=proj, class_set=KITTI3)
    car = metrics.scores().get("car") if scored else None
    return SourceSummary(
        name=name,
        reader=reader,
        frames=len(dataset),
        points=points // max(1, min(max_frames, len(dataset))),
        sensor=sensor_name,
        pixel_agreement=float(np.mean(agree)) if agree else None,
        label_iou=car.iou if car is not None else None,
        project_ms=timing,
        picture=picture,
    )


def _source_paths(data: Path) -> list[Path]:
    """Each sub-folder a reader understands is one source; otherwise each readable entry inside it is."""
    sources: list[Path] = []
    for child in sorted(p for p in data.iterdir() if p.is_dir()):
        try:
            find_reader(child)
            sources.append(child)
        except DatasetError:
            sources.extend(p for p in sorted(child.iterdir()) if _readable(p))
    return sources


def _readable(path: Path) -> bool:
    try:
        find_reader(path)
    except DatasetError:
        return False
    return True


def _fmt(value: float | None, scale: float = 100.0, digits: int = 1) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value * scale:.{digits}f}"


def run_demo(data: str | Path | None, out: Path, max_frames: int = 2) -> int:
    """Summarise every source folder under ``data`` into ``out`` (pictures, summary.txt); the exit status."""
    root = Path(data) if data else Path(os.environ.get("PERCEPTION_REAL_DATA", DEFAULT_DATA))
    if not root.is_dir():
        raise DatasetError(f"demo data folder {root} not found; pass --data DIR or set PERCEPTION_REAL_DATA")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[SourceSummary] = []
    for folder in tqdm(_source_paths(root), desc="sources", unit="src"):
        name = str(folder.relative_to(root))
        try:
            rows.append(_summarise_source(folder, name, out, max_frames))
        except PerceptionError as error:  # one bad source must not hide the others
            rows.append(SourceSummary(name, "-", 0, 0, "-", None, None, RuntimeStats(), None, str(error)))
    header = f"{'source':36s} {'reader':16s} {'frames':>6s} {'pts/frame':>9s} {'sensor':8s} "
    header += f"{'pixel%':>6s} {'car IoU%':>8s} {'project ms':>14s}  picture / note"
    lines = [header, "-" * len(header)]
    for r in rows:
        timing = f"{r.project_ms.mean:.1f} ± {r.project_ms.std:.1f}" if len(r.project_ms) else "-"
        where = str(r.picture) if r.picture else r.note
        lines.append(
            f"{r.name:36s} {r.reader:16s} {r.frames:6d} {r.points:9d} {r.sensor:8s} "
            f"{_fmt(r.pixel_agreement):>6s} {_fmt(r.label_iou):>8s} {timing:>14s}  {where}"
        )
    lines.append(f"\n{len(rows)} sources in {time.perf_counter() - started:.1f} s; pictures in {out}/")
    lines.append("pixel%: released SqueezeSeg pixels our HDL-64E model reproduces; car IoU%: labels carried")
    lines.append("through the range image and back to every point, scored against the originals.")
    report = "\n".join(lines)
    print(report)
    (out / "summary.txt").write_text(report + "\n")
    return 0
