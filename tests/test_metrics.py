"""Metrics (docs/algorithms.md §8): worked examples, agreement with scikit-learn on real frames, instance matching."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3, SEMANTIC_KITTI, semantickitti_instance_ids, semantickitti_learning_ids
from perception_ws.metrics import (
    ClassMetrics,
    InstanceMetrics,
    RuntimeStats,
    Scores,
    class_scores,
    confusion_matrix,
    format_table,
    instance_scores,
    match_instances,
)

CAR, PED, CYC = 1, 2, 3


def _close(s: Scores, p: float, r: float, iou: float) -> None:
    np.testing.assert_allclose([s.precision, s.recall, s.iou], [p, r, iou], rtol=0, atol=1e-12, equal_nan=True)


# --- class level, by hand ----------------------------------------------------------------------------


def test_class_scores_hand_worked() -> None:
    #         point: 0  1  2  3  4  5  6  7
    gt = np.array([0, 1, 1, 1, 2, 2, 0, 3])
    pred = np.array([0, 1, 1, 0, 2, 0, 1, 0])
    # unknown: P = {0,3,5,7} (4), G = {0,6} (2), P∩G = {0}      -> P 1/4, R 1/2, IoU 1/(4+2-1) = 1/5
    # car:     P = {1,2,6} (3),   G = {1,2,3} (3), P∩G = {1,2} -> P 2/3, R 2/3, IoU 2/4
    # ped:     P = {4} (1),       G = {4,5} (2), P∩G = {4}     -> P 1,   R 1/2, IoU 1/2
    # cyclist: P = {} (0),        G = {7} (1)                  -> P 0/0 = NaN, R 0, IoU 0/1 = 0
    scores = class_scores(gt, pred, KITTI3)
    assert list(scores) == ["unknown", "car", "pedestrian", "cyclist"]
    _close(scores["unknown"], 1 / 4, 1 / 2, 1 / 5)
    _close(scores["car"], 2 / 3, 2 / 3, 1 / 2)
    _close(scores["pedestrian"], 1, 1 / 2, 1 / 2)
    _close(scores["cyclist"], math.nan, 0, 0)
    # Object mean leaves the undefined cyclist precision out: P (2/3 + 1)/2, R (2/3 + 1/2 + 0)/3, IoU (1/2+1/2+0)/3.
    metrics = ClassMetrics(KITTI3)
    metrics.update(gt, pred)
    _close(metrics.mean(), 5 / 6, 7 / 18, 1 / 3)
    assert metrics.scores()["car"].as_percent() == pytest.approx((200 / 3, 200 / 3, 50.0))


def test_class_absent_everywhere_is_nan_and_left_out_of_the_mean() -> None:
    gt = np.array([1, 1, 0, 0])
    pred = np.array([1, 0, 0, 0])
    scores = class_scores(gt, pred, KITTI3)
    _close(scores["pedestrian"], math.nan, math.nan, math.nan)  # no prediction, no ground truth
    metrics = ClassMetrics(KITTI3)
    metrics.update(gt, pred)
    _close(metrics.mean(), 1.0, 0.5, 0.5)  # car alone: P 1/1, R 1/2, IoU 1/2


def test_ignore_gt_drops_unlabelled_points() -> None:
    # SemanticKITTI convention: points labelled 0 are not scored, whatever was predicted there.
    gt = np.array([0, 0, 1, 1])
    pred = np.array([1, 1, 1, 0])
    scores = class_scores(gt, pred, KITTI3, ignore_gt=0)
    assert "unknown" not in scores
    _close(scores["car"], 1.0, 0.5, 0.5)  # without ignoring: P would be 1/3
    _close(class_scores(gt, pred, KITTI3)["car"], 1 / 3, 1 / 2, 1 / 4)


def test_accumulation_sums_counts_instead_of_averaging_frames() -> None:
    metrics = ClassMetrics(KITTI3)
    metrics.update(np.array([1, 1, 1, 1]), np.array([1, 1, 1, 1]))  # car IoU 4/4 alone
    metrics.update(np.array([1, 0]), np.array([0, 1]))  # car IoU 0/2 alone
    # Summed: P∩G = 4, |P| = 5, |G| = 5 -> IoU 4/6 (the per-frame mean would say 1/2).
    _close(metrics.scores()["car"], 4 / 5, 4 / 5, 4 / 6)
    assert metrics.frames == 2


# --- class level, against scikit-learn on real frames ---------------------------------------------------


def _squeezeseg_frames(real_data: Path) -> list[np.ndarray]:
    files = sorted((real_data / "kitti_squeezeseg").glob("*.npy"))
    assert len(files) == 4
    return [np.load(f) for f in files]


def _semantickitti(real_data: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(real_data / "semantickitti" / "000000.label", dtype=np.uint32)
    return semantickitti_learning_ids(raw), semantickitti_instance_ids(raw)


def _perturbed(gt: np.ndarray, num_classes: int, rate: float, seed: int) -> np.ndarray:
    """The truth with a fraction of the entries replaced by a random class (fixed seed)."""
    rng = np.random.default_rng(seed)
    pred = gt.copy()
    flip = rng.random(gt.shape) < rate
    pred[flip] = rng.integers(0, num_classes, int(flip.sum()))
    return pred


def _sklearn_scores(gt: np.ndarray, pred: np.ndarray, labels: list[int]) -> np.ndarray:
    kw = {"labels": labels, "average": None}
    jaccard = skm.jaccard_score(gt, pred, zero_division=0, **kw).astype(np.float64)
    # scikit-learn's jaccard has no NaN option: mark its 0/0 case (class in neither array) as ours does.
    jaccard[~np.isin(labels, np.concatenate([gt, pred]))] = np.nan
    return np.stack(
        [
            skm.precision_score(gt, pred, zero_division=np.nan, **kw),
            skm.recall_score(gt, pred, zero_division=np.nan, **kw),
            jaccard,
        ],
        axis=1,
    )


def _ours(scores: dict[str, Scores]) -> np.ndarray:
    return np.array([[s.precision, s.recall, s.iou] for s in scores.values()])


@pytest.mark.real_data
def test_squeezeseg_frames_agree_with_sklearn(real_data: Path) -> None:
    metrics = ClassMetrics(KITTI3)
    all_gt, all_pred = [], []
    for i, frame in enumerate(_squeezeseg_frames(real_data)):
        valid = frame[..., 4] > 0
        gt_img = frame[..., 5].astype(np.int64)
        # A prediction a little off: labels shifted one column (object borders wrong) plus 2% random flips.
        pred_img = _perturbed(np.roll(gt_img, 1, axis=1), len(KITTI3), 0.02, seed=i)
        gt, pred = gt_img[valid], pred_img[valid]
        metrics.update(gt, pred)
        all_gt.append(gt)
        all_pred.append(pred)
    gt, pred = np.concatenate(all_gt), np.concatenate(all_pred)
    labels = list(KITTI3.ids)
    np.testing.assert_array_equal(metrics.confusion, skm.confusion_matrix(gt, pred, labels=labels))
    expected = _sklearn_scores(gt, pred, labels)
    np.testing.assert_allclose(_ours(metrics.scores()), expected, rtol=1e-12, equal_nan=True)
    # The real frames hold cars and cyclists but no pedestrian: recall undefined, precision 0 (flips).
    ped = metrics.scores()["pedestrian"]
    assert math.isnan(ped.recall)
    assert ped.precision == 0.0
    assert 0.5 < metrics.scores()["car"].iou < 1.0


@pytest.mark.real_data
def test_semantickitti_scan_agrees_with_sklearn(real_data: Path) -> None:
    gt, _ = _semantickitti(real_data)
    pred = _perturbed(gt, len(SEMANTIC_KITTI), 0.05, seed=7)
    labels = list(SEMANTIC_KITTI.ids)
    np.testing.assert_array_equal(confusion_matrix(gt, pred, len(SEMANTIC_KITTI)), skm.confusion_matrix(gt, pred))
    np.testing.assert_allclose(
        _ours(class_scores(gt, pred, SEMANTIC_KITTI)), _sklearn_scores(gt, pred, labels), rtol=1e-12, equal_nan=True
    )
    # Ignoring unlabelled ground truth == scoring only the labelled points with scikit-learn.
    keep = gt != 0
    ours = _ours(class_scores(gt, pred, SEMANTIC_KITTI, ignore_gt=0))
    np.testing.assert_allclose(ours, _sklearn_scores(gt[keep], pred[keep], labels[1:]), rtol=1e-12, equal_nan=True)


# --- instance level, by hand ---------------------------------------------------------------------------


def test_instances_split_by_hand() -> None:
    #                  point: 0  1  2  3  4  5  6  7  8  9
    gt_lab = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    gt_ins = np.array([1, 1, 1, 1, 1, 1, 2, 2, 0, 0])  # car A = {0..5} (6), car B = {6,7} (2)
    pr_lab = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0])
    pr_ins = np.array([1, 1, 1, 1, 2, 2, 3, 3, 3, 0])  # A split into p1 = {0..3}, p2 = {4,5}; p3 = B + point 8
    # A first (larger): IoU(A,p1) = 4/6, IoU(A,p2) = 2/6 -> p1, 4 shared points.
    # B: IoU(B,p3) = 2/3 -> p3, 2 shared points. Matched sum = 6; p2 stays unmatched.
    # |P| = 9 (points 0..8), |G| = 8, |P∪G| = 9  -> P 6/9, R 6/8, IoU 6/9 (class level: 8/9, 1, 8/9).
    scores = instance_scores(gt_lab, gt_ins, pr_lab, pr_ins, KITTI3)
    _close(scores["car"], 6 / 9, 6 / 8, 6 / 9)
    _close(class_scores(gt_lab, pr_lab, KITTI3)["car"], 8 / 9, 1, 8 / 9)
    _close(scores["pedestrian"], math.nan, math.nan, math.nan)
    matches = match_instances(np.where(gt_lab == 1, gt_ins, 0), np.where(pr_lab == 1, pr_ins, 0))
    assert [(m.gt_id, m.pred_id, m.intersection) for m in matches] == [(1, 1, 4), (2, 3, 2)]
    assert matches[0].iou == pytest.approx(4 / 6)


def test_instances_merge_by_hand_matching_is_exclusive() -> None:
    #                  point: 0  1  2  3  4  5
    gt_lab = np.full(6, CAR)
    gt_ins = np.array([1, 1, 1, 1, 2, 2])  # car A = {0..3} (4), car B = {4,5} (2)
    pr_lab = np.full(6, CAR)
    pr_ins = np.array([9, 9, 9, 9, 9, 9])  # one predicted car covering both
    # A first: IoU(A,p9) = 4/6 -> matched, 4 points. B: p9 is taken -> unmatched (the thesis' M is a function
    # of the prediction, so p9 cannot count twice). |P| = |G| = |P∪G| = 6 -> P = R = IoU = 4/6.
    _close(instance_scores(gt_lab, gt_ins, pr_lab, pr_ins, KITTI3)["car"], 4 / 6, 4 / 6, 4 / 6)


def test_instances_larger_ground_truth_chooses_first() -> None:
    #                  point: 0  1  2  3  4  5  6
    gt_ins = np.array([1, 1, 1, 1, 2, 2, 2])  # A = {0..3} (4), B = {4,5,6} (3)
    pr_ins = np.array([1, 1, 2, 3, 1, 1, 1])  # p1 = {0,1,4,5,6}, p2 = {2}, p3 = {3}
    # A first: IoU(A,p1) = 2/(4+5-2) = 2/7 > IoU(A,p2) = IoU(A,p3) = 1/4 -> A takes p1 (2 points).
    # B: its only overlap p1 is taken -> unmatched. Sum 2 over |P| = |G| = |P∪G| = 7.
    # (Taking B first would give 3 + 1 = 4: the order is part of the metric.)
    lab = np.full(7, CAR)
    _close(instance_scores(lab, gt_ins, lab, pr_ins, KITTI3)["car"], 2 / 7, 2 / 7, 2 / 7)


def test_points_without_instance_count_but_never_match() -> None:
    lab = np.array([PED, PED, PED, PED])
    gt_ins = np.array([1, 1, 0, 0])  # 0: labelled pedestrian but no instance
    pr_ins = np.array([1, 1, -1, -1])  # -1: DBSCAN noise
    # matched 2 of |P| = |G| = 4 points.
    _close(instance_scores(lab, gt_ins, lab, pr_ins, KITTI3)["pedestrian"], 0.5, 0.5, 0.5)


# --- instance level on the real SemanticKITTI scan ---------------------------------------------------------

THINGS = list(range(1, 9))  # SemanticKITTI classes with instance ids: car … motorcyclist


def _reference_instance_scores(
    gt_lab: np.ndarray, gt_ins: np.ndarray, pr_lab: np.ndarray, pr_ins: np.ndarray, c: int
) -> tuple[float, float, float]:
    """A deliberately plain reimplementation of docs/algorithms.md §8 with Python sets (slow, independent)."""
    gt_sets: dict[int, set[int]] = {}
    pr_sets: dict[int, set[int]] = {}
    n_gt = n_pr = n_union = 0
    for i, (gl, gi, pl, pi) in enumerate(
        zip(gt_lab.tolist(), gt_ins.tolist(), pr_lab.tolist(), pr_ins.tolist(), strict=True)
    ):
        n_gt += gl == c
        n_pr += pl == c
        n_union += gl == c or pl == c
        if gl == c and gi > 0:
            gt_sets.setdefault(gi, set()).add(i)
        if pl == c and pi > 0:
            pr_sets.setdefault(pi, set()).add(i)
    taken: set[int] = set()
    matched = 0
    for gid in sorted(gt_sets, key=lambda g: (-len(gt_sets[g]), g)):
        g = gt_sets[gid]
        best, best_iou = None, 0.0
        for pid in sorted(pr_sets):
            if pid in taken:
                continue
            iou = len(g & pr_sets[pid]) / len(g | pr_sets[pid])
            if iou > best_iou:
                best, best_iou = pid, iou
        if best is not None:
            taken.add(best)
            matched += len(g & pr_sets[best])
    nan = math.nan
    return (matched / n_pr if n_pr else nan, matched / n_gt if n_gt else nan, matched / n_union if n_union else nan)


@pytest.mark.real_data
def test_semantickitti_instances_against_themselves(real_data: Path) -> None:
    sem, ins = _semantickitti(real_data)
    scores = instance_scores(sem, ins, sem, ins, SEMANTIC_KITTI, classes=THINGS)
    for name in ("car", "bicycle"):
        _close(scores[name], 1.0, 1.0, 1.0)
    # Person points that carry no instance id (id 0) cannot be matched.
    person = sem == SEMANTIC_KITTI.id_of("person")
    lone = int((person & (ins == 0)).sum())
    assert lone > 0
    expected = 1 - lone / int(person.sum())
    _close(scores["person"], expected, expected, expected)
    _close(scores["truck"], math.nan, math.nan, math.nan)  # not in this scan


@pytest.mark.real_data
def test_semantickitti_split_and_merge_match_slow_reference(real_data: Path) -> None:
    sem, ins = _semantickitti(real_data)
    xyz = np.fromfile(real_data / "semantickitti" / "000000.bin", dtype=np.float32).reshape(-1, 4)[:, :3]
    car, person = SEMANTIC_KITTI.id_of("car"), SEMANTIC_KITTI.id_of("person")
    pr_lab, pr_ins = sem.copy(), ins.copy()
    # Split the largest car in two along its first coordinate.
    car_ids, car_sizes = np.unique(ins[sem == car], return_counts=True)
    big = (sem == car) & (ins == car_ids[np.argmax(car_sizes)])
    far_half = big & (xyz[:, 0] > np.median(xyz[big, 0]))
    pr_ins[far_half] = 1000
    # Merge the two largest people into one predicted instance.
    p_ids, p_sizes = np.unique(ins[(sem == person) & (ins > 0)], return_counts=True)
    first, second = p_ids[np.argsort(-p_sizes)[:2]]
    pr_ins[(sem == person) & (ins == second)] = first
    # And mislabel 3% of all points (fixed seed), so instances also lose and gain points.
    pr_lab = _perturbed(pr_lab, len(SEMANTIC_KITTI), 0.03, seed=3)

    metrics = InstanceMetrics(SEMANTIC_KITTI, classes=THINGS)
    metrics.update(sem, ins, pr_lab, pr_ins)
    scores = metrics.scores()
    for c in (car, person, SEMANTIC_KITTI.id_of("bicycle")):
        expected = _reference_instance_scores(sem, ins, pr_lab, pr_ins, c)
        got = scores[SEMANTIC_KITTI.names[c]]
        np.testing.assert_allclose([got.precision, got.recall, got.iou], expected, rtol=1e-12)
    assert scores["car"].recall < 1.0
    assert scores["person"].recall < 1.0
    # Instance scores never beat class scores (matched points are a subset of P∩G).
    cls = class_scores(sem, pr_lab, SEMANTIC_KITTI)
    for name, s in scores.items():
        if not math.isnan(s.iou):
            assert s.iou <= cls[name].iou
            assert s.precision <= cls[name].precision


def test_instance_metrics_accumulate_over_frames() -> None:
    lab = np.full(6, CAR)
    merged = InstanceMetrics(KITTI3)
    merged.update(lab, np.array([1, 1, 1, 1, 2, 2]), lab, np.full(6, 9))  # 4 of 6 matched
    merged.update(lab[:2], np.array([1, 1]), lab[:2], np.array([5, 5]))  # 2 of 2 matched
    _close(merged.scores()["car"], 6 / 8, 6 / 8, 6 / 8)
    assert merged.frames == 2


# --- errors --------------------------------------------------------------------------------------------


def test_bad_inputs_give_one_clear_error() -> None:
    with pytest.raises(PerceptionError, match=r"class id 7 is outside 0\.\.3 \(max id 7"):
        confusion_matrix(np.array([0, 1]), np.array([7, 1]), 4)
    with pytest.raises(PerceptionError, match=r"class id -1 is outside"):
        confusion_matrix(np.array([-1, 1]), np.array([0, 1]), 4)
    with pytest.raises(PerceptionError, match=r"shape \(3,\) but pred has shape \(2,\)"):
        confusion_matrix(np.array([0, 1, 1]), np.array([0, 1]), 4)
    with pytest.raises(PerceptionError, match=r"integer id array, got dtype float32"):
        class_scores(np.zeros(3, np.float32), np.zeros(3, np.int64), KITTI3)
    with pytest.raises(PerceptionError, match=r"gt instances have 2 entries but labels 3"):
        InstanceMetrics(KITTI3).update(np.ones(3, int), np.ones(2, int), np.ones(3, int), np.ones(2, int))
    with pytest.raises(PerceptionError, match=r"class id 4 is not in kitti3"):
        InstanceMetrics(KITTI3, classes=[4])


# --- runtime and table ---------------------------------------------------------------------------------


def test_runtime_stats() -> None:
    stats = RuntimeStats("net")
    for ms in (10.0, 12.0, 14.0, 16.0, 18.0):
        stats.add(ms)
    # mean 14, population std sqrt((16+4+0+4+16)/5) = sqrt(8) = 2.83; median 14; p90 between 16 and 18.
    assert stats.mean == 14.0
    assert stats.std == pytest.approx(math.sqrt(8))
    assert stats.p50 == 14.0
    assert stats.p90 == pytest.approx(17.2)
    assert stats.p99 == pytest.approx(17.92)
    assert str(stats) == "net: 14.0 ± 2.8 ms"
    assert "p90 17.2" in stats.summary()
    assert "5 frames" in stats.summary()
    with stats.timer():
        time.sleep(0.02)
    assert len(stats) == 6
    assert 19.0 <= stats.values_ms[-1] < 200.0
    assert str(RuntimeStats()) == "no frames"
    assert math.isnan(RuntimeStats().mean)
    with pytest.raises(PerceptionError, match="finite number of ms"):
        stats.add(-1.0)


def test_format_table() -> None:
    gt = np.array([0, 1, 1, 1, 2, 2, 0, 3])
    pred = np.array([0, 1, 1, 0, 2, 0, 1, 0])
    scores = class_scores(gt, pred, KITTI3)
    text = format_table(scores, scores, mean_over=["car", "pedestrian", "cyclist"])
    lines = text.splitlines()
    assert "class-level" in lines[0]
    assert "instance-level" in lines[0]
    car = next(line for line in lines if line.startswith("car"))
    assert car.split() == ["car", "66.7", "66.7", "50.0", "66.7", "66.7", "50.0"]
    cyclist = next(line for line in lines if line.startswith("cyclist"))
    assert cyclist.split()[1] == "-"  # undefined precision
    assert lines[-1].split() == ["mean", "83.3", "38.9", "33.3", "83.3", "38.9", "33.3"]
    with pytest.raises(PerceptionError, match="mean_over names unknown"):
        format_table(scores, mean_over=["truck"])
