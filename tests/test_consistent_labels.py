"""Labels that agree with the detections (``detection.consistent_labels``) and the people height gate
(``detection.person_min_height_m`` / ``person_max_height_m``), on a real labelled scan and on made-up people."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.boxes import Box3D
from perception_ws.config import PipelineConfig
from perception_ws.evaluation import evaluate
from perception_ws.instances import DetectConfig, detect
from perception_ws.instances.consistency import consistent_labels, plausible_person
from perception_ws.io import load
from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.models.weights import load_any_weights
from perception_ws.pipeline import Pipeline
from perception_ws.schema import ConfigError
from tests.helpers.data import LABELLED, truth, with_label_field

CAR, PEDESTRIAN, CYCLIST = (KITTI3.id_of(name) for name in ("car", "pedestrian", "cyclist"))


def _column(centre: tuple[float, float], height: float, rng: np.random.Generator, n: int = 400) -> np.ndarray:
    """Points of an upright 0.5 x 0.5 m column from the ground (z = -1.7 m) up to ``height``."""
    low = np.array([centre[0] - 0.25, centre[1] - 0.25, -1.7])
    return low + rng.uniform(0, 1, (n, 3)) * np.array([0.5, 0.5, height])


def test_people_outside_the_height_range_are_not_detected() -> None:
    rng = np.random.default_rng(0)
    child, adult, bush, pole = (_column((8.0, y), h, rng) for y, h in ((-3, 1.1), (0, 1.8), (3, 0.5), (6, 3.5)))
    xyz = np.concatenate([child, adult, bush, pole])
    labels = np.full(len(xyz), PEDESTRIAN)
    heights = sorted(round(float(b.size[2]), 1) for b in detect(xyz, labels, KITTI3, DetectConfig()))
    assert heights == [0.5, 1.1, 1.8, 3.5]  # no gate: every column is a pedestrian
    gated = detect(xyz, labels, KITTI3, DetectConfig(person_height_m=(0.8, 2.3)))
    assert sorted(round(float(b.size[2]), 1) for b in gated) == [1.1, 1.8]
    # cars are not people: the gate leaves them
    assert plausible_person(Box3D(np.zeros(3), np.array([4.0, 1.8, 0.5]), 0.0, CAR, "car"), (0.8, 2.3))


def test_thing_points_outside_every_detection_become_unlabelled() -> None:
    labels = np.array([0, CAR, CAR, PEDESTRIAN, CYCLIST, 0], dtype=np.uint16)
    instances = np.array([0, 1, 0, 0, 2, 0], dtype=np.uint32)
    out = consistent_labels(labels, instances, KITTI3)
    assert out.tolist() == [0, CAR, 0, 0, CYCLIST, 0]
    assert out.dtype == labels.dtype
    assert labels.tolist() == [0, CAR, CAR, PEDESTRIAN, CYCLIST, 0]  # a new array
    # only the detected classes are touched
    assert consistent_labels(labels, instances, KITTI3, ["car"]).tolist() == [0, CAR, 0, PEDESTRIAN, CYCLIST, 0]
    # SemanticKITTI's 20 classes, a scan's worth of points: its thing classes only, wherever no instance holds them
    rng = np.random.default_rng(3)
    labels = rng.integers(0, len(SEMANTIC_KITTI), 120_000).astype(np.uint16)
    instances = (rng.random(len(labels)) < 0.3).astype(np.uint32)
    things = [SEMANTIC_KITTI.id_of(name) for name in ("car", "person", "bicyclist")]
    cleared = np.isin(labels, things) & (instances == 0)
    expected = np.where(cleared, 0, labels)
    np.testing.assert_array_equal(
        consistent_labels(labels, instances, SEMANTIC_KITTI, ["car", "person", "bicyclist"]), expected
    )
    assert consistent_labels(labels[:0], instances[:0], KITTI3).size == 0


@pytest.mark.real_data
def test_published_labels_agree_with_the_detections_on_a_real_scan(real_data: Path) -> None:
    scan = load(real_data / "semantickitti" / "000000.bin")
    whole_turn = {"sensor.fov_deg": 360.0, "sensor.width": 2048}
    raw = Pipeline(PipelineConfig().replace(**whole_turn, **{"detection.consistent_labels": False}))
    network, node = (
        raw.process(scan.points, 0.0),
        Pipeline(PipelineConfig().replace(**whole_turn)).process(scan.points, 0.0),
    )
    things = np.isin(node.labels, [CAR, PEDESTRIAN, CYCLIST])
    assert things.any()
    assert np.all(node.instances[things] > 0)  # every car / person point belongs to a published detection
    changed = node.labels != network.labels
    assert changed.any()  # the shipped network's stray object points
    assert np.all(node.labels[changed] == 0)
    assert np.all(np.isin(network.labels[changed], [CAR, PEDESTRIAN, CYCLIST]) & (node.instances[changed] == 0))
    assert len(node.detections) == len(network.detections)
    assert np.array_equal(node.instances, network.instances)
    # labels the input carries are published as given, consistent labels or not
    given = Pipeline(PipelineConfig().replace(**LABELLED)).process(with_label_field(scan), 0.0)
    assert np.array_equal(given.labels, truth(scan)[0])


def test_a_person_range_that_is_empty_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"person_min_height_m = 2\.5 must be below"):
        PipelineConfig().replace(**{"detection.person_min_height_m": 2.5})


@pytest.mark.real_data
def test_eval_scores_the_published_labels_on_request(real_data: Path) -> None:
    """The shipped model on the real SemanticKITTI scan: the node's labels drop car points that no detection
    holds (the network's stray car points), so car precision rises and no class gains recall."""
    data = real_data / "semantickitti" / "000000.bin"
    model = load_any_weights(None)
    network = evaluate(model, data, instances=False, boxes=False, warmup=False)
    node = evaluate(model, data, instances=False, boxes=False, warmup=False, node_labels=True)
    assert network.class_level is not None
    assert node.class_level is not None
    assert node.class_level["car"].precision > network.class_level["car"].precision
    for name in ("car", "pedestrian"):
        assert node.class_level[name].recall <= network.class_level[name].recall
    assert "labels scored as the node publishes them (detection.consistent_labels on)" in node.notes
    assert not any("publishes" in note for note in network.notes)
