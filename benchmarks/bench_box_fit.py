"""Box fitting accuracy and speed: search-based (variance criterion, both signs; closeness; area),
PCA and minimum-area rectangles; the search's numba heading costs against their numpy reference.

1. Real: the KITTI object frames in data/real/kitti_object; a box is fitted to the points inside
   each ground-truth box (raw points, as the issue asks; and with the ground removed first).
2. Synthetic: 300 cars ray-cast on an HDL-64E-like grid at 5-40 m, random headings, 2 cm noise,
   >= 50 points each (only the faces turned to the sensor are seen, as on a real scan).

Reported: mean BEV IoU and mean / median heading error (degrees, modulo 180) per method, and the
time per fit. Baselines: PCA and the thesis' printed sign of the variance criterion; for speed, the
variance search with the numpy reference costs (same boxes), and a table of the heading search alone
(kernel vs reference) by cluster size.

    .venv/bin/python benchmarks/bench_box_fit.py [--data ../shared/data/real]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from perception_ws.boxes import Box3D, bev_iou
from perception_ws.instances import fit_box, ground_mask
from perception_ws.instances.box_fit import heading_costs, heading_costs_reference, heading_search, rectangle_box
from perception_ws.instances.synthetic import car_at, ray_hits
from perception_ws.io import open_dataset

REPO = Path(__file__).resolve().parents[1]

METHODS: dict[str, Callable[[np.ndarray], Box3D]] = {
    "search variance (min, Zhang)": lambda p: fit_box(p, "search", criterion="variance"),
    "search variance (max, thesis)": lambda p: rectangle_box(p, heading_search(p[:, :2], maximize_variance=True)),
    "search variance, numpy reference": lambda p: rectangle_box(
        p, heading_search(p[:, :2], costs=heading_costs_reference)
    ),
    "search closeness": lambda p: fit_box(p, "search", criterion="closeness"),
    "search area": lambda p: fit_box(p, "search", criterion="area"),
    "PCA": lambda p: fit_box(p, "pca"),
    "minimum-area rectangle": lambda p: fit_box(p, "min_area"),
}


def heading_error_deg(a: float, b: float) -> float:
    d = (a - b) % np.pi
    return float(np.degrees(min(d, np.pi - d)))


def real_objects(data: Path) -> list[tuple[str, Box3D, np.ndarray, np.ndarray]]:
    """(frame/type, truth, points inside it, the same without ground) for objects with >= 10 points."""
    objects = []
    for scan in open_dataset(data / "kitti_object"):
        xyz = scan.xyz.astype(np.float64)
        ground = ground_mask(xyz)
        for truth in scan.boxes:
            inside = truth.contains(xyz)
            if inside.sum() >= 10:
                objects.append((f"{scan.name} {truth.name}", truth, xyz[inside], xyz[inside & ~ground]))
    return objects


def synthetic_cars(count: int) -> list[tuple[Box3D, np.ndarray]]:
    rng = np.random.default_rng(11)
    cars: list[tuple[Box3D, np.ndarray]] = []
    while len(cars) < count:
        r, az, yaw = rng.uniform(5, 40), rng.uniform(-np.pi, np.pi), rng.uniform(-np.pi, np.pi)
        truth = car_at(r * np.cos(az), r * np.sin(az), yaw)
        points = ray_hits(truth, noise_m=0.02, rng=rng)
        if len(points) >= 50:
            cars.append((truth, points))
    return cars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "real")
    args = parser.parse_args()

    objects = real_objects(args.data)
    print("Real KITTI object frames: BEV IoU / heading error (deg) of a box fitted to the points inside each truth")
    names = list(METHODS)
    print(f"{'object':<20}{'points':>7}  " + "  ".join(f"{n[:22]:>22}" for n in names))
    for label, truth, inside, _ in objects:
        cells = []
        for fit in METHODS.values():
            box = fit(inside)
            cells.append(f"{bev_iou(box, truth):.2f} / {heading_error_deg(box.yaw, truth.yaw):5.1f}")
        print(f"{label:<20}{len(inside):>7}  " + "  ".join(f"{c:>22}" for c in cells))
    for subset, pick in (
        ("cars with >= 50 points", lambda o: "Car" in o[0] and len(o[2]) >= 50),
        ("all objects with >= 50 points", lambda o: len(o[2]) >= 50),
    ):
        chosen = [o for o in objects if pick(o)]
        print(f"\nmean over {subset} (n = {len(chosen)}), raw points | ground removed first:")
        for name, fit in METHODS.items():
            raw = [(bev_iou(fit(o[2]), o[1]), heading_error_deg(fit(o[2]).yaw, o[1].yaw)) for o in chosen]
            clean = [(bev_iou(fit(o[3]), o[1]), heading_error_deg(fit(o[3]).yaw, o[1].yaw)) for o in chosen]
            r, c = np.array(raw), np.array(clean)
            print(
                f"  {name:<32} IoU {r[:, 0].mean():.3f}  heading {r[:, 1].mean():5.1f} deg"
                f"  |  IoU {c[:, 0].mean():.3f}  heading {c[:, 1].mean():5.1f} deg"
            )

    cars = synthetic_cars(300)
    mean_points = np.mean([len(p) for _, p in cars])
    print(f"\nSynthetic ray-cast cars: {len(cars)} cars at 5-40 m, {mean_points:.0f} points on average")
    print(f"{'method':<32}{'mean IoU':>9}{'median IoU':>11}{'mean err':>10}{'median err':>11}{'ms / fit':>10}")
    for name, fit in METHODS.items():
        start = time.perf_counter()
        boxes = [fit(points) for _, points in cars]
        per_fit = (time.perf_counter() - start) * 1000 / len(cars)
        ious = np.array([bev_iou(b, t) for b, (t, _) in zip(boxes, cars, strict=True)])
        errors = np.array([heading_error_deg(b.yaw, t.yaw) for b, (t, _) in zip(boxes, cars, strict=True)])
        print(
            f"{name:<32}{ious.mean():>9.3f}{np.median(ious):>11.3f}{errors.mean():>10.1f}"
            f"{np.median(errors):>11.1f}{per_fit:>10.2f}"
        )
    heading_search_speed(cars)
    print("\ngoal: mean BEV IoU >= 0.75 for cars with >= 50 points (real frames)")


def heading_search_speed(cars: list[tuple[Box3D, np.ndarray]]) -> None:
    """ms per heading search (variance, 90 headings) on the first n points of each car with >= n points."""
    print("\nHeading search alone (variance, 90 headings): ms per search, and searches choosing the same heading")
    print(f"{'points':>7}{'cars':>6}{'numba kernel':>14}{'numpy reference':>17}{'speed-up':>10}{'same':>8}")
    for n in (30, 100, 250, 512):
        clouds = [points[:n, :2] for _, points in cars if len(points) >= n]
        per_search, chosen = [], []
        for costs in (heading_costs, heading_costs_reference):
            heading_search(clouds[0], costs=costs)  # the kernel compiles (or loads its cache) once
            start = time.perf_counter()
            chosen.append([heading_search(xy, costs=costs) for xy in clouds])
            per_search.append((time.perf_counter() - start) * 1000 / len(clouds))
        same = sum(a == b for a, b in zip(*chosen, strict=True))
        print(
            f"{n:>7}{len(clouds):>6}{per_search[0]:>14.3f}{per_search[1]:>17.3f}"
            f"{per_search[1] / per_search[0]:>9.1f}x{same:>5}/{len(clouds)}"
        )


if __name__ == "__main__":
    main()
