"""How well per-class DBSCAN finds cars, per car radius: split, merged and missed cars, instance P/R/IoU, MOTA.

    .venv/bin/python benchmarks/bench_cluster_radius.py [--real ../shared/data/real] [--eps 0.3 0.5 0.7 1.0]
                                                        [--min-points 20 10] [--sim-scenes 3 5] [--sim-seconds 2]

Ground truth, per source:

- ``semantickitti``: the real scan's instance ids (points labelled car);
- ``kitti_object``: the real frames' points inside the labelled Car boxes (one instance per box);
- ``kitti_squeezeseg``: the real frames' car labels (made from 3D boxes, but without instance ids): a car
  is a connected region of car pixels in the 64 x 512 range image, pixels up to :data:`SQUEEZESEG_WINDOW`
  apart linked when within :data:`SQUEEZESEG_LINK_M` in 3D (an approximation: two cars nearer than that are
  one; a car cut in two by missing returns wider than the window is two);
- ``sim``: simulated drives (:func:`render_sequence`), the actors' instance ids; and MOTA of the
  detector (:func:`detect`, which also merges overlapping clusters) plus tracker against the ground-truth
  tracks, scored as ``tests/test_sim_sequence.py`` scores them.

A ground-truth car counts when it has at least :data:`MIN_POINTS` labelled points. Per such car,
the clusters holding at least :data:`MIN_SHARE` of its points (and 3 points) are its pieces: ``split``
when there are 2 or more, ``missed`` when none; ``merged`` when its largest piece holds as many points
of another ground-truth car as that threshold. ``split*`` and ``merged*``: the same after :func:`detect`'s
merge of clusters whose boxes overlap (what the tracker gets). Instance P/R/IoU are of the clusters
(:class:`InstanceMetrics`). The thesis' 0.3 m / minPts 20 is the baseline row.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from perception_ws.instances import (
    ClusterConfig,
    ClusterParams,
    DetectConfig,
    Tracker,
    TrackerConfig,
    clear_mot,
    cluster_by_class,
    detect,
)
from perception_ws.instances.box_fit import fit_box
from perception_ws.instances.merge import merged_groups
from perception_ws.io import load
from perception_ws.io.kitti import load_object_frame
from perception_ws.labels import KITTI3
from perception_ws.metrics import InstanceMetrics

MIN_POINTS = 50
MIN_SHARE = 0.1
SQUEEZESEG_LINK_M = 0.5
SQUEEZESEG_WINDOW = 2  # pixels: a beam or two lost through a window does not cut a car in two
EVAL_RANGE_M = 40.0
#: whole-config MOTA rows: every class at the thesis' values, the earlier hand-set simulation settings, the defaults
WHOLE_CONFIGS = {
    "thesis: 0.3/20 for every class": ClusterConfig.thesis(),
    "car 1.0/10, pedestrian 0.4/10, else 0.5/10": ClusterConfig(
        ClusterParams(0.5, 10), {"car": ClusterParams(1.0, 10), "pedestrian": ClusterParams(0.4, 10)}
    ),
    "car 0.7/10, else 0.5/10": ClusterConfig(ClusterParams(0.5, 10), {"car": ClusterParams(0.7, 10)}),
    "car 0.5/10, else 0.5/10": ClusterConfig(ClusterParams(0.5, 10), {"car": ClusterParams(0.5, 10)}),
}


@dataclass
class Frame:
    xyz: np.ndarray
    labels: np.ndarray  # KITTI-3
    instances: np.ndarray  # ground-truth instance per point (0: none)


@dataclass
class Tally:
    cars: int = 0
    split: int = 0
    merged: int = 0
    missed: int = 0

    def add(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """``gt``/``pred``: instance ids of the car-labelled points (0: none)."""
        ids, sizes = np.unique(gt[gt > 0], return_counts=True)
        for car, size in zip(ids, sizes, strict=True):
            if size < MIN_POINTS:
                continue
            self.cars += 1
            clusters, share = np.unique(pred[(gt == car) & (pred > 0)], return_counts=True)
            pieces = clusters[share >= max(3, MIN_SHARE * size)]
            if len(pieces) == 0:
                self.missed += 1
                continue
            self.split += len(pieces) > 1
            main = clusters[np.argmax(share)]
            others = gt[(pred == main) & (gt != car) & (gt > 0)]
            if len(others):
                _, other_sizes = np.unique(others, return_counts=True)
                self.merged += bool(np.any(other_sizes >= max(3, MIN_SHARE * size)))


def squeezeseg_instances(scan_pixels: np.ndarray, xyz: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Approximate object instances of a SqueezeSeg frame (see the module doc), numbered over all classes."""
    out = np.zeros(len(labels), dtype=np.int64)
    for cls in np.unique(labels[labels > 0]):
        members = np.flatnonzero(labels == cls)
        out[members] = _components(scan_pixels[members], xyz[members]) + out.max()
    return out


