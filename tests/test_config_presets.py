"""The shipped CPU preset (config/perception_cpu_front.yaml) loads, validates and runs the front view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.config import ConfigError, PerceptionConfig, load_config
from perception_ws.io import load
from perception_ws.nodes.launch_graph import plan_graph
from perception_ws.pipeline import NetworkSegmenter, Pipeline

PRESET = Path(__file__).resolve().parents[1] / "config" / "perception_cpu_front.yaml"


def test_cpu_front_preset_loads_as_the_front_view_with_a_compiled_network() -> None:
    config = load_config(PRESET)
    assert (config.sensor.fov_deg, config.sensor.width, config.sensor.model) == (90.0, 512, "hdl64e")
    assert (config.segmenter.kind, config.segmenter.device) == ("model", "cpu")
    assert config.segmenter.compile is True and config.segmenter.threads == 2
    # the keys the preset leaves out keep the schema defaults
    assert config.tracking == PerceptionConfig().tracking and config.topics == PerceptionConfig().topics


def test_perception_run_hands_the_preset_to_the_perception_node() -> None:
    (node, *_) = plan_graph({"config": str(PRESET)})
    assert node.params_file == str(PRESET)


@pytest.mark.parametrize(("key", "value"), [("segmenter.threads", -1), ("segmenter.compile", "yes")])
def test_bad_cpu_settings_name_their_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        PerceptionConfig().replace(**{key: value})


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
    assert not result.labels[outside].any() and not result.instances[outside].any()
    assert result.labels[~outside].any()  # the shipped weights find objects in front
    assert all(abs(np.degrees(np.arctan2(b.center[1], b.center[0]))) < 50.0 for b in result.detections)


def test_warm_up_leaves_no_tracks_and_changes_no_result(real_data: Path) -> None:
    scan = load(real_data / "semantickitti" / "000000.bin")
    config = load_config(PRESET).replace(**{"segmenter.compile": False})
    cold, warm = Pipeline(config), Pipeline(config)
    warm.warm_up()
    assert warm.tracker is not None and not warm.tracker.tracks
    first, second = cold.process(scan.points, 0.0), warm.process(scan.points, 0.0)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.instances, second.instances)
    assert [b.track_id for b in first.tracks] == [b.track_id for b in second.tracks]


def test_warm_up_serves_a_labels_segmenter_reading_another_field() -> None:
    config = PerceptionConfig().replace(**{"segmenter.kind": "labels", "segmenter.label_field": "semantic"})
    pipeline = Pipeline(config)
    pipeline.warm_up()  # the synthetic scan carries the configured field, so this does not raise
    assert pipeline.tracker is not None and not pipeline.tracker.tracks
