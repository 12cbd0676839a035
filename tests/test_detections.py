"""Detections (per-class clustering -> box fitting) on the real scan and on ray-cast scenes, and
tracking of those detections over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.boxes import Box3D, bev_iou
from perception_ws.errors import CloudFormatError
from perception_ws.instances import ClusterConfig, ClusterParams, DetectConfig, Tracker, cluster_by_class, detect
from perception_ws.instances.synthetic import SENSOR_HEIGHT_M, car_at, cast, ray_hits
from perception_ws.io import load
from perception_ws.labels import KITTI3, SEMANTIC_KITTI


@pytest.mark.real_data
def test_real_scan_one_pure_detection_per_object(real_data: Path) -> None:
    scan = load(real_data / "semantickitti" / "000000.bin")
    assert scan.labels is not None
    assert scan.instances is not None
    assert scan.semantic is not None
    xyz = scan.xyz
    # the thesis' 0.3 m / minPts 20 (the default): 5 cars and 2 pedestrians, each cluster one labelled object
    thesis = DetectConfig()
    assert thesis.cluster == ClusterConfig.thesis()
    boxes = detect(xyz, scan.labels, config=thesis)
    instances = cluster_by_class(xyz, scan.labels, KITTI3, thesis.cluster)
    assert len(boxes) == instances.max() == 7
    found = check_clusters(scan.instances, instances, boxes, xyz, purity=1.0)
    # the measured settings (cars 1.0 m, others 0.5 m, minPts 10) also find 2 cars and 2 pedestrians of
    # 13-20 points; one pedestrian cluster takes 3 pedestrian points that carry no instance id
    measured = DetectConfig(cluster=ClusterConfig.measured())
    boxes = detect(xyz, scan.labels, config=measured)
    instances = cluster_by_class(xyz, scan.labels, KITTI3, measured.cluster)
    assert len(boxes) == instances.max() == 11
    assert sorted(b.name for b in boxes) == ["car"] * 7 + ["pedestrian"] * 4
    found |= check_clusters(scan.instances, instances, boxes, xyz, purity=0.85)
    # every car and pedestrian with >= 50 labelled points is found
    for cls in (KITTI3.id_of("car"), KITTI3.id_of("pedestrian")):
        ids, counts = np.unique(scan.instances[scan.labels == cls], return_counts=True)
        assert set(ids[(counts >= 50) & (ids != 0)].tolist()) <= found
    # the same scan with SemanticKITTI's own classes: the same objects (person is its pedestrian), and a
    # parked bicycle of 11 points, a class KITTI-3 has not
    semantic = detect(xyz, scan.semantic, SEMANTIC_KITTI, config=measured)
    bicycles = [b for b in semantic if b.name == "bicycle"]
    assert len(bicycles) == 1
    assert bicycles[0].num_points == 11
    assert sorted(b.num_points for b in semantic if b.name != "bicycle") == sorted(b.num_points for b in boxes)
    assert {b.name for b in semantic} == {"car", "person", "bicycle"}
    thesis_semantic = detect(xyz, scan.semantic, SEMANTIC_KITTI, config=thesis)
    assert {b.name for b in thesis_semantic} == {"car", "person"}
    assert len(thesis_semantic) == 7


def check_clusters(
    truth: np.ndarray, instances: np.ndarray, boxes: list[Box3D], xyz: np.ndarray, purity: float
) -> set[int]:
    """Each cluster is mostly (``purity``) one labelled object, a different one each, and its box holds it."""
    assert [b.num_points for b in boxes] == sorted((b.num_points for b in boxes), reverse=True)
    found: set[int] = set()
    for k in range(1, instances.max() + 1):
        members = instances == k
        ids, counts = np.unique(truth[members], return_counts=True)
        main = int(ids[np.argmax(counts)])
        assert main != 0
        assert counts.max() >= purity * members.sum()
        assert main not in found
        found.add(main)
        # (two clusters may have as many points: the box is the one of that size that holds them)
        box = next(b for b in boxes if b.num_points == members.sum() and b.contains(xyz[members], margin=1e-4).all())
        assert box.name == KITTI3.names[box.label]
        assert box.score == 1.0
    return found


def ray_cast_scene() -> tuple[np.ndarray, np.ndarray, list[Box3D]]:
    """One ray-cast sweep of the ground, three cars and a pedestrian; labels from what each ray hit."""
    # headings 30-45 degrees off the line of sight: two faces of every car are seen (an L); within
    # 15 m, as DBSCAN with minPts 20 in 0.3 m drops most returns of a car beyond ~20 m (sparser rings)
    truths = [car_at(12.0, -4.0, 0.3), car_at(-8.0, 6.0, 2.0), car_at(13.0, 6.0, 1.2)]
    truths.append(
        Box3D(np.array([-3.0, -6.0, -SENSOR_HEIGHT_M + 0.85]), np.array([0.6, 0.6, 1.7]), 0.0, 2, "pedestrian")
    )
    xyz, hit = cast(truths, noise_m=0.01, rng=np.random.default_rng(3), max_range_m=40.0)
    labels = np.array([t.label for t in truths] + [0])[hit]  # hit -1 (ground) takes the last entry
    return xyz, labels, truths


def test_ray_cast_scene_gives_one_box_per_object() -> None:
    xyz, labels, truths = ray_cast_scene()
    boxes = detect(xyz, labels)
    assert len(boxes) == len(truths)
    for truth in truths:
        best = max(boxes, key=lambda b: bev_iou(b, truth))
        assert best.label == truth.label
        assert bev_iou(best, truth) > (0.6 if truth.name == "car" else 0.2)  # only the near faces are seen
        assert best.center[2] - best.size[2] / 2 == pytest.approx(truth.center[2] - truth.size[2] / 2, abs=0.1)


def test_point_scores_and_per_class_settings() -> None:
    xyz, labels, _ = ray_cast_scene()
    scores = np.where(labels == 1, 0.9, 0.6)
    boxes = detect(xyz, labels, point_scores=scores)
    assert {round(b.score, 6) for b in boxes} == {0.9, 0.6}
    # a pedestrian class that needs more points than the pedestrian has: only the cars remain
    strict = DetectConfig(cluster=ClusterConfig(per_class={"pedestrian": ClusterParams(eps_m=0.3, min_points=10_000)}))
    assert {b.name for b in detect(xyz, labels, config=strict)} == {"car"}
    assert {b.name for b in detect(xyz, labels, config=DetectConfig(classes=("pedestrian",)))} == {"pedestrian"}


def test_an_object_split_by_a_gap_is_merged_back_into_one_box() -> None:
    car = car_at(8.0, 4.0, 1.2)
    points = ray_hits(car, noise_m=0.01)
    # a band without returns (dark paint, a window line) splits the car into a lower and an upper part
    split = points[(points[:, 2] < -0.75) | (points[:, 2] > -0.45)]
    labels = np.ones(len(split), dtype=np.int64)
    # the thesis' 0.3 m radius does not bridge the 0.3 m band (the measured 1.0 m for cars does)
    thesis = DetectConfig()
    apart = detect(split, labels, config=DetectConfig(cluster=thesis.cluster, merge_overlap=0.0))
    assert len(apart) == 2
    assert all(b.size[2] < 1.0 for b in apart)
    for config in (thesis, DetectConfig(cluster=ClusterConfig.measured())):
        (merged,) = detect(split, labels, config=config)
        assert merged.num_points == len(split)
        assert merged.size[2] == pytest.approx(car.size[2], abs=0.02)
        assert bev_iou(merged, car) > 0.9
    # boxes of different classes are never merged
    labels[split[:, 2] > -0.45] = KITTI3.id_of("pedestrian")
    assert len(detect(split, labels, config=thesis)) == len(detect(split, labels)) == 2


def test_merging_refits_the_joined_objects_and_keeps_the_others_boxes() -> None:
    split_car = ray_hits(car_at(8.0, 4.0, 1.2), noise_m=0.01)
    split_car = split_car[(split_car[:, 2] < -0.75) | (split_car[:, 2] > -0.45)]
    whole_car = ray_hits(car_at(-9.0, -5.0, 0.3), noise_m=0.01)
    points = np.concatenate([whole_car, split_car])
    labels = np.ones(len(points), dtype=np.int64)
    config = DetectConfig()
    merged, whole = detect(points, labels, config=config)
    assert merged.num_points == len(split_car)
    # each box is the one its points alone give: the untouched car's box kept, the joined car's fitted again
    (alone,) = detect(whole_car, labels[: len(whole_car)], config=config)
    (joined,) = detect(split_car, labels[: len(split_car)], config=config)
    for box, reference in ((whole, alone), (merged, joined)):
        assert box.num_points == reference.num_points
        np.testing.assert_allclose(box.center, reference.center, atol=1e-9)
        np.testing.assert_allclose(box.size, reference.size, atol=1e-9)
        assert box.yaw == pytest.approx(reference.yaw, abs=1e-9)


def test_ground_removal_cuts_labels_that_leak_onto_the_road() -> None:
    xyz, labels, truths = ray_cast_scene()
    car = truths[0]
    # a segmentation network often paints the road around a car with the car's class
    leak = (np.linalg.norm(xyz[:, :2] - car.center[:2], axis=1) < 3.5) & (labels == 0)
    leaked = np.where(leak, 1, labels)
    plain = max(detect(xyz, leaked), key=lambda b: bev_iou(b, car))
    cleaned = max(detect(xyz, leaked, config=DetectConfig(remove_ground=True)), key=lambda b: bev_iou(b, car))
    # measured: 0.64 with the leaked ring points, 0.97 with the ground removed first
    assert bev_iou(plain, car) < 0.7
    assert bev_iou(cleaned, car) > 0.9


def test_detections_tracked_over_time_keep_ids_and_get_velocities() -> None:
    """Two ray-cast cars passing the sensor 4 m to each side: detect every scan, then track.

    Next to the sensor a box-shaped car shows its flat roof at a grazing angle; those sparse returns
    form small extra clusters, some of which live long enough to be confirmed. The car itself must
    keep one id and get the right velocity.
    """
    tracker = Tracker()
    velocities = [np.array([10.0, 0.0]), np.array([-8.0, 0.0])]
    ids: list[set[int]] = [set(), set()]
    rng = np.random.default_rng(5)
    final: list[Box3D | None] = [None, None]
    for f in range(25):
        t = f * 0.1
        cars = [car_at(-15.0 + 10.0 * t, -4.0, 0.0), car_at(15.0 - 8.0 * t, 4.0, np.pi)]
        # the cars pass on opposite sides of the sensor, never hiding each other: cast them apart
        xyz = np.vstack([ray_hits(car, noise_m=0.02, rng=rng) for car in cars])
        tracks = tracker.update(detect(xyz, np.ones(len(xyz), dtype=np.int64)), t)
        for k, car in enumerate(cars):
            # a box around the visible faces only is shifted towards the sensor by up to half a car
            near = [b for b in tracks if np.linalg.norm(b.center[:2] - car.center[:2]) < 2.5]
            if f >= 2:  # confirmed after 3 scans
                assert near, f"frame {f}: car {k} has no track near it"
            if near:
                best = min(near, key=lambda b: np.linalg.norm(b.center[:2] - car.center[:2]))
                ids[k].add(best.track_id)
                final[k] = best
    assert len(ids[0]) == len(ids[1]) == 1
    assert ids[0] != ids[1]
    for k, box in enumerate(final):
        assert box is not None
        assert np.linalg.norm(box.velocity[:2] - velocities[k]) < 1.0
        assert abs(np.cos(box.yaw - np.arctan2(velocities[k][1], velocities[k][0]))) > 0.99


def test_empty_and_bad_input() -> None:
    assert detect(np.zeros((0, 3)), np.zeros(0, dtype=int)) == []
    assert detect(np.zeros((5, 3)), np.zeros(5, dtype=int)) == []
    with pytest.raises(CloudFormatError, match=r"ids 0..7 fall outside class set kitti3 \(0..3\)"):
        detect(np.zeros((3, 3)), np.array([0, 1, 7]))
    with pytest.raises(CloudFormatError, match=r"class labels: has shape \(2,\), expected \(3,\)"):
        detect(np.zeros((3, 3)), np.array([0, 1]))
    with pytest.raises(CloudFormatError, match="point scores"):
        detect(np.zeros((3, 3)), np.zeros(3, dtype=int), point_scores=np.zeros(4))
