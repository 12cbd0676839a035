"""Detections scored as boxes: the matching on hand-built boxes, the real KITTI object frames with their own boxes as
detections, the node's detection stage on their labels, and `perception eval` reporting it all."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.boxes import Box3D, bev_iou
from perception_ws.cli import main
from perception_ws.detection_eval import LabelDetector, box_truth
from perception_ws.detection_metrics import CRITERIA, Criterion, DetectionMetrics, FrameTruth, match_frame
from perception_ws.evaluation import EvalFrame, evaluate
from perception_ws.io import open_dataset
from perception_ws.labels import KITTI3
from perception_ws.models import build_model, save_weights

CAR, PEDESTRIAN = KITTI3.id_of("car"), KITTI3.id_of("pedestrian")
BEV_05, BEV_025, CENTRE = CRITERIA


def car(x: float, y: float = 0.0, *, length: float = 4.0, width: float = 2.0, **fields: object) -> Box3D:
    fields.setdefault("label", CAR)
    fields.setdefault("name", "Car")
    fields.setdefault("num_points", 100)
    return Box3D(center=[x, y, 0.0], size=[length, width, 1.5], yaw=0.0, **fields)  # type: ignore[arg-type]


def counts(detections: list[Box3D], truth: FrameTruth, criterion: Criterion = BEV_05, class_id: int = CAR):  # type: ignore[no-untyped-def]
    return match_frame(detections, truth, class_id, KITTI3.names[class_id], criterion)


def test_a_match_needs_bev_iou_of_one_half() -> None:
    truth = FrameTruth([car(10.0)])
    # same size shifted by d along the length: IoU = (4 - d) / (4 + d), 0.5 at d = 4/3
    near, far = car(11.3, label=CAR), car(11.4, label=CAR)
    assert bev_iou(near, truth.boxes[0]) > 0.5 > bev_iou(far, truth.boxes[0])
    hit = counts([near], truth)
    assert (hit.true, hit.false, hit.objects, hit.precision, hit.recall) == (1, 0, 1, 1.0, 1.0)
    miss = counts([far], truth)
    assert (miss.true, miss.false, miss.precision, miss.recall) == (0, 1, 0.0, 0.0)
    assert counts([far], truth, BEV_025).true == 1


def test_a_box_is_matched_once_and_the_higher_score_takes_it() -> None:
    truth = FrameTruth([car(10.0)])
    weak, strong = car(10.3, score=0.4), car(10.1, score=0.9)
    result = counts([weak, strong], truth)
    assert (result.true, result.false, result.objects) == (1, 1, 1)
    assert result.precision == 0.5
    assert result.recall == 1.0
    # two boxes side by side: each detection takes its own
    pair = FrameTruth([car(10.0), car(10.0, 3.0)])
    both = counts([car(10.1), car(10.1, 3.1)], pair)
    assert (both.true, both.false) == (2, 0)


def test_centre_in_box_matches_a_small_box_inside_a_large_one() -> None:
    truth = FrameTruth([car(10.0)])
    piece = car(11.5, 0.5, length=0.8, width=0.8)  # a fragment of the car: centre inside, IoU 0.08
    assert counts([piece], truth, BEV_025).false == 1
    assert counts([piece], truth, CENTRE).true == 1
    outside = car(12.2, length=0.8, width=0.8)  # centre 0.2 m beyond the car's end
    assert counts([outside], truth, CENTRE).false == 1


def test_dont_care_regions_and_neighbouring_types_are_neither_true_nor_false() -> None:
    van = car(20.0, label=0, name="Van")
    misc = car(30.0, label=0, name="Misc")
    sitting = Box3D(center=[5.0, 2.0, 0.0], size=[0.8, 0.6, 1.2], yaw=0.0, label=0, name="Person_sitting")
    in_dont_care = lambda centres: centres[:, 1] > 50.0  # noqa: E731
    truth = FrameTruth([car(10.0), van, misc, sitting], in_dont_care=in_dont_care)
    detections = [car(10.0), car(20.0), car(30.0), car(0.0, 60.0)]  # the car, the van, the misc, in DontCare
    result = counts(detections, truth)
    assert (result.true, result.false, result.ignored, result.objects) == (1, 1, 2, 1)  # only the Misc is false
    pedestrian = Box3D(center=[5.0, 2.0, 0.0], size=[0.8, 0.6, 1.7], yaw=0.0, label=PEDESTRIAN)
    seated = counts([pedestrian], truth, BEV_05, PEDESTRIAN)
    assert (seated.true, seated.false, seated.ignored, seated.objects) == (0, 0, 1, 0)


def test_out_of_scope_detections_and_empty_boxes_are_ignored_and_false_ones_counted_in_the_camera_view() -> None:
    ahead = lambda centres: centres[:, 0] > 0  # noqa: E731
    empty = car(-20.0, num_points=0)  # the sensor saw none of it
    truth = FrameTruth([car(10.0), empty], in_scope=lambda c: c[:, 0] > -30, in_camera=ahead)
    detections = [car(-20.0), car(-40.0), car(-10.0), car(25.0)]
    result = counts(detections, truth)
    # the empty box's and the out-of-scope detections are ignored; two false ones, one of them ahead
    assert (result.true, result.false, result.false_in_camera, result.ignored, result.objects) == (0, 2, 1, 2, 1)


def test_recall_of_boxes_with_many_points_and_sums_over_frames() -> None:
    metrics = DetectionMetrics(KITTI3, classes=[CAR])
    metrics.update([car(10.0)], FrameTruth([car(10.0, num_points=60), car(30.0, num_points=10)]))
    metrics.update([car(50.0)], FrameTruth([]))
    c = metrics.counts["car"][BEV_05.name]
    assert (c.true, c.false, c.objects, c.many, c.many_found) == (1, 1, 2, 1, 1)
    assert (c.recall, c.recall_many, c.precision, c.f1) == (0.5, 1.0, 0.5, 0.5)
    assert metrics.false_per_frame("car", BEV_05.name) == 0.5
    report = metrics.to_json()
    assert report["frames"] == 2
    assert report["classes"]["car"]["bev_iou_0.5"]["recall_50_points"] == 100.0
    nothing = DetectionMetrics(KITTI3, classes=[PEDESTRIAN])
    nothing.update([], FrameTruth([]))
    assert math.isnan(nothing.counts["pedestrian"][CENTRE.name].precision)
    assert "-" in nothing.table()


@pytest.mark.real_data
def test_real_kitti_boxes_as_detections_score_one(real_data: Path) -> None:
    metrics = DetectionMetrics(KITTI3)
    dont_care_frames = 0
    for scan in open_dataset(real_data / "kitti_object"):
        truth = box_truth(scan, "kitti")
        assert truth is not None
        dont_care_frames += bool(scan.dont_care)
        metrics.update([b for b in scan.boxes if b.label > 0], truth)
        # a car on the Truck (000001) is ignored, not false; one behind the sensor is outside the camera's view
        for box in scan.boxes:
            if box.name == "Truck":
                on_truck = counts([car(*box.center[:2])], truth, CENTRE)
                assert (on_truck.false, on_truck.ignored) == (0, 1)
        behind = counts([car(-15.0)], truth, CENTRE)
        assert behind.false == 0
        assert behind.ignored == 1
    assert dont_care_frames == 1  # 000001 has four DontCare regions
    for name, objects in (("car", 2), ("pedestrian", 1), ("cyclist", 1)):
        for criterion in CRITERIA:
            c = metrics.counts[name][criterion.name]
            assert (c.precision, c.recall, c.false, c.objects) == (1.0, 1.0, 0, objects), (name, criterion)


@pytest.mark.real_data
def test_the_node_detection_stage_on_the_real_labels_finds_the_pedestrian(real_data: Path) -> None:
    scan = open_dataset(real_data / "kitti_object")[0]  # 000000: one pedestrian, 377 points, 8.4 m ahead
    assert scan.labels is not None
    boxes = LabelDetector()(scan.xyz, scan.labels)
    truth = box_truth(scan, "kitti")
    assert truth is not None
    assert [b.name for b in boxes] == ["pedestrian"]
    assert counts(boxes, truth, CENTRE, PEDESTRIAN).true == 1


@pytest.mark.real_data
def test_perception_eval_json_has_the_detection_object(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    weights = save_weights(
        build_model("squeezesegv2", 4), tmp_path / "untrained.pt", training={"data": [], "steps": 0}, scores={}
    )
    config = tmp_path / "wide.yaml"
    config.write_text("/**/perception_node:\n  ros__parameters:\n    detection:\n      car_eps_m: 1.0\n")
    args = ["eval", "--weights", str(weights), "--data", str(real_data / "kitti_object"), "--quiet"]
    assert main([*args, "--json", "--config", str(config)]) == 0
    report = json.loads(capsys.readouterr().out)
    detection = report["detection"]
    assert detection["frames"] == 3
    assert set(detection["classes"]) == {"car", "pedestrian", "cyclist"}
    car_05 = detection["classes"]["car"]["bev_iou_0.5"]
    assert car_05["objects"] == 2
    assert car_05["objects_50_points"] == 1


@pytest.mark.real_data
def test_sources_without_boxes_say_so_once_and_boxes_can_be_left_out(real_data: Path) -> None:
    def perfect(frame: EvalFrame) -> np.ndarray:
        assert frame.labels is not None
        return frame.labels

    result = evaluate(perfect, real_data / "kitti_squeezeseg", max_frames=1, warmup=False)
    assert result.detection is None
    assert result.to_json()["detection"] is None
    assert sum("no boxes" in note for note in result.notes) == 1
    unasked = evaluate(perfect, real_data / "kitti_object", max_frames=1, warmup=False, boxes=False)
    assert unasked.detection is None
    assert not any("boxes" in note for note in unasked.notes)


def test_a_simulated_dataset_scores_its_boxes(tmp_path: Path) -> None:
    from perception_ws.sim.dataset import GenerateConfig, generate_dataset

    generate_dataset(tmp_path / "sim", GenerateConfig(scenes=1, frames=1, columns=512), progress=False)

    def perfect(frame: EvalFrame) -> np.ndarray:
        assert frame.labels is not None
        return frame.labels

    result = evaluate(perfect, tmp_path / "sim", warmup=False)
    assert result.detection is not None
    cars = result.detection.counts["car"][CENTRE.name]
    assert cars.objects > 0
    assert cars.true > 0
    assert cars.precision >= 0.8  # ground-truth labels: every car cluster lies in a car box


def test_a_bad_detection_config_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("/**/perception_node:\n  ros__parameters:\n    detection:\n      car_eps_m: -1.0\n")
    assert main(["eval", "--data", str(tmp_path), "--config", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "car_eps_m" in error
