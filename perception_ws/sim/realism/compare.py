"""The realism report: simulated against real HDL-64E scans on four statistics (``perception sim compare``).

Both sides are measured the same way, on full-turn range images (:mod:`perception_ws.sim.realism.real_views`,
64 x 2048; a front-view frame counts only in the columns it covers), and pooled over their frames:

==================  ==============================================================================
statistic           how it is judged ("within a factor of 2 of the real scans")
==================  ==============================================================================
row occupancy       share of valid pixels in each of the 64 rows; the worst ratio sim/real (or
                    real/sim) over all rows must be <= 2
range histogram     share of valid pixels per range bin (edges :data:`RANGE_EDGES`); the worst
                    ratio over the bins holding >= 1 % of the real pixels must be <= 2
points per car      per distance bin (:data:`CAR_DISTANCE_EDGES`, distance = median horizontal
                    range of the car's points), the median number of points of the cars there; the
                    worst ratio over the bins with >= 3 cars on both sides must be <= 2 (and at
                    least one bin must be judged)
intensity histogram share of points per intensity bin (tenths of 0..1); the worst ratio over the
                    bins holding >= 1 % of the real points must be <= 2 (a side without intensity
                    fails)
==================  ==============================================================================

Real cars: points of the ``car`` class with an instance id (SemanticKITTI labels, points inside the
KITTI object boxes); frames with labels but no instances (SqueezeSeg's) get their cars by
clustering: car pixels joined to their neighbours in the range image (8-neighbourhood, plus one
skipped column) when their ranges differ by less than :data:`CAR_LINK_M`.

:func:`compare` returns the :class:`Report`; :meth:`Report.table` prints it,
:func:`render_report` draws the PNG (four panels, real against sim) and :meth:`Report.to_json`
gives the numbers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from perception_ws.errors import PerceptionError
from perception_ws.io.atomic import atomic_file
from perception_ws.labels import KITTI3
from perception_ws.scan import Scan
from perception_ws.sim.realism.real_views import RangeView

FACTOR = 2.0
RANGE_EDGES = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0)
INTENSITY_EDGES = tuple(float(e) for e in np.linspace(0.0, 1.0, 11))
CAR_DISTANCE_EDGES = (0.0, 10.0, 20.0, 30.0, 50.0, 80.0)
#: a histogram bin is judged when it holds at least this share of the real samples.
MIN_SHARE = 0.01
#: a distance bin is judged when both sides have at least this many cars in it.
MIN_CARS = 3
#: a car counts when it has at least this many points: fewer are fragments (a few pixels of a car hidden
#: behind others), which pixel clustering of real frames splits off where instance ids would not.
MIN_CAR_POINTS = 5
#: two car pixels at most :data:`LINK_ROWS` rows and :data:`LINK_COLUMNS` columns apart belong to one car
#: when their points are closer than this (metres): windows and dark paint leave holes in real cars.
CAR_LINK_M = 0.7
LINK_ROWS, LINK_COLUMNS = 3, 8
# the forward half of the neighbourhood window (each pair of pixels is looked at once)
_LINK_OFFSETS = [
    (dr, dc) for dr in range(LINK_ROWS + 1) for dc in range(-LINK_COLUMNS, LINK_COLUMNS + 1) if dr > 0 or dc > 0
]
CAR = KITTI3.id_of("car")


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statistics:
    """The four statistics of a set of frames, as pooled counts."""

    frames: int
    row_valid: np.ndarray  # (H,) valid pixels per row, over the seen columns of every frame
    row_seen: np.ndarray  # (H,) pixels per row that the frames cover
    range_counts: np.ndarray  # (len(RANGE_EDGES) - 1,) valid pixels per range bin
    intensity_counts: np.ndarray  # (len(INTENSITY_EDGES) - 1,) points per intensity bin
    has_intensity: bool
    cars: np.ndarray  # (K, 2) float: distance (m), points of each car

    @property
    def occupancy(self) -> np.ndarray:
        return np.asarray(self.row_valid / np.maximum(self.row_seen, 1))


def measure(views: Iterable[RangeView]) -> Statistics:
    """Pool the statistics of ``views`` (real or simulated alike)."""
    frames = 0
    row_valid = row_seen = None
    range_counts = np.zeros(len(RANGE_EDGES) - 1, dtype=np.int64)
    intensity_counts = np.zeros(len(INTENSITY_EDGES) - 1, dtype=np.int64)
    has_intensity = False
    cars: list[np.ndarray] = []
    for view in views:
        frames += 1
        valid = view.valid & view.seen[None, :]
        if row_valid is None or row_seen is None:
            row_valid = np.zeros(valid.shape[0], dtype=np.int64)
            row_seen = np.zeros(valid.shape[0], dtype=np.int64)
        row_valid += valid.sum(axis=1)
        row_seen += int(view.seen.sum())
        range_counts += np.histogram(view.range[valid], bins=RANGE_EDGES)[0]
        intensity = view.scan.field("intensity")
        if intensity is not None:
            has_intensity |= bool(np.any(intensity > 0))
            intensity_counts += np.histogram(np.clip(intensity, 0.0, 1.0), bins=INTENSITY_EDGES)[0]
        cars.append(car_sizes(view.scan))
    if row_valid is None or row_seen is None:
        raise PerceptionError("realism report: no frames to measure")
    return Statistics(
        frames, row_valid, row_seen, range_counts, intensity_counts, has_intensity, np.concatenate(cars, axis=0)
    )


def car_sizes(scan: Scan) -> np.ndarray:
    """(K, 2): distance (median horizontal range of its points) and point count of each car in ``scan``."""
    if scan.labels is None:
        return np.zeros((0, 2))
    car = np.asarray(scan.labels) == CAR
    if scan.instances is not None:
        instance = np.where(car, np.asarray(scan.instances), 0)
    elif scan.pixels is not None and scan.range_image is not None:
        instance = _cluster_car_pixels(scan, car)
    else:
        return np.zeros((0, 2))
    keep = instance > 0
    ids, group, counts = np.unique(instance[keep], return_inverse=True, return_counts=True)
    if len(ids) == 0:
        return np.zeros((0, 2))
    distance = np.hypot(scan.points["x"][keep], scan.points["y"][keep]).astype(np.float64)
    order = np.lexsort((distance, group))  # by car, then by distance within the car
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    median = distance[order][starts + (counts - 1) // 2]
    cars = np.stack([median, counts.astype(np.float64)], axis=1)
    return cars[counts >= MIN_CAR_POINTS]


def _cluster_car_pixels(scan: Scan, car: np.ndarray) -> np.ndarray:
    """Instance ids (1..K) for the car points of a range-image scan, 0 elsewhere (see the module doc)."""
    assert scan.pixels is not None and scan.range_image is not None
    height, width = scan.range_image.shape[:2]
    index = np.full((height, width), -1, dtype=np.int64)
    points = np.flatnonzero(car)
    rows, cols = scan.pixels[points, 0], scan.pixels[points, 1]
    index[rows, cols] = np.arange(len(points))
    xyz = scan.xyz[points].astype(np.float64)
    sources, targets = [], []
    for dr, dc in _LINK_OFFSETS:
        r2, c2 = rows + dr, cols + dc
        inside = (r2 < height) & (c2 >= 0) & (c2 < width)
        other = np.full(len(points), -1, dtype=np.int64)
        other[inside] = index[r2[inside], c2[inside]]
        linked = np.flatnonzero(other >= 0)
        near = np.linalg.norm(xyz[linked] - xyz[other[linked]], axis=1) < CAR_LINK_M
        sources.append(linked[near])
        targets.append(other[linked[near]])
    src, dst = np.concatenate(sources), np.concatenate(targets)
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(len(points), len(points)))
    _, component = connected_components(graph, directed=False)
    instance = np.zeros(len(scan), dtype=np.int64)
    instance[points] = component + 1
    return instance


# -- judging -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One statistic: the worst ratio between the sides over the judged bins, and whether it is <= 2."""

    name: str
    factor: float  # max over judged bins of max(sim/real, real/sim); inf when it cannot be judged
    passed: bool
    worst: str  # which bin gave the factor
    rule: str
    edges: list[float]
    real: list[float]
    sim: list[float]
    judged: list[bool]