def _components(scan_pixels: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """1-based region of each pixel of one class."""
    car = np.arange(len(xyz))
    w = SQUEEZESEG_WINDOW
    grid = np.full((64 + 2 * w, 512 + 2 * w), -1, dtype=np.int64)  # a border of empty pixels: plain shifts
    grid[scan_pixels[car, 0] + w, scan_pixels[car, 1] + w] = np.arange(len(car))
    rows, cols = [], []
    a = grid[w : 64 + w, w : 512 + w]
    for dr, dc in ((dr, dc) for dr in range(w + 1) for dc in range(-w, w + 1) if dr > 0 or dc > 0):
        b = grid[w + dr : 64 + w + dr, w + dc : 512 + w + dc]
        both = (a >= 0) & (b >= 0)
        i, j = a[both], b[both]
        near = np.linalg.norm(xyz[car[i]] - xyz[car[j]], axis=1) < SQUEEZESEG_LINK_M
        rows.append(i[near])
        cols.append(j[near])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(len(car), len(car)))
    _, component = connected_components(graph, directed=False)
    return np.asarray(component, dtype=np.int64) + 1


def real_frames(root: Path) -> dict[str, list[Frame]]:
    sk = load(root / "semantickitti" / "000000.bin")
    assert sk.labels is not None and sk.instances is not None
    sources = {"semantickitti": [Frame(sk.xyz, sk.labels, sk.instances.astype(np.int64))]}
    objects = []
    for frame in ("000000", "000001", "000002"):
        scan = load_object_frame(root / "kitti_object", frame)
        assert scan.labels is not None and scan.instances is not None
        objects.append(Frame(scan.xyz, scan.labels, scan.instances.astype(np.int64)))
    sources["kitti_object"] = objects
    squeeze = []
    for path in sorted((root / "kitti_squeezeseg").glob("*.npy")):
        scan = load(path)
        assert scan.labels is not None and scan.pixels is not None
        squeeze.append(Frame(scan.xyz, scan.labels, squeezeseg_instances(scan.pixels, scan.xyz, scan.labels)))
    sources["kitti_squeezeseg"] = squeeze
    return sources


def config_for(name: str, eps: float, min_points: int) -> ClusterConfig:
    """The measured clustering settings with class ``name`` set to ``eps`` / ``min_points``."""
    base = ClusterConfig.measured()
    return ClusterConfig(base.default, {**base.per_class, name: ClusterParams(eps, min_points)})


