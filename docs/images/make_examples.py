"""Regenerate the README's example pictures from the real sample frames.

    .venv/bin/python docs/images/make_examples.py [REAL_DATA_DIR]

Each picture is :func:`perception_ws.viz.figure.compose_scan` of one real frame, reduced to a 256-colour
palette so that it stays small in the repository.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image

from perception_ws.calib.sensors import get_sensor
from perception_ws.io import open_dataset
from perception_ws.io.atomic import atomic_file
from perception_ws.labels import KITTI3, SEMANTIC_KITTI, ClassSet
from perception_ws.projection import project
from perception_ws.viz.figure import compose_scan

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[2] / "shared" / "data" / "real"

#: (folder, frame, output name, class set, field of view of the range image (None: the frame's own), title)
EXAMPLES: list[tuple[str, int, str, ClassSet, float | None, str]] = [
    (
        "kitti_squeezeseg",
        0,
        "squeezeseg_frame.png",
        KITTI3,
        None,
        "KITTI raw 2011_09_26_0001, frame 10, as released with SqueezeSeg (front 90°, point-wise labels)",
    ),
    (
        "kitti_object",
        0,
        "kitti_object_000000.png",
        KITTI3,
        360.0,
        "KITTI object 000000: camera overlay, ground-truth 3D box and its points, full-turn range image",
    ),
    (
        "semantickitti",
        0,
        "semantickitti_000000.png",
        SEMANTIC_KITTI,
        360.0,
        "SemanticKITTI sequence 00, scan 000000: the 19 classes",
    ),
]


def main(data: Path) -> None:
    for folder, frame, name, class_set, fov, title in EXAMPLES:
        scan = open_dataset(data / folder)[frame]
        # 512 columns per 90 degrees, as in the SqueezeSeg release.
        projection = (
            None if fov is None else project(scan, get_sensor("hdl64e"), fov_deg=fov, width=round(fov / 90 * 512))
        )
        composed = compose_scan(scan, projection, class_set, title, dpi=90)
        buffer = io.BytesIO()
        composed.figure.savefig(buffer, format="png", dpi=composed.figure.dpi)
        small = Image.open(buffer).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
        with atomic_file(HERE / name) as f:
            small.save(f, format="PNG", optimize=True)
        print(f"{HERE / name}: {composed.size[0]}x{composed.size[1]} px, {(HERE / name).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA)
