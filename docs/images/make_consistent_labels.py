"""Regenerate docs/images/consistent_labels.png: a real KITTI object frame labelled by the shipped network, as the
network gives the labels (top, ``detection.consistent_labels: false``), as the node publishes them (middle, the
default: a car or person label only on a detection's points, people boxes within 0.8-2.3 m) and the ground
truth (bottom).

    .venv/bin/python docs/images/make_consistent_labels.py [REAL_DATA_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from perception_ws.config import PipelineConfig
from perception_ws.labelling.predict_view import compose_prediction, save_small_copy, save_stacked

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[2] / "shared" / "data" / "real"
FRAME = Path("kitti_object") / "velodyne" / "000001.bin"


def main(data: Path) -> None:
    figures = []
    for consistent, words in ((False, "the network's labels"), (True, "published (consistent labels)")):
        config = PipelineConfig().replace(**{"detection.consistent_labels": consistent})
        shown = compose_prediction(data / FRAME, config)
        title = shown[0].figure._suptitle  # type: ignore[attr-defined]  # matplotlib keeps it there
        title.set_text(f"{words}: {title.get_text()}")
        shown[0].figure.canvas.draw()  # the title changed after the first draw
        figures.append(shown[0])
        truth = shown[1:]
    figures += truth
    out = HERE / "consistent_labels.png"
    with tempfile.TemporaryDirectory() as scratch:
        full = save_stacked(figures, Path(scratch) / out.name)
        save_small_copy(full, out)
    print(f"{out}: {out.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA)