def box_merged(xyz: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``pred`` (one class) after :func:`detect`'s merge of clusters whose boxes overlap (merge.py)."""
    members = np.flatnonzero(pred > 0)
    order = members[np.argsort(pred[members], kind="stable")]
    groups = np.split(order, np.unique(pred[order], return_index=True)[1][1:])
    if len(groups) < 2:
        return pred
    boxes = [fit_box(xyz[g], DetectConfig().box_method) for g in groups]
    out = np.zeros_like(pred)
    for k, group in enumerate(merged_groups(groups, boxes, DetectConfig().merge_overlap)):
        out[group] = k + 1
    return out


def score(frames: list[Frame], config: ClusterConfig, name: str) -> tuple[Tally, Tally, str]:
    cls = KITTI3.id_of(name)
    tally, after, metrics = Tally(), Tally(), InstanceMetrics(KITTI3, [cls])
    for f in frames:
        pred = cluster_by_class(f.xyz, f.labels, KITTI3, config, classes=[name])
        member = f.labels == cls
        tally.add(np.where(member, f.instances, 0), np.where(member, pred, 0))
        after.add(np.where(member, f.instances, 0), box_merged(f.xyz, np.where(member, pred, 0)))
        metrics.update(f.labels, np.where(member, f.instances, 0), np.where(pred > 0, cls, 0), pred)
    s = metrics.scores()[name]
    return tally, after, f"{s.precision:5.3f} {s.recall:5.3f} {s.iou:5.3f}"


def sim_drives(scenes: list[int], seconds: float) -> Iterator[list]:  # type: ignore[type-arg]
    from perception_ws.sim.motion.sequence import render_sequence
    from perception_ws.sim.world.generator import generate_scene

    for seed in scenes:
        scene = generate_scene(seed)
        yield list(render_sequence(scene, seconds, 10.0, backend="open3d", seed=5))


def mota(drive: list, config: DetectConfig) -> float:  # type: ignore[type-arg]
    """The detector + tracker on one drive, against its ground-truth tracks (tests/test_sim_sequence.py's rule)."""
    tracker = Tracker(TrackerConfig())
    truth, hypotheses = [], []
    for f in drive:
        boxes = detect(f.scan.xyz, f.scan.labels, KITTI3, config)
        tracks = tracker.update([f.box_to_world(b) for b in boxes], f.time_s)
        ego = f.sensor_to_world[:2, 3]
        seen = [
            t
            for t in f.tracks
            if t.label > 0 and t.num_points >= 10 and np.linalg.norm(t.box_sensor.center[:2]) <= EVAL_RANGE_M
        ]
        truth.append({t.instance: t.box_world.center[:2] for t in seen})
        hypotheses.append(
            {b.track_id: b.center[:2] for b in tracks if np.linalg.norm(b.center[:2] - ego) <= EVAL_RANGE_M}
        )
    return clear_mot(truth, hypotheses, threshold_m=2.0).mota


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/real")
    parser.add_argument("--class", dest="name", default="car", help="the KITTI-3 class scored: car or pedestrian")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.3, 0.5, 0.7, 1.0])
    parser.add_argument("--min-points", type=int, nargs="+", default=[20, 10])
    parser.add_argument("--sim-scenes", type=int, nargs="*", default=[3, 5])
    parser.add_argument("--sim-seconds", type=float, default=2.0)
    args = parser.parse_args()
    sources = real_frames(args.real)
    drives = list(sim_drives(args.sim_scenes, args.sim_seconds))
    sources["sim"] = [Frame(f.scan.xyz, f.scan.labels, f.scan.instances.astype(np.int64)) for d in drives for f in d]
    print(f"class {args.name}; the other classes at the defaults: {DetectConfig().cluster}")
    header = f"{'source':17s} {'frames':>6s} {'eps':>4s} {'minPts':>6s} {'objs':>5s} {'split':>5s} {'merged':>6s} "
    header += f"{'missed':>6s} {'split*':>6s} {'merged*':>7s}  {'P':>5s} {'R':>5s} {'IoU':>5s}"
    header += f"  MOTA (sim scenes {args.sim_scenes})"
    print(header)
    print("-" * len(header))
    for name, frames in sources.items():
        for min_points in args.min_points:
            for eps in args.eps:
                config = config_for(args.name, eps, min_points)
                tally, after, pri = score(frames, config, args.name)
                mota_cell = (
                    " ".join(f"{mota(d, DetectConfig(cluster=config)):.3f}" for d in drives) if name == "sim" else ""
                )
                base = " (thesis)" if (eps, min_points) == (0.3, 20) else ""
                print(
                    f"{name:17s} {len(frames):6d} {eps:4.1f} {min_points:6d} {tally.cars:5d} {tally.split:5d} "
                    f"{tally.merged:6d} {tally.missed:6d} {after.split:6d} {after.merged:7d}  {pri}  {mota_cell}{base}"
                )
    print("\nMOTA of whole configurations on the simulated drives:")
    for label, config in {**WHOLE_CONFIGS, "defaults (DetectConfig())": DetectConfig().cluster}.items():
        print(f"  {label:50s} " + " ".join(f"{mota(d, DetectConfig(cluster=config)):.3f}" for d in drives))


if __name__ == "__main__":
    main()
