"""Label-free check of distilled networks: how closely each labels unlabelled real scans as the teacher does.

    python3 scripts/teacher_agreement.py STUDENT.pt [STUDENT.pt ...] --scans DIR [DIR ...] \
        [--teacher perception_ws/models/weights/default.pt] [--sensor hdl64e] [--columns 2048] [--classes kitti3]

Each DIR (a folder of scans, as ``perception train --target`` reads) is projected to full-turn range images; use
scans the students were not distilled on. Prints, per folder and student, the share of pixels with the teacher's
label and the per-class IoU / precision / recall against the teacher's labels (training/teacher_agreement.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from perception_ws.adapt.target import TargetScans
from perception_ws.labels import get_class_set
from perception_ws.models.segmenter import RangeSegmenter
from perception_ws.models.weights import load_weights
from perception_ws.training.teacher_agreement import object_scores, teacher_agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("students", type=Path, nargs="+")
    parser.add_argument("--scans", type=Path, nargs="+", required=True)
    parser.add_argument("--teacher", type=Path, default=None, help="default: the shipped weights")
    parser.add_argument("--sensor", default="hdl64e")
    parser.add_argument("--columns", type=int, default=2048)
    parser.add_argument("--classes", default="kitti3", help="the networks' class set")
    args = parser.parse_args()
    teacher = load_weights(args.teacher)
    class_set = get_class_set(args.classes)
    students: dict[Path, RangeSegmenter] = {path: load_weights(path) for path in args.students}
    for folder in args.scans:
        scans = TargetScans(folder, sensor=args.sensor, columns=args.columns, crop_width=args.columns)
        images = scans.batch(range(len(scans)))
        for path, student in students.items():
            found = teacher_agreement(student, teacher, images, class_set)
            classes = "  ".join(
                f"{name} IoU {100 * s.iou:.1f} (P {100 * s.precision:.1f} R {100 * s.recall:.1f})"
                for name, s in object_scores(found, class_set).items()
            )
            print(f"{folder.name} ({found.images} scans)  {path.name}: {100 * found.pixels:.2f} % same  {classes}")


if __name__ == "__main__":
    main()