def _factor(real: np.ndarray, sim: np.ndarray, judged: np.ndarray) -> tuple[float, int]:
    """Worst symmetric ratio over the judged bins, and its bin (-1 when none is judged)."""
    if not np.any(judged):
        return float("inf"), -1
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(judged, np.maximum(sim / real, real / sim), 0.0)
    ratio = np.where(judged & ~np.isfinite(ratio), np.inf, ratio)
    worst = int(np.argmax(ratio))
    return float(ratio[worst]), worst


def _verdict(
    name: str,
    rule: str,
    edges: Sequence[float] | np.ndarray,
    real: np.ndarray,
    sim: np.ndarray,
    judged: np.ndarray,
    unit: str,
) -> Verdict:
    factor, worst = _factor(real, sim, judged)
    where = "no bin could be judged" if worst < 0 else f"{unit} {_bin_text(edges, worst)}"
    return Verdict(
        name,
        factor,
        bool(factor <= FACTOR),
        where,
        rule,
        [float(e) for e in edges],
        [float(v) for v in real],
        [float(v) for v in sim],
        [bool(j) for j in judged],
    )


def _bin_text(edges: Sequence[float] | np.ndarray, i: int) -> str:
    if len(edges) == 0:
        return str(i)
    return f"{edges[i]:g}-{edges[i + 1]:g}"


