"""``segmenter.projection: device``: the torch projection equals the numpy/numba one on real scans (pixels, image,
labels back to points), the pipeline gives the default's labels, and bad combinations are refused. On CPU torch:
the same code runs on a GPU."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.config import PipelineConfig
from perception_ws.device_projection import project_on_device
from perception_ws.device_runtime import PinnedTransfers
from perception_ws.errors import ProjectionError
from perception_ws.io import load
from perception_ws.pipeline import Pipeline
from perception_ws.projection import project
from perception_ws.schema import ConfigError

CPU = PinnedTransfers(torch.device("cpu"))


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("path", "sensor", "kwargs"),
    [
        ("kitti_object/velodyne/000001.bin", "hdl64e", {"fov_deg": 360.0, "width": 2048}),
        ("kitti_object/velodyne/000002.bin", "hdl64e", {"fov_deg": 90.0, "width": 512}),
        ("kitti_odometry_00/000094.bin", "hdl64e", {"fov_deg": 360.0, "width": 2048, "row_source": "order"}),
        ("vlp32/1713492677464078412.pcd", "vlp32c", {"fov_deg": 360.0, "width": 1800}),
    ],
)
def test_device_projection_equals_the_host_projection_on_real_scans(
    real_data: Path, path: str, sensor: str, kwargs: dict
) -> None:
    scan = load(real_data / path)
    host = project(scan, sensor, **kwargs)
    device = project_on_device(scan, CPU, sensor, **kwargs)
    np.testing.assert_array_equal(device.rows.numpy(), host.rows)
    np.testing.assert_array_equal(device.cols.numpy(), host.cols)
    np.testing.assert_array_equal(device.owner.numpy(), host.owner)
    np.testing.assert_array_equal(device.image.numpy(), host.image)
    hidden = (host.rows >= 0) & (
        host.owner.reshape(-1)[np.maximum(host.rows * host.width + host.cols, 0)] != np.arange(len(host.rows))
    )
    assert hidden.sum() > 1000  # the nearest-owner search has work to do
    np.testing.assert_array_equal(device.source_pixels.numpy(), host.source_pixels)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (host.height, host.width))
    values = rng.random((host.height, host.width), dtype=np.float32)
    np.testing.assert_array_equal(
        device.labels_to_points(torch.from_numpy(labels)).numpy(), host.labels_to_points(labels)
    )
    np.testing.assert_array_equal(
        device.pixel_values_to_points(torch.from_numpy(values)).numpy(), host.pixel_values_to_points(values)
    )


def test_nearest_owner_search_beyond_its_windows_equals_the_k_d_tree() -> None:
    """Points close to the sensor, where no window of columns can bound the nearest owner: the brute-force search."""
    rng = np.random.default_rng(3)
    near = rng.normal(0.0, 0.3, (3000, 3)).astype(np.float32)  # around the sensor: wide angles between neighbours
    far = rng.uniform(-20.0, 20.0, (3000, 3)).astype(np.float32)
    cloud = np.concatenate([near, far])
    kwargs = {"fov_deg": 360.0, "width": 256}
    host = project(cloud, "vlp16", **kwargs)
    device = project_on_device(cloud, CPU, "vlp16", **kwargs)
    np.testing.assert_array_equal(device.owner.numpy(), host.owner)
    np.testing.assert_array_equal(device.source_pixels.numpy(), host.source_pixels)


def test_device_projection_refuses_what_the_host_projection_refuses() -> None:
    cloud = np.ones((10, 3), dtype=np.float32)
    with pytest.raises(ProjectionError, match="width 0: expected a positive integer"):
        project_on_device(cloud, CPU, "hdl64e", width=0)
    device = project_on_device(cloud, CPU, "hdl64e")
    with pytest.raises(ProjectionError, match=r"expected an integer tensor of shape \(64, 512\)"):
        device.labels_to_points(torch.zeros(64, 512))


@pytest.mark.real_data
def test_pipeline_with_device_projection_gives_the_default_labels(real_data: Path) -> None:
    scan = load(real_data / "kitti_object" / "velodyne" / "000000.bin")
    config = PipelineConfig()
    default = Pipeline(config).process(scan.points, 0.0)
    on_device = Pipeline(config.replace(**{"segmenter.projection": "device"})).process(scan.points, 0.0)
    assert np.count_nonzero(default.labels) > 500  # the network finds objects in this scan
    np.testing.assert_array_equal(on_device.labels, default.labels)
    np.testing.assert_array_equal(on_device.instances, default.instances)
    assert [box.label for box in on_device.detections] == [box.label for box in default.detections]
    assert {"projection", "network", "crf", "back_projection"} <= set(on_device.timings_ms)


@pytest.mark.parametrize(
    "settings",
    [
        {"segmenter.kind": "labels"},
        {"segmenter.kind": "none"},
        {"segmenter.runtime": "onnxruntime", "segmenter.onnx": "seg.onnx"},
    ],
)
def test_device_projection_needs_the_torch_network(settings: dict) -> None:
    with pytest.raises(ConfigError, match=r"segmenter\.projection = 'device' projects on the torch network's device"):
        PipelineConfig().replace(**{"segmenter.projection": "device", **settings})
    with pytest.raises(ConfigError, match=r"segmenter\.projection"):
        PipelineConfig().replace(**{"segmenter.projection": "gpu"})


@pytest.mark.real_data
def test_gpu_benchmark_runs_on_a_cpu(real_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_gpu

    data = str(real_data / "kitti_object" / "velodyne")
    quick = ["--device", "cpu", "--data", data, "--runs", "2", "--warmup", "0", "--widths", "512", "--compile", "off"]
    assert bench_gpu.main([*quick, "--parts", "a", "c", "--seconds", "0.5", "--network-precisions", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "bf16 eager" not in out  # part a timed only the precision asked for
    stage_rows = {line.split()[0]: line for line in out.splitlines() if line.split()[:1] in (["wait"], ["call"])}
    assert set(stage_rows) == {"wait", "call"}
    assert stage_rows["call"].count("/") == 4  # one p50 / p99 cell per row
    for row in (
        "CPU (no GPU); torch",
        "3 scans",
        "fp32 eager",
        "baseline",
        "10 Hz, projection cpu",
        "20 Hz, projection device",
        "where the latency goes",
    ):
        assert row in out
    with pytest.raises(SystemExit):  # max-autotune rows need a GPU: one line from the parser, not a traceback
        bench_gpu.main([*quick, "--parts", "a", "--autotune"])
    assert "--autotune needs --device cuda and a compiled network" in capsys.readouterr().err
