"""Regenerate the pictures of the sample scans of sensors with their own shipped weights, labelled before (the
HDL-64E default weights, top) and after (the sensor's own weights, bottom): the scans have no labels, so a
picture is what there is.

    .venv/bin/python docs/images/make_adapted_sensors.py [REAL_DATA_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from perception_ws.config import PipelineConfig
from perception_ws.labelling.predict_view import compose_prediction, save_small_copy, save_stacked
from perception_ws.models.weights import DEFAULT_WEIGHTS, shipped_weights
from perception_ws.schema import schema_from_flat

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[2] / "shared" / "data" / "real"
#: sample folder in the real data -> the sensor it was recorded with (the VLP-32C has no shipped weights yet:
#: docs/algorithms.md §5 says why)
SCANS = {"vlp16": "vlp16"}


def picture(scan: Path, sensor: str, out: Path) -> None:
    """``scan`` with the default weights above the sensor's own weights."""
    figures = []
    for weights in (DEFAULT_WEIGHTS, shipped_weights(sensor)):
        flat = {"sensor.model": sensor, "segmenter.weights": str(weights)}
        config = schema_from_flat(PipelineConfig, flat, "make_adapted_sensors")
        figure = compose_prediction(scan, config, 0, sensor)[0]
        title = figure.figure._suptitle  # type: ignore[attr-defined]  # matplotlib keeps it there
        title.set_text(f"weights/{weights.name}: {title.get_text()}")  # before or after, in the picture itself
        figure.figure.canvas.draw()  # the title changed after the first draw
        figures.append(figure)
    with tempfile.TemporaryDirectory() as scratch:
        full = save_stacked(figures, Path(scratch) / out.name)
        save_small_copy(full, out)
    print(f"{out}: {out.stat().st_size // 1024} KiB")


def main(data: Path) -> None:
    for folder, sensor in SCANS.items():
        scan = sorted((data / folder).glob("*.pcd"))[0]  # the folder also holds the recording's other files
        picture(scan, sensor, HERE / f"{sensor}_adapted.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA)
