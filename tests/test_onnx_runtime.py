"""`segmenter.runtime: onnxruntime | openvino`: the exported segmenter labels real scans as torch does, and a
config that does not fit the file is refused in one line before any scan.

One fixed-size 64 x 512 export of the shipped weights (conftest.front_onnx, about 20 s on 2 loaded cores) serves
the module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from perception_ws.config import ConfigError, PipelineConfig
from perception_ws.errors import WeightsError
from perception_ws.io import load
from perception_ws.models.onnx_segmenter import OnnxSegmenter
from perception_ws.pipeline import Pipeline

pytestmark = pytest.mark.real_data

#: the node's front preset: a 90 degree, 64 x 512 range image of the HDL-64E
FRONT = {"sensor.model": "hdl64e", "sensor.fov_deg": 90.0, "sensor.width": 512, "segmenter.compile": False}
SCANS = ("kitti_squeezeseg/2011_09_26_0001_0000000040.npy", "kitti_object/velodyne/000002.bin")


def front_config(**changes: object) -> PipelineConfig:
    return PipelineConfig().replace(**{**FRONT, **changes})


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_export_labels_real_scans_as_torch_does(runtime: str, front_onnx: Path, real_data: Path) -> None:
    torch_pipeline = Pipeline(front_config(**{"segmenter.precision": "fp32"}))
    exported = {"segmenter.runtime": runtime, "segmenter.onnx": str(front_onnx), "segmenter.threads": 1}
    ort_pipeline = Pipeline(front_config(**exported))
    assert isinstance(ort_pipeline.segmenter, OnnxSegmenter)
    assert runtime in ort_pipeline.segmenter.summary.lower()
    assert ort_pipeline.segmenter.summary.endswith("fp32")
    for name in SCANS:
        points = load(real_data / name).points
        ours, reference = ort_pipeline.process(points, 0.0), torch_pipeline.process(points, 0.0)
        assert reference.labels.any(), name  # the scan has objects in front: the comparison means something
        same = float(np.mean(ours.labels == reference.labels))
        assert same >= 0.999, (name, same)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_exported_runtimes_load_no_torch(runtime: str, front_onnx: Path, real_data: Path) -> None:
    """Run in a fresh interpreter: this one has torch loaded by the export."""
    import subprocess

    code = (
        "import sys; from perception_ws.config import PipelineConfig; from perception_ws.pipeline import Pipeline; "
        "from perception_ws.io import load; "
        f"p = Pipeline(PipelineConfig().replace(**{dict(FRONT, **{'segmenter.runtime': runtime})!r}, "
        f"**{{'segmenter.onnx': {str(front_onnx)!r}}})); "
        f"p.process(load({str(real_data / SCANS[1])!r}).points, 0.0); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_an_exported_runtime_without_a_file_is_refused_in_one_line(runtime: str) -> None:
    with pytest.raises(ConfigError, match=rf"segmenter\.runtime = '{runtime}' needs segmenter\.onnx"):
        front_config(**{"segmenter.runtime": runtime})
    with pytest.raises(ConfigError, match=rf"'{runtime}' runs on the CPU, but segmenter\.device = 'cuda'"):
        front_config(**{"segmenter.runtime": runtime, "segmenter.onnx": "x.onnx", "segmenter.device": "cuda"})


def test_an_export_of_another_size_is_refused_naming_both(front_onnx: Path) -> None:
    config = front_config(**{"segmenter.runtime": "onnxruntime", "segmenter.onnx": str(front_onnx)})
    with pytest.raises(ConfigError, match=r"takes 64 rows and width 512, but .* sensor\.width is 1024"):
        Pipeline(config.replace(**{"sensor.width": 1024}))
    with pytest.raises(ConfigError, match=r"64 rows .* sensor vlp16 has 16 beams"):
        Pipeline(config.replace(**{"sensor.model": "vlp16"}))
    with pytest.raises(ConfigError, match=r"predicts 4 classes but class_set"):
        Pipeline(config.replace(**{"class_set": "semantickitti"}))


def test_a_changed_file_is_refused(front_onnx: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed.onnx"
    changed.write_bytes(front_onnx.read_bytes() + b"\0")
    (tmp_path / "changed.onnx.json").write_text(Path(f"{front_onnx}.json").read_text())
    config = front_config(**{"segmenter.runtime": "onnxruntime", "segmenter.onnx": str(changed)})
    with pytest.raises(WeightsError, match="sha256 differs from its manifest"):
        Pipeline(config)
