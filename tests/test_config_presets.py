"""The shipped presets load, validate and run: config/perception_cpu_front.yaml the front view,
config/perception_cpu_360.yaml the whole turn, config/perception_gpu.yaml the whole turn on a GPU (loaded and
checked here; it runs where torch sees a GPU, which CI has not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.config import ConfigError, PerceptionConfig, load_config
from perception_ws.io import load
from perception_ws.models.network_segmenter import NetworkSegmenter
from perception_ws.nodes.launch_graph import plan_graph
from perception_ws.pipeline import Pipeline

PRESET = Path(__file__).resolve().parents[1] / "config" / "perception_cpu_front.yaml"
PRESET_360 = PRESET.with_name("perception_cpu_360.yaml")
PRESET_GPU = PRESET.with_name("perception_gpu.yaml")
CAR = 1  # KITTI-3


def test_cpu_front_preset_loads_as_the_front_view_with_a_compiled_network() -> None:
    config = load_config(PRESET)
    assert (config.sensor.fov_deg, config.sensor.width, config.sensor.model) == (90.0, 512, "hdl64e")
    assert (config.segmenter.kind, config.segmenter.device) == ("model", "cpu")
    assert config.segmenter.compile is True
    assert config.segmenter.threads == 2
    assert config.segmenter.precision == "bf16"
    # the keys the preset leaves out keep the schema defaults
    assert config.tracking == PerceptionConfig().tracking
    assert config.topics == PerceptionConfig().topics


def test_cpu_360_preset_loads_as_the_whole_turn_with_one_crf_step_compiled() -> None:
    config = load_config(PRESET_360)
    assert (config.sensor.fov_deg, config.sensor.width, config.sensor.model) == (360.0, 2048, "hdl64e")
    assert (config.segmenter.kind, config.segmenter.device, config.segmenter.runtime) == ("model", "cpu", "torch")
    assert (config.segmenter.threads, config.segmenter.precision, config.segmenter.crf_iterations) == (2, "bf16", 1)
    assert config.segmenter.compile is True
    default = PerceptionConfig()
    assert (config.detection, config.tracking, config.topics) == (default.detection, default.tracking, default.topics)


def test_gpu_preset_loads_as_the_whole_turn_on_the_device_compiled() -> None:
    config = load_config(PRESET_GPU)
    assert (config.sensor.fov_deg, config.sensor.width, config.sensor.model) == (360.0, 2048, "hdl64e")
    segmenter = config.segmenter
    assert (segmenter.kind, segmenter.device, segmenter.runtime, segmenter.projection) == (
        "model",
        "cuda",
        "torch",
        "device",
    )
    assert (segmenter.precision, segmenter.compile, segmenter.autotune) == ("bf16", True, False)
    default = PerceptionConfig()
    assert (config.detection, config.tracking, config.topics) == (default.detection, default.tracking, default.topics)


@pytest.mark.parametrize("preset", [PRESET, PRESET_360, PRESET_GPU])
def test_perception_run_hands_the_preset_to_the_perception_node(preset: Path) -> None:
    (node, *_) = plan_graph({"config": str(preset)})
    assert node.params_file == str(preset)


@pytest.mark.parametrize(
    ("key", "value"), [("segmenter.threads", -1), ("segmenter.compile", "yes"), ("segmenter.precision", "int8")]
)
def test_bad_cpu_settings_name_their_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        PerceptionConfig().replace(**{key: value})


def test_half_precision_on_a_cpu_is_refused_with_the_way_out() -> None:
    with pytest.raises(ConfigError, match=r"segmenter\.precision = 'fp16' needs a GPU .* use bf16 or fp32"):
        PerceptionConfig().replace(**{"segmenter.precision": "fp16"})


@pytest.mark.parametrize(
    "settings",
    [
        {"segmenter.autotune": True},  # not compiled
        {"segmenter.autotune": True, "segmenter.compile": True},  # on the CPU
        {"segmenter.autotune": True, "segmenter.device": "cuda"},  # on a GPU, not compiled
    ],
)
def test_autotune_without_a_compiled_gpu_network_is_refused_with_the_way_out(settings: dict[str, object]) -> None:
    with pytest.raises(
        ConfigError, match=r"segmenter\.autotune .* set compile true and device cuda, or autotune false"
    ):
        PerceptionConfig().replace(**settings)


def test_autotune_of_a_compiled_gpu_network_loads() -> None:  # running it needs a GPU
    config = PerceptionConfig().replace(
        **{"segmenter.device": "cuda", "segmenter.compile": True, "segmenter.autotune": True}
    )
    assert (config.segmenter.device, config.segmenter.compile, config.segmenter.autotune) == ("cuda", True, True)


def test_the_segmenter_refuses_autotune_on_a_cpu() -> None:
    from perception_ws.labels import get_class_set
    from perception_ws.models.network_segmenter import NetworkSegmenter
    from perception_ws.models.weights import load_weights

    with pytest.raises(ConfigError, match="autotune chooses kernels for a compiled network on a GPU"):
        NetworkSegmenter(load_weights(None), "cpu", get_class_set("kitti3"), compile=True, autotune=True)


@pytest.mark.real_data
def test_bf16_gives_the_labels_of_fp32_on_a_real_scan(real_data: Path) -> None:
    """bf16 rounds every activation to 8 mantissa bits: on a real scan with the shipped weights nearly every
    point must keep its fp32 class (measured 99.9 % of valid pixels), where the CPU does bf16 natively; where
    it does not, the segmenter falls back to fp32 and says so."""
    import torch

    scan = load(real_data / "semantickitti" / "000000.bin")
    config = load_config(PRESET).replace(**{"segmenter.compile": False})
    bf16 = Pipeline(config)
    fp32 = Pipeline(config.replace(**{"segmenter.precision": "fp32"}))
    assert isinstance(bf16.segmenter, NetworkSegmenter)
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert bf16.segmenter.precision == "fp32"
        assert "not supported natively" in bf16.segmenter.summary
        return
    assert bf16.segmenter.precision == "bf16"
    assert bf16.segmenter_summary.endswith("cpu, bf16)")
    low, full = bf16.process(scan.points, 0.0), fp32.process(scan.points, 0.0)
    in_view = full.labels > 0
    assert in_view.sum() > 1000
    same = np.mean(low.labels == full.labels)
    assert same > 0.99, same
    # objects well above the clustering's minimum (a cluster at exactly min_samples points comes and goes with one
    # point's label: with the default 0.5 m / 20 a 20-point cyclist is one in bf16 and not in fp32)
    solid = 30
    assert {b.label for b in low.detections if b.num_points >= solid} == {
        b.label for b in full.detections if b.num_points >= solid
    }


@pytest.mark.real_data
def test_front_preset_labels_only_the_front_quarter_of_a_real_scan(real_data: Path) -> None:
    # compile off: the same network and results, without a minute of compilation in a unit test
    config = load_config(PRESET).replace(**{"segmenter.compile": False})
    pipeline = Pipeline(config)
    assert isinstance(pipeline.segmenter, NetworkSegmenter)
    scan = load(real_data / "semantickitti" / "000000.bin")
    result = pipeline.process(scan.points, 0.0)
    azimuth = np.degrees(np.arctan2(scan.xyz[:, 1], scan.xyz[:, 0]))
    outside = np.abs(azimuth) > 46.0
    assert result.labels.shape == (len(scan.points),)
    assert not result.labels[outside].any()
    assert not result.instances[outside].any()
    assert result.labels[~outside].any()  # the shipped weights find objects in front
    assert all(abs(np.degrees(np.arctan2(b.center[1], b.center[0]))) < 50.0 for b in result.detections)


@pytest.mark.real_data
def test_warm_up_leaves_no_tracks_and_changes_no_result(real_data: Path) -> None:
    scan = load(real_data / "semantickitti" / "000000.bin")
    config = load_config(PRESET).replace(**{"segmenter.compile": False})
    cold, warm = Pipeline(config), Pipeline(config)
    warm.warm_up()
    assert warm.tracker is not None
    assert not warm.tracker.tracks
    first, second = cold.process(scan.points, 0.0), warm.process(scan.points, 0.0)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.instances, second.instances)
    assert [b.track_id for b in first.tracks] == [b.track_id for b in second.tracks]


def test_warm_up_serves_a_labels_segmenter_reading_another_field() -> None:
    config = PerceptionConfig().replace(**{"segmenter.kind": "labels", "segmenter.label_field": "semantic"})
    pipeline = Pipeline(config)
    pipeline.warm_up()  # the synthetic scan carries the configured field, so this does not raise
    assert pipeline.tracker is not None
    assert not pipeline.tracker.tracks


def car_iou(truth: np.ndarray, labels: np.ndarray) -> float:
    t, p = truth == CAR, labels == CAR
    return float((t & p).sum() / (t | p).sum())


@pytest.mark.real_data
def test_360_preset_labels_a_real_scan_all_around_as_well_as_fp32_with_three_crf_steps(real_data: Path) -> None:
    """The preset's speed-ups (bf16, one CRF step) on a real 360° SemanticKITTI sweep: objects found all around
    the sensor, the network and CRF timed apart, and its car IoU within 1 point of the trained fp32 model's."""
    scan = load(real_data / "semantickitti" / "000000.bin")
    assert scan.labels is not None
    # compile off: the same network (to float rounding), without minutes of compilation in a unit test; the
    # network's own labels (consistent labels off): this is about the segmentation's speed-ups
    config = load_config(PRESET_360).replace(**{"segmenter.compile": False, "detection.consistent_labels": False})
    preset = Pipeline(config)
    full = Pipeline(config.replace(**{"segmenter.precision": "fp32", "segmenter.crf_iterations": -1}))
    fast, reference = preset.process(scan.points, 0.0), full.process(scan.points, 0.0)
    assert {"network", "crf"} <= set(fast.timings_ms)
    truth = np.asarray(scan.labels).reshape(-1)
    # the whole turn is segmented, not only the front quarter (where the front preset leaves every point 0)
    side = np.abs(np.degrees(np.arctan2(scan.xyz[:, 1], scan.xyz[:, 0]))) > 50.0
    assert (fast.labels[side] > 0).sum() > 1000
    assert any(abs(np.degrees(np.arctan2(box.center[1], box.center[0]))) > 60.0 for box in fast.detections)
    labelled = np.asarray(scan.semantic).reshape(-1) != 0  # as perception eval scores: learning id 0 is unlabelled
    reference_iou = car_iou(truth[labelled], reference.labels[labelled])
    assert reference_iou > 0.5, reference_iou
    assert car_iou(truth[labelled], fast.labels[labelled]) > reference_iou - 0.01
