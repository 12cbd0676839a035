"""``segmenter.crf_iterations`` and the network segmenter's two timed halves (network, then CRF) on real scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.config import ConfigError, PerceptionConfig
from perception_ws.io import load
from perception_ws.labels import KITTI3
from perception_ws.models import build_model
from perception_ws.models.network_segmenter import NetworkSegmenter


@pytest.fixture(scope="module")
def image(real_data: Path) -> np.ndarray:
    """A real front 64 x 512 range image (KITTI raw as released with SqueezeSeg), the label channel left out."""
    scan = load(real_data / "kitti_squeezeseg" / "2011_09_26_0001_0000000030.npy")
    assert scan.range_image is not None
    return np.ascontiguousarray(scan.range_image[..., :6], dtype=np.float32)


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("squeezesegv2", len(KITTI3), crf=True).eval()


def logits_of(network: torch.nn.Module, image: np.ndarray) -> torch.Tensor:
    with torch.inference_mode():
        return network(torch.from_numpy(image).permute(2, 0, 1)[None])


@pytest.mark.real_data
def test_the_two_halves_give_the_whole_forward_and_are_timed_apart(network: torch.nn.Module, image: np.ndarray) -> None:
    segmenter = NetworkSegmenter(network, "cpu", KITTI3)
    classes, _ = segmenter.segment_image(image)
    whole = logits_of(segmenter.network, image).argmax(dim=1)[0].numpy()
    np.testing.assert_array_equal(classes, whole)
    assert set(segmenter.stage_ms) == {"network", "crf"}
    assert segmenter.stage_ms["network"] > 0
    assert segmenter.stage_ms["crf"] > 0


@pytest.mark.real_data
def test_crf_iterations_as_trained_none_or_more(network: torch.nn.Module, image: np.ndarray) -> None:
    trained = NetworkSegmenter(network, "cpu", KITTI3).segment_image(image)[0]
    three = NetworkSegmenter(network, "cpu", KITTI3, crf_iterations=3).segment_image(image)[0]
    np.testing.assert_array_equal(trained, three)  # the built model's own count is 3
    none = NetworkSegmenter(network, "cpu", KITTI3, crf_iterations=0)
    assert getattr(none.network, "crf", None) is None
    assert getattr(network, "crf", None) is not None  # the caller's network is untouched
    with torch.inference_mode():
        backbone = network.backbone(torch.from_numpy(image).permute(2, 0, 1)[None])  # type: ignore[operator]
    np.testing.assert_array_equal(none.segment_image(image)[0], backbone.argmax(dim=1)[0].numpy())
    one = NetworkSegmenter(network, "cpu", KITTI3, crf_iterations=1).segment_image(image)[0]
    assert not np.array_equal(one, trained)  # one mean-field step is not three: the setting reaches the CRF


def test_crf_iterations_on_a_network_without_crf_or_out_of_range_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"segmenter\.crf_iterations = 2 but the network has no CRF layer"):
        NetworkSegmenter(build_model("squeezesegv2", len(KITTI3), crf=False), "cpu", KITTI3, crf_iterations=2)
    for bad in (-2, 11):
        with pytest.raises(ConfigError, match=r"segmenter\.crf_iterations"):
            PerceptionConfig().replace(**{"segmenter.crf_iterations": bad})
    onnx = {"segmenter.runtime": "onnxruntime", "segmenter.onnx": "seg.onnx", "segmenter.crf_iterations": 1}
    with pytest.raises(ConfigError, match=r"crf_iterations = 1 applies to runtime torch only"):
        PerceptionConfig().replace(**onnx)