def _share(counts: np.ndarray) -> np.ndarray:
    return counts / max(int(counts.sum()), 1)


def car_medians(cars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median points per car and number of cars in each distance bin (NaN median where a bin is empty)."""
    edges = np.asarray(CAR_DISTANCE_EDGES)
    which = np.digitize(cars[:, 0], edges) - 1 if len(cars) else np.zeros(0, dtype=int)
    medians = np.full(len(edges) - 1, np.nan)
    numbers = np.zeros(len(edges) - 1, dtype=np.int64)
    for b in range(len(edges) - 1):  # a handful of bins
        inside = cars[which == b, 1] if len(cars) else np.zeros(0)
        numbers[b] = len(inside)
        if len(inside):
            medians[b] = float(np.median(inside))
    return medians, numbers


def judge(real: Statistics, sim: Statistics) -> list[Verdict]:
    """The four verdicts (see the module doc for the rules)."""
    if len(real.row_valid) != len(sim.row_valid):
        raise PerceptionError(
            f"realism report: real scans have {len(real.row_valid)} rows, simulated ones {len(sim.row_valid)}"
        )
    rows = np.arange(len(real.row_valid) + 1, dtype=float)
    verdicts = [
        _verdict(
            "row occupancy",
            "worst ratio of the valid-pixel share over all rows",
            rows,
            real.occupancy,
            sim.occupancy,
            np.ones(len(real.row_valid), dtype=bool),
            "row",
        )
    ]
    real_range, sim_range = _share(real.range_counts), _share(sim.range_counts)
    verdicts.append(
        _verdict(
            "range histogram",
            f"worst ratio of the pixel share per range bin, bins with >= {MIN_SHARE:.0%} of the real pixels",
            RANGE_EDGES,
            real_range,
            sim_range,
            real_range >= MIN_SHARE,
            "range (m)",
        )
    )
    real_med, real_n = car_medians(real.cars)
    sim_med, sim_n = car_medians(sim.cars)
    verdicts.append(
        _verdict(
            "points per car",
            f"worst ratio of the median points per car per distance bin, bins with >= {MIN_CARS} cars on both sides",
            CAR_DISTANCE_EDGES,
            real_med,
            sim_med,
            (real_n >= MIN_CARS) & (sim_n >= MIN_CARS),
            "distance (m)",
        )
    )
    real_int = _share(real.intensity_counts) if real.has_intensity else np.zeros(len(INTENSITY_EDGES) - 1)
    sim_int = _share(sim.intensity_counts) if sim.has_intensity else np.zeros(len(INTENSITY_EDGES) - 1)
    verdicts.append(
        _verdict(
            "intensity histogram",
            f"worst ratio of the point share per intensity bin, bins with >= {MIN_SHARE:.0%} of the real points",
            INTENSITY_EDGES,
            real_int,
            sim_int,
            real_int >= MIN_SHARE,
            "intensity",
        )
    )
    return verdicts


@dataclass(frozen=True)
class Report:
    """Both sides' statistics, one verdict per test and notes: the realism report."""

    real: Statistics
    sim: Statistics
    verdicts: list[Verdict]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    def table(self) -> str:
        """The verdicts as a text table."""
        lines = [
            f"realism: {self.sim.frames} simulated vs {self.real.frames} real frames "
            f"({len(self.sim.cars)} vs {len(self.real.cars)} cars); pass = within a factor of {FACTOR:g}",
            f"{'statistic':22s} {'factor':>7s}  {'result':6s} worst bin",
        ]
        for v in self.verdicts:
            lines.append(f"{v.name:22s} {v.factor:7.2f}  {'pass' if v.passed else 'FAIL':6s} {v.worst}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        def side(s: Statistics) -> dict[str, Any]:
            return {"frames": s.frames, "cars": len(s.cars), "has_intensity": s.has_intensity}

        return {
            "factor_limit": FACTOR,
            "passed": self.passed,
            "real": side(self.real),
            "sim": side(self.sim),
            "statistics": [
                {**dataclasses.asdict(v), "factor": v.factor if np.isfinite(v.factor) else None} for v in self.verdicts
            ],
            "cars": {"real": self.real.cars.tolist(), "sim": self.sim.cars.tolist()},
            "notes": self.notes,
        }


def compare(real: Iterable[RangeView], sim: Iterable[RangeView], notes: Sequence[str] = ()) -> Report:
    """Measure real and simulated views alike and judge them against each other."""
    real_stats, sim_stats = measure(real), measure(sim)
    return Report(real_stats, sim_stats, judge(real_stats, sim_stats), list(notes))


def json_text(report: Report) -> str:
    """The report's numbers as JSON text (NaN, an empty car bin, and inf become null)."""
    return json.dumps(_finite(report.to_json()), indent=1)


def write_json(report: Report, path: str | Path) -> Path:
    """Write the report's JSON (see :func:`json_text`) atomically to ``path``; the path written."""
    target = Path(path)
    with atomic_file(target) as handle:
        handle.write(json_text(report).encode())
    return target


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# -- the picture -------------------------------------------------------------------------------


def render_report(report: Report, path: str | Path) -> Path:
    """A PNG with one panel per statistic, real against simulated, each titled with its verdict."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 9.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    real_style = {"color": "#1f4e9c", "label": f"real ({report.real.frames} frames)"}
    sim_style = {"color": "#d9652b", "label": f"simulated ({report.sim.frames} frames)"}
    by_name = {v.name: v for v in report.verdicts}

    def title(ax: Any, name: str) -> None:
        v = by_name[name]
        verdict = "PASS" if v.passed else "FAIL"
        ax.set_title(f"{name}: factor {v.factor:.2f} ({verdict}; worst {v.worst})", fontsize=10)

    ax = axes[0, 0]
    rows = np.arange(len(report.real.occupancy))
    ax.plot(rows, report.real.occupancy, **real_style)
    ax.plot(rows, report.sim.occupancy, **sim_style)
    ax.set_xlabel("row (0 = top beam)")
    ax.set_ylabel("share of valid pixels")
    ax.set_ylim(0, 1.02)
    title(ax, "row occupancy")

    _histogram_panel(axes[0, 1], by_name["range histogram"], real_style, sim_style, "range (m)")
    title(axes[0, 1], "range histogram")

    ax = axes[1, 0]
    for cars, style in ((report.real.cars, real_style), (report.sim.cars, sim_style)):
        if len(cars):
            ax.scatter(cars[:, 0], cars[:, 1], s=10, alpha=0.45, color=style["color"])
    v = by_name["points per car"]
    centres = (np.asarray(v.edges[:-1]) + np.asarray(v.edges[1:])) / 2
    ax.plot(centres, v.real, "o-", **real_style)
    ax.plot(centres, v.sim, "s--", **sim_style)
    ax.set_yscale("log")
    ax.set_xlabel("distance of the car (m); lines: median per distance bin")
    ax.set_ylabel("points per car")
    title(ax, "points per car")

    _histogram_panel(axes[1, 1], by_name["intensity histogram"], real_style, sim_style, "intensity")
    title(axes[1, 1], "intensity histogram")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    verdict = "all within" if report.passed else "NOT all within"
    fig.suptitle(f"simulated vs real HDL-64E scans: {verdict} a factor of {FACTOR:g}", fontsize=13)
    fig.tight_layout()
    target = Path(path)
    with atomic_file(target) as handle:
        fig.savefig(handle, format="png")
    return target


def _histogram_panel(ax: Any, v: Verdict, real_style: dict[str, Any], sim_style: dict[str, Any], xlabel: str) -> None:
    edges = np.asarray(v.edges)
    ax.stairs(v.real, edges, linewidth=2, **real_style)
    ax.stairs(v.sim, edges, linewidth=2, linestyle="--", **sim_style)
    judged = np.asarray(v.judged)
    for i in np.flatnonzero(~judged):  # grey out the bins that are not judged
        ax.axvspan(edges[i], edges[i + 1], color="0.9", zorder=0)
    ax.set_xlabel(f"{xlabel} (grey: not judged)")
    ax.set_ylabel("share")
