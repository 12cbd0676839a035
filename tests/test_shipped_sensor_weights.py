"""The shipped weights follow the node's sensor: ``weights/vlp16.pt`` for a VLP-16, ``default.pt`` otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.config import PipelineConfig
from perception_ws.io import open_dataset
from perception_ws.models.weights import DEFAULT_WEIGHTS, WEIGHTS_DIR, read_manifest, weights_for
from perception_ws.pipeline import Pipeline


def _config(sensor: str) -> PipelineConfig:
    return PipelineConfig().replace(**{"sensor.model": sensor})


def test_each_sensor_gets_its_own_shipped_weights_or_the_default() -> None:
    assert weights_for(_config("vlp16")) == WEIGHTS_DIR / "vlp16.pt"
    assert weights_for(_config("hdl64e")) == DEFAULT_WEIGHTS
    assert weights_for(_config("vlp32c")) == DEFAULT_WEIGHTS  # none shipped for it (docs/algorithms.md §5)
    given = _config("vlp16").replace(**{"segmenter.weights": str(DEFAULT_WEIGHTS)})
    assert weights_for(given) == DEFAULT_WEIGHTS  # an explicit file wins


def test_the_vlp16_manifest_says_what_it_was_adapted_to() -> None:
    manifest = read_manifest(WEIGHTS_DIR / "vlp16.pt")
    settings = manifest["training"]["settings"]
    assert settings["intensity_input"] == "zero"  # the VLP-16 sample's 0..255 intensity is not used
    assert settings["target"]  # trained with GCA toward unlabelled VLP-16 scans
    assert manifest["model"]["zero_channels"] == [3]
    assert manifest["scores"], "scored on simulated VLP-16 frames"


@pytest.mark.real_data
def test_the_vlp16_model_labels_the_real_scan_without_reading_intensity(real_data: Path) -> None:
    scan = open_dataset(next((real_data / "vlp16").glob("*.pcd")))[0]
    pipeline = Pipeline(_config("vlp16"))
    labels = pipeline.process(scan.points, 0.0, track=False).labels
    assert labels.shape == (len(scan.points),)
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    scrambled = scan.points.copy()
    scrambled["intensity"] = np.random.default_rng(0).permutation(scrambled["intensity"])
    again = Pipeline(_config("vlp16")).process(scrambled, 0.0, track=False).labels
    np.testing.assert_array_equal(labels, again)
