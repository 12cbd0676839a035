"""`segmenter.runtime: onnxruntime`: the exported segmenter labels real scans as torch does, and a config that
does not fit the file is refused in one line before any scan.

One fixed-size 64 x 512 export of the shipped weights (about 30 s on 2 loaded cores) serves the module.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from perception_ws.config import ConfigError, PipelineConfig
from perception_ws.errors import WeightsError
from perception_ws.io import load
from perception_ws.models.onnx_export import PACKAGES
from perception_ws.models.onnx_segmenter import OnnxSegmenter
from perception_ws.pipeline import Pipeline

pytestmark = pytest.mark.real_data

#: the node's front preset: a 90 degree, 64 x 512 range image of the HDL-64E
FRONT = {"sensor.model": "hdl64e", "sensor.fov_deg": 90.0, "sensor.width": 512, "segmenter.compile": False}
SCANS = ("kitti_squeezeseg/2011_09_26_0001_0000000040.npy", "kitti_object/velodyne/000002.bin")


@pytest.fixture(scope="module")
def onnx_file(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    for name in PACKAGES:  # the `onnx` extra, which `make venv` installs: missing, the run fails here
        importlib.import_module(name)
    from perception_ws.models.onnx_export import ExportShape, export_onnx

    out = tmp_path_factory.mktemp("ort") / "front.onnx"
    export_onnx(None, out, ExportShape(64, 512), real_data / "kitti_squeezeseg", fov_deg=90.0, frames=1)
    return out


def front_config(**changes: object) -> PipelineConfig:
    return PipelineConfig().replace(**{**FRONT, **changes})


def test_onnxruntime_labels_real_scans_as_torch_does(onnx_file: Path, real_data: Path) -> None:
    torch_pipeline = Pipeline(front_config(**{"segmenter.precision": "fp32"}))
    ort_pipeline = Pipeline(front_config(**{"segmenter.runtime": "onnxruntime", "segmenter.onnx": str(onnx_file)}))
    assert isinstance(ort_pipeline.segmenter, OnnxSegmenter)
    assert "onnxruntime" in ort_pipeline.segmenter.summary
    for name in SCANS:
        points = load(real_data / name).points
        ours, reference = ort_pipeline.process(points, 0.0), torch_pipeline.process(points, 0.0)
        assert reference.labels.any(), name  # the scan has objects in front: the comparison means something
        same = float(np.mean(ours.labels == reference.labels))
        assert same >= 0.999, (name, same)


def test_the_onnxruntime_path_loads_no_torch(onnx_file: Path, real_data: Path) -> None:
    """Run in a fresh interpreter: this one has torch loaded by the export."""
    import subprocess

    code = (
        "import sys; from perception_ws.config import PipelineConfig; from perception_ws.pipeline import Pipeline; "
        "from perception_ws.io import load; "
        f"p = Pipeline(PipelineConfig().replace(**{dict(FRONT, **{'segmenter.runtime': 'onnxruntime'})!r}, "
        f"**{{'segmenter.onnx': {str(onnx_file)!r}}})); "
        f"p.process(load({str(real_data / SCANS[1])!r}).points, 0.0); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr


def test_onnxruntime_without_a_file_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"segmenter\.runtime = 'onnxruntime' needs segmenter\.onnx"):
        front_config(**{"segmenter.runtime": "onnxruntime"})


def test_an_export_of_another_size_is_refused_naming_both(onnx_file: Path) -> None:
    config = front_config(**{"segmenter.runtime": "onnxruntime", "segmenter.onnx": str(onnx_file)})
    with pytest.raises(ConfigError, match=r"takes 64 rows and width 512, but .* sensor\.width is 1024"):
        Pipeline(config.replace(**{"sensor.width": 1024}))
    with pytest.raises(ConfigError, match=r"64 rows .* sensor vlp16 has 16 beams"):
        Pipeline(config.replace(**{"sensor.model": "vlp16"}))
    with pytest.raises(ConfigError, match=r"predicts 4 classes but class_set"):
        Pipeline(config.replace(**{"class_set": "semantickitti"}))


def test_a_changed_file_is_refused(onnx_file: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed.onnx"
    changed.write_bytes(onnx_file.read_bytes() + b"\0")
    (tmp_path / "changed.onnx.json").write_text(Path(f"{onnx_file}.json").read_text())
    config = front_config(**{"segmenter.runtime": "onnxruntime", "segmenter.onnx": str(changed)})
    with pytest.raises(WeightsError, match="sha256 differs from its manifest"):
        Pipeline(config)
