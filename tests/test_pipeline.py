"""The Pipeline on real scans (labels from the data, and a real untrained network), and its config schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from perception_ws.config import (
    NODE_NAME,
    ConfigError,
    PerceptionConfig,
    PipelineConfig,
    descriptions,
    flatten,
    from_mapping,
    load_config,
    section_key,
    to_params_document,
)
from perception_ws.errors import CloudFormatError, WeightsError
from perception_ws.instances import ClusterConfig, ClusterParams, DetectConfig
from perception_ws.instances.config import NODE_CAR_CLUSTER, NODE_OTHER_CLUSTER, NODE_REMOVE_GROUND
from perception_ws.io import load
from perception_ws.labels import KITTI3
from perception_ws.pipeline import STAGES, Pipeline
from perception_ws.projection import project
from perception_ws.scan import Scan
from tests.helpers.data import truth, with_label_field

REPO = Path(__file__).resolve().parents[1]
LABELS = PipelineConfig().replace(**{"segmenter.kind": "labels"})
CAR = KITTI3.id_of("car")


@pytest.fixture(scope="module")
def semantic_scan(real_data: Path) -> Scan:
    return load(real_data / "semantickitti" / "000000.bin")


@pytest.mark.real_data
def test_labels_segmenter_finds_the_labelled_cars_of_a_real_scan(semantic_scan: Scan) -> None:
    points = with_label_field(semantic_scan)
    # a wider radius than the thesis' 0.3 m: at 20 m and beyond, a car's rings lie more than 0.3 m apart
    wider = {"detection.eps_m": 0.5, "detection.min_samples": 10, "detection.car_eps_m": 0.5}
    # every labelled point clustered: ground removal would take the bottom rows of the cars' labelled points
    config = LABELS.replace(**wider, **{"detection.car_min_samples": 10, "detection.remove_ground": False})
    result = Pipeline(config).process(points, stamp_s=0.0)
    labels, instances = truth(semantic_scan)
    assert np.array_equal(result.labels, labels)
    assert result.labels.dtype == np.uint16
    assert result.instances.dtype == np.uint32
    assert result.num_valid == len(points)
    # no network (no projection, network or CRF) and no ground removal: the stages that ran, and no others
    assert set(result.timings_ms) == {
        "segmentation",
        "detection",
        "clustering",
        "boxes",
        "instances",
        "tracking",
        "total",
    }
    cars = [box for box in result.detections if box.label == CAR]
    # every car of >= 100 labelled points comes back as one instance covering most of its points
    ids, counts = np.unique(instances[labels == CAR], return_counts=True)
    big = ids[(counts >= 100) & (ids != 0)]
    assert len(big) >= 4
    ious = []
    for car in big:
        members = instances == car
        found, overlap = np.unique(result.instances[members], return_counts=True)
        overlap[found == 0] = 0
        best = found[np.argmax(overlap)]
        assert best > 0
        assert result.detections[best - 1].label == CAR
        ious.append(overlap.max() / np.count_nonzero(members | (result.instances == best)))
    # one car, partly hidden, comes back in two pieces; the others whole
    assert min(ious) > 0.6, ious
    assert np.mean(ious) > 0.9, ious
    # instance k is exactly the points of detection k's class inside its box
    xyz = semantic_scan.xyz
    for k, box in enumerate(result.detections, start=1):
        mine = result.instances == k
        assert np.all(result.labels[mine] == box.label)
        assert box.contains(xyz[mine], margin=0.011).all()
        assert mine.sum() >= box.num_points
    assert len(cars) >= len(big)


@pytest.mark.real_data
def test_tracks_follow_a_moving_real_scan_and_reset_when_time_goes_back(semantic_scan: Scan) -> None:
    # the ego vehicle drives at 10 m/s along +x: static cars appear to move at -10 m/s
    pipeline = Pipeline(LABELS.replace(**{"tracking.confirm_hits": 3}))
    points = with_label_field(semantic_scan)
    results = []
    for frame in range(6):
        moved = points.copy()
        moved["x"] -= np.float32(frame * 1.0)
        results.append(pipeline.process(moved, stamp_s=100.0 + frame * 0.1))
    assert results[0].tracks == []
    assert {t.state for t in results[0].live_tracks} == {"tentative"}
    last = results[-1]
    confirmed = [t for t in last.live_tracks if t.state == "confirmed"]
    assert len(confirmed) >= 4
    assert all(t.age == 6 and t.hits == 6 for t in confirmed)
    for info in confirmed:
        assert info.box.velocity[0] == pytest.approx(-10.0, abs=1.5)
        assert abs(info.box.velocity[1]) < 1.5
    assert {t.track_id for t in last.tracks} == {t.box.track_id for t in confirmed}
    # a replay restarting: the tracker starts over, track ids keep counting up
    again = pipeline.process(points, stamp_s=100.0)
    assert again.tracker_reset
    assert again.tracks == []
    assert all(t.age == 1 for t in again.live_tracks)
    assert min(t.box.track_id for t in again.live_tracks) > max(t.box.track_id for t in last.live_tracks)


@pytest.mark.real_data
def test_non_finite_points_are_left_out_and_labelled_zero(semantic_scan: Scan) -> None:
    points = with_label_field(semantic_scan)
    clean = Pipeline(LABELS).process(points, 0.0)
    broken = points.copy()
    background = np.flatnonzero(truth(semantic_scan)[0] == 0)[::50]
    broken["x"][background[::2]] = np.nan
    broken["z"][background[1::2]] = np.inf
    result = Pipeline(LABELS).process(broken, 0.0)
    assert result.num_valid == len(points) - len(background)
    assert np.all(result.labels[background] == 0)
    assert np.all(result.instances[background] == 0)
    assert [b.num_points for b in result.detections] == [b.num_points for b in clean.detections]


@pytest.mark.real_data
def test_an_organized_cloud_is_processed_point_for_point(semantic_scan: Scan) -> None:
    points = with_label_field(semantic_scan)
    n = len(points) - len(points) % 64
    organized = points[:n].reshape(64, -1)
    result = Pipeline(LABELS).process(organized, 0.0)
    assert result.labels.shape == (n,)
    assert np.array_equal(result.labels, truth(semantic_scan)[0][:n])


@pytest.mark.real_data
def test_label_field_problems_are_one_clear_error(semantic_scan: Scan) -> None:
    pipeline = Pipeline(LABELS)
    with pytest.raises(CloudFormatError, match="no field 'label'"):
        pipeline.process(semantic_scan.points, 0.0)
    wrong = with_label_field(semantic_scan)
    wrong["label"][:3] = 7
    with pytest.raises(CloudFormatError, match=r"ids 0\.\.7; class set kitti3 has ids 0\.\.3"):
        pipeline.process(wrong, 0.0)
    floats = with_label_field(semantic_scan, truth(semantic_scan)[0] + 0.5)
    with pytest.raises(CloudFormatError, match="holds no class ids"):
        pipeline.process(floats, 0.0)


@pytest.mark.real_data
def test_no_segmenter_finds_nothing(semantic_scan: Scan) -> None:
    result = Pipeline(PipelineConfig().replace(**{"segmenter.kind": "none"})).process(semantic_scan.points, 0.0)
    assert not result.labels.any()
    assert result.detections == []
    assert result.live_tracks == []


def test_the_default_config_runs_the_shipped_weights() -> None:
    pipeline = Pipeline(PipelineConfig())
    network = pipeline.segmenter.network
    assert network.name == "squeezesegv2"
    assert network.crf is not None
    assert not network.training


def test_missing_or_mismatched_weights_are_refused_by_name() -> None:
    with pytest.raises(WeightsError, match=r"/nonexistent/w\.pt: no such weights file"):
        Pipeline(PipelineConfig().replace(**{"segmenter.weights": "/nonexistent/w.pt"}))
    with pytest.raises(WeightsError, match=r"hold a 'squeezesegv2' network, but segmenter\.model is 'squeezeseg'"):
        Pipeline(PipelineConfig().replace(**{"segmenter.model": "squeezeseg"}))


@pytest.mark.real_data
def test_a_real_network_runs_through_every_stage(real_data: Path) -> None:
    """An untrained SqueezeSegV2 with CRF: its classes are arbitrary, but every stage must run and the
    classes must come back to exactly the points in view, through the projection's pixel map."""
    from perception_ws.models import build_model

    scan = load(real_data / "kitti_object" / "velodyne" / "000002.bin")
    network = build_model("squeezesegv2", num_classes=4, crf=True)
    config = PipelineConfig().replace(**{"sensor.fov_deg": 90.0, "sensor.width": 512, "tracking.odometry": "lidar"})
    result = Pipeline(config, network=network).process(scan.points, 0.0)
    assert set(STAGES) <= set(result.timings_ms)  # lidar odometry included
    times = result.timings_ms
    # the network and its CRF are timed apart, inside the segmentation stage; ground, clustering, boxes in detection
    assert times["network"] > 0
    assert times["crf"] > 0
    assert times["network"] + times["crf"] <= times["segmentation"]
    assert times["ground"] + times["clustering"] + times["boxes"] <= times["detection"]
    projection = project(scan.points, "hdl64e", 90.0, 512)
    assert np.all(result.labels[~projection.in_view] == 0)
    assert result.labels.max() < 4
    assert len(np.unique(result.labels[projection.in_view])) >= 1
    for box in result.detections:
        assert 0 < box.label < 4
        assert 0.0 < box.score <= 1.0
    with pytest.raises(WeightsError, match="predicts 20 classes but class_set kitti3 has 4"):
        Pipeline(config, network=build_model("squeezesegv2", num_classes=20))


