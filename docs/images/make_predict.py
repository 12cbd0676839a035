"""Regenerate the README's `perception viz --predict` picture: the shipped model on a real KITTI object frame
(front 90°, 64x512: the view the weights were trained for) above the frame's ground truth.

    .venv/bin/python docs/images/make_predict.py [REAL_DATA_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from perception_ws.config import PipelineConfig
from perception_ws.labelling.predict_view import render_prediction, save_small_copy
from perception_ws.schema import schema_from_flat

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[2] / "shared" / "data" / "real"
NAME = "kitti_object_000000_predict.png"


def main(data: Path) -> None:
    config = schema_from_flat(PipelineConfig, {"sensor.fov_deg": 90.0, "sensor.width": 512}, "make_predict")
    with tempfile.TemporaryDirectory() as scratch:
        full = render_prediction(data / "kitti_object", Path(scratch) / NAME, config, frame=0, fov_deg=90.0)
        save_small_copy(full, HERE / NAME)
    print(f"{HERE / NAME}: {(HERE / NAME).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA)