# -- the config schema ------------------------------------------------------------------------


def test_shipped_config_file_mirrors_the_schema_key_for_key() -> None:
    path = REPO / "config" / "perception.yaml"
    document = yaml.safe_load(path.read_text())
    params = document[section_key(NODE_NAME)]["ros__parameters"]
    keys = set(flatten(from_mapping(params)))
    written = set(_dotted_keys(params))
    assert written == keys == set(descriptions(PerceptionConfig))
    assert load_config(path) == from_mapping(params)


def test_params_document_round_trips(tmp_path: Path) -> None:
    config = PerceptionConfig().replace(
        **{"sensor.model": "vlp16", "detection.classes": ["car", "cyclist"], "tracking.enabled": False}
    )
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(to_params_document(config)))
    assert load_config(path) == config
    assert load_config(path).detection.classes == ("car", "cyclist")


def test_a_wildcard_section_applies_and_the_node_section_wins(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    use_sim_time: true\n    sensor: {model: vlp16, width: 1024}\n"
        "perception_node:\n  ros__parameters:\n    sensor.width: 512\n    detection: {classes: []}\n"
        "other_node:\n  ros__parameters: {whatever: 1}\n"
    )
    config = load_config(path)
    assert (config.sensor.model, config.sensor.width, config.detection.classes) == ("vlp16", 512, ())


def test_a_section_for_any_namespace_is_the_nodes_own(tmp_path: Path) -> None:
    # '/**/perception_node' is what rcl applies to the node in any namespace (the shipped files use it)
    path = tmp_path / "params.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    sensor: {model: vlp16, width: 1024}\n"
        "/**/perception_node:\n  ros__parameters:\n    sensor.width: 512\n"
        "/**/fusion_node:\n  ros__parameters: {whatever: 1}\n"
    )
    config = load_config(path)
    assert (config.sensor.model, config.sensor.width) == ("vlp16", 512)
    assert list(to_params_document(config)) == [section_key(NODE_NAME)] == ["/**/perception_node"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sensor": {"modle": "vlp16"}}, "unknown key 'sensor.modle'; did you mean 'sensor.model'"),
        ({"sensor": {"width": 512.0}}, r"sensor.width = 512.0 \(float\); expected an integer"),
        ({"sensor": {"width": 0}}, "sensor.width = 0; expected at least 1"),
        ({"sensor": {"model": "hdl65"}}, "sensor.model = 'hdl65': unknown sensor"),
        ({"sensor": {"fov_deg": 400}}, "sensor.fov_deg = 400.0"),
        ({"segmenter": {"kind": "magic"}}, "segmenter.kind = 'magic'; expected one of model, labels, none"),
        ({"segmenter": {"device": "gpu"}}, "segmenter.device = 'gpu'; expected cpu, cuda or cuda:N"),
        ({"detection": {"classes": ["truck"]}}, "detection.classes: 'truck' is not a class of kitti3"),
        ({"detection": {"classes": "car"}}, "detection.classes = 'car' .*expected a list of strings"),
        ({"detection": {"eps_m": -0.3}}, "detection.eps_m = -0.3; expected > 0"),
        ({"tracking": {"enabled": "yes"}}, "tracking.enabled = 'yes' .*expected true or false"),
        ({"tracking": {"motion_model": "ctrv"}}, "tracking.motion_model = 'ctrv'; expected one of ca, cv"),
        ({"topics": {"input": "bad topic"}}, "topics.input = 'bad topic'; expected a ROS topic name"),
        ({"class_set": "coco"}, "class_set = 'coco'; expected one of kitti3, semantickitti"),
    ],
)
def test_bad_settings_name_their_key(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(params)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("other_node:\n  ros__parameters: {}\n")
    with pytest.raises(ConfigError, match="no section for node 'perception_node'"):
        load_config(path)
    path.write_text("perception_node: {sensor: {}}\n")
    with pytest.raises(ConfigError, match="lacks 'ros__parameters'"):
        load_config(path)
    path.write_text("perception_node: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_schema_defaults_build_the_instance_stage_settings() -> None:
    # the node's defaults are the box-scored sweep's (instances/config.py NODE_*); the library's stay the thesis'
    ours = PipelineConfig().detect_config()
    assert ours.cluster.params("car") == NODE_CAR_CLUSTER
    assert all(ours.cluster.params(name) == NODE_OTHER_CLUSTER for name in ("pedestrian", "cyclist"))
    assert ours.remove_ground is NODE_REMOVE_GROUND
    assert DetectConfig().cluster == ClusterConfig.thesis()
    config = PipelineConfig().replace(**{"detection.eps_m": 0.4, "detection.min_samples": 7})
    config = config.replace(**{"detection.car_eps_m": 0.9, "detection.car_min_samples": 12})
    detect_config = config.detect_config()
    assert detect_config.cluster.params("pedestrian") == ClusterParams(0.4, 7)
    assert detect_config.cluster.params("car") == ClusterParams(0.9, 12)
    assert detect_config.classes is None  # empty list: the class set's object classes
    assert config.tracking.tracker_config().confirm_hits == config.tracking.confirm_hits


def _dotted_keys(params: dict[str, object], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, value in params.items():
        if isinstance(value, dict):
            keys += _dotted_keys(value, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


@pytest.mark.real_data
def test_ground_removed_on_a_thread_beside_the_network_gives_the_same_objects(real_data: Path) -> None:
    """With the network on a GPU the ground is removed on a thread while the GPU segments; the objects, labels
    and instances must be exactly those of the in-line path (here both on the CPU, the thread forced)."""
    from concurrent.futures import ThreadPoolExecutor

    config = PipelineConfig().replace(**{"detection.remove_ground": True, "tracking.enabled": False})
    in_line, beside = Pipeline(config), Pipeline(config)
    assert in_line._ground_ahead is None  # the network is on the CPU: the ground stays in line
    beside._ground_ahead = ThreadPoolExecutor(1, "ground")
    for i, name in enumerate(("000000", "000001")):
        points = load(real_data / "kitti_object" / "velodyne" / f"{name}.bin").points
        expected, got = in_line.process(points, 0.1 * i), beside.process(points, 0.1 * i)
        assert expected.detections, "a scan with objects"
        np.testing.assert_array_equal(got.labels, expected.labels)
        np.testing.assert_array_equal(got.instances, expected.instances)
        assert [(b.label, b.num_points) for b in got.detections] == [
            (b.label, b.num_points) for b in expected.detections
        ]
        for ours, theirs in zip(got.detections, expected.detections, strict=True):
            np.testing.assert_array_equal(ours.center, theirs.center)
        assert got.timings_ms["ground"] > 0
