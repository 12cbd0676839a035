"""Segmentation metrics of the SqueezeSeg evaluation (docs/algorithms.md §8), and runtime statistics.

Class level, per class c, over points: precision |P∩G|/|P|, recall |P∩G|/|G|, IoU |P∩G|/|P∪G|, where P
and G are the points predicted as c and labelled c. Scores over a data set sum the counts of all its
frames first (one confusion matrix), as the thesis scores the whole validation set, rather than
averaging per-frame scores.

Instance level: ground-truth instances of a class are matched to predicted instances of that class
(largest ground truth first, each taking the free prediction of largest IoU); the matched
intersections are summed and divided by the same |P|, |G| and |P∪G| as at class level, so an instance
score never exceeds the class score.

Undefined ratios: a ratio whose denominator is zero (precision of a class never predicted, recall of a
class absent from the ground truth, IoU of a class in neither) is NaN, and NaN scores are left out of
means. Instance ids <= 0 mean "no instance" (0 in :class:`~perception_ws.scan.Scan`, -1 for DBSCAN noise):
such points count in |P| and |G| but are never matched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.labels import ClassSet


@dataclass(frozen=True)
class Scores:
    """Precision, recall and IoU of one class as fractions in [0, 1] (NaN where undefined)."""

    precision: float
    recall: float
    iou: float

    def as_percent(self) -> tuple[float, float, float]:
        """(precision, recall, IoU) in percent, the way the thesis' tables print them."""
        return (100.0 * self.precision, 100.0 * self.recall, 100.0 * self.iou)


def _ratio(num: int | float, den: int | float) -> float:
    return float(num) / float(den) if den else math.nan


def _scores(shared: int, n_pred: int, n_gt: int, union: int) -> Scores:
    """Scores from counts: ``shared`` points over |P|, |G| and |P ∪ G|."""
    return Scores(_ratio(shared, n_pred), _ratio(shared, n_gt), _ratio(shared, union))


def mean_scores(scores: Iterable[Scores]) -> Scores:
    """Field-wise mean of several classes' scores, NaN entries left out (NaN if none is defined)."""
    table = np.array([[s.precision, s.recall, s.iou] for s in scores], dtype=np.float64).reshape(-1, 3)
    defined = ~np.isnan(table)
    counts = defined.sum(axis=0)
    sums = np.where(defined, table, 0.0).sum(axis=0)
    means = [float(s / c) if c else math.nan for s, c in zip(sums, counts, strict=True)]
    return Scores(*means)


def _as_ids(name: str, ids: np.ndarray) -> np.ndarray:
    """A flat int64 view of an id array, rejecting anything that is not integer-valued."""
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iub":
        raise PerceptionError(
            f"{name}: expected an integer id array, got dtype {arr.dtype} (cast with .astype(np.int64) if the "
            "values are whole numbers)"
        )
    return arr.reshape(-1).astype(np.int64, copy=False)


def _check_pair(gt_name: str, gt: np.ndarray, pred_name: str, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g, p = np.asarray(gt), np.asarray(pred)
    if g.shape != p.shape:
        raise PerceptionError(f"{gt_name} has shape {g.shape} but {pred_name} has shape {p.shape}; expected equal")
    return _as_ids(gt_name, g), _as_ids(pred_name, p)


def _check_range(name: str, ids: np.ndarray, num_classes: int) -> None:
    if ids.size == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise PerceptionError(
            f"{name}: class id {bad} is outside 0..{num_classes - 1} (max id {high}, min id {low}); "
            f"expected ids of a {num_classes}-class set"
        )


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: row = ground-truth class, column = predicted class (scikit-learn's layout).

    Every id must lie in 0..K-1: an id outside is an error (it means a label-space mix-up, which
    silently dropping points would hide).
    """
    if num_classes < 1:
        raise PerceptionError(f"num_classes must be >= 1, got {num_classes}")
    g, p = _check_pair("gt", gt, "pred", pred)
    _check_range("gt", g, num_classes)
    _check_range("pred", p, num_classes)
    counts = np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def scores_from_confusion(
    confusion: np.ndarray, class_set: ClassSet, ignore_gt: int | None = None
) -> dict[str, Scores]:
    """Per-class scores from a confusion matrix (rows ground truth, columns prediction).

    ``ignore_gt``: a ground-truth id whose points are left out entirely (SemanticKITTI's convention for
    "unlabeled"); that class gets no entry. ``None`` (the KITTI-3 / SqueezeSeg convention) scores every
    class, the background "unknown" included.
    """
    k = len(class_set)
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.shape != (k, k):
        raise PerceptionError(
            f"confusion matrix has shape {cm.shape}; expected ({k}, {k}) for class set {class_set.name}"
        )
    if ignore_gt is not None:
        if not 0 <= ignore_gt < k:
            raise PerceptionError(f"ignore_gt={ignore_gt} is not a class id of {class_set.name} (0..{k - 1})")
        cm = cm.copy()
        cm[ignore_gt, :] = 0
    tp = np.diag(cm)
    n_pred = cm.sum(axis=0)
    n_gt = cm.sum(axis=1)
    return {
        class_set.names[c]: _scores(int(tp[c]), int(n_pred[c]), int(n_gt[c]), int(n_pred[c] + n_gt[c] - tp[c]))
        for c in class_set.ids
        if c != ignore_gt
    }


def class_scores(
    gt: np.ndarray, pred: np.ndarray, class_set: ClassSet, ignore_gt: int | None = None
) -> dict[str, Scores]:
    """Class-level precision, recall and IoU of one frame (or of already concatenated frames)."""
    return scores_from_confusion(confusion_matrix(gt, pred, len(class_set)), class_set, ignore_gt)


class ClassMetrics:
    """Class-level scores over many frames: the frames' confusion matrices are summed, then scored."""

    def __init__(self, class_set: ClassSet, ignore_gt: int | None = None) -> None:
        self.class_set = class_set
        self.ignore_gt = ignore_gt
        self.confusion = np.zeros((len(class_set), len(class_set)), dtype=np.int64)
        self.frames = 0

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        self.confusion += confusion_matrix(gt, pred, len(self.class_set))
        self.frames += 1

    def scores(self) -> dict[str, Scores]:
        return scores_from_confusion(self.confusion, self.class_set, self.ignore_gt)

    def mean(self) -> Scores:
        """Mean over the object classes (every class but the class set's ignore id)."""
        scores = self.scores()
        return mean_scores(scores[self.class_set.names[c]] for c in self.class_set.object_ids if c != self.ignore_gt)


@dataclass(frozen=True)
class InstanceMatch:
    """One matched pair: a ground-truth instance, the predicted instance it took, their shared points."""

    gt_id: int
    pred_id: int
    intersection: int
    iou: float


def match_instances(gt_ids: np.ndarray, pred_ids: np.ndarray) -> list[InstanceMatch]:
    """Match the instances of ONE class, given per-point instance ids (<= 0: no instance).

    ``gt_ids[i]`` is point i's ground-truth instance if the point is labelled with the class (else <= 0),
    ``pred_ids[i]`` its predicted instance if predicted as the class (else <= 0).

    The matching of docs/algorithms.md §8: ground-truth instances in decreasing size (ties: smaller id first), each
    takes the predicted instance of largest IoU among those not yet taken (ties: smaller id first).
    Exclusive in both directions, because the thesis ("Evaluation metrics" of the SqueezeSeg chapter)
    writes the matching as a function M(i) = j of the predicted instance i, and states that the
    matched ground-truth sets G_M(i),c are, like the predicted sets, mutually exclusive: a ground-truth
    instance is matched at most once and so is a prediction. Pairs with no shared point are never
    matched (they would add nothing to the sums).
    """
    g, p = _check_pair("gt instance ids", gt_ids, "pred instance ids", pred_ids)
    g_uniq, g_idx = np.unique(g, return_inverse=True)
    p_uniq, p_idx = np.unique(p, return_inverse=True)
    g_size = np.bincount(g_idx, minlength=len(g_uniq))
    p_size = np.bincount(p_idx, minlength=len(p_uniq))
    both = (g > 0) & (p > 0)
    # Intersections of every overlapping (gt, pred) pair at once. np.unique on the pair codes keeps
    # this sparse: a poor clustering can produce thousands of predicted instances.
    codes, inter = np.unique(g_idx[both] * len(p_uniq) + p_idx[both], return_counts=True)
    pair_g, pair_p = np.divmod(codes, len(p_uniq))
    iou = inter / (g_size[pair_g] + p_size[pair_p] - inter)
    # Rank of each gt instance: larger first, then smaller id.
    order = np.lexsort((g_uniq, -g_size))
    rank = np.empty(len(g_uniq), dtype=np.int64)
    rank[order] = np.arange(len(g_uniq))
    # Visit pairs by gt rank, then IoU (high first), then pred id; the first free pred of a gt wins.
    visit = np.lexsort((p_uniq[pair_p], -iou, rank[pair_g]))
    gt_done = np.zeros(len(g_uniq), dtype=bool)
    pred_done = np.zeros(len(p_uniq), dtype=bool)
    matches: list[InstanceMatch] = []
    for k in visit:  # one pass over overlapping instance pairs, not over points
        gi, pi = pair_g[k], pair_p[k]
        if gt_done[gi] or pred_done[pi]:
            continue
        gt_done[gi] = pred_done[pi] = True
        matches.append(InstanceMatch(int(g_uniq[gi]), int(p_uniq[pi]), int(inter[k]), float(iou[k])))
    return matches


@dataclass
class _InstanceCounts:
    matched: int = 0
    n_pred: int = 0
    n_gt: int = 0
    intersection: int = 0  # class-level |P ∩ G|, for the union

    def scores(self) -> Scores:
        return _scores(self.matched, self.n_pred, self.n_gt, self.n_pred + self.n_gt - self.intersection)


class InstanceMetrics:
    """Instance-level scores over many frames (matched intersections and point counts summed per class).

    ``classes``: the class ids to score (default: the class set's object ids; for SemanticKITTI pass
    the "thing" classes, since stuff classes carry no instance ids). ``ignore_gt`` as in
    :func:`scores_from_confusion`.
    """

    def __init__(self, class_set: ClassSet, classes: Sequence[int] | None = None, ignore_gt: int | None = None) -> None:
        self.class_set = class_set
        self.classes = list(class_set.object_ids if classes is None else classes)
        for c in self.classes:
            if not 0 <= c < len(class_set):
                raise PerceptionError(f"class id {c} is not in {class_set.name} (0..{len(class_set) - 1})")
        self.ignore_gt = ignore_gt
        self._counts = {c: _InstanceCounts() for c in self.classes}
        self.frames = 0

    def update(
        self, gt_labels: np.ndarray, gt_instances: np.ndarray, pred_labels: np.ndarray, pred_instances: np.ndarray
    ) -> None:
        gl, pl = _check_pair("gt labels", gt_labels, "pred labels", pred_labels)
        gi, pi = _check_pair("gt instances", gt_instances, "pred instances", pred_instances)
        if gi.shape != gl.shape:
            raise PerceptionError(f"gt instances have {gi.size} entries but labels {gl.size}; expected one per point")
        _check_range("gt labels", gl, len(self.class_set))
        _check_range("pred labels", pl, len(self.class_set))
        if self.ignore_gt is not None:
            keep = gl != self.ignore_gt
            gl, pl, gi, pi = gl[keep], pl[keep], gi[keep], pi[keep]
        for c in self.classes:
            in_gt, in_pred = gl == c, pl == c
            either = in_gt | in_pred
            matches = match_instances(np.where(in_gt[either], gi[either], 0), np.where(in_pred[either], pi[either], 0))
            counts = self._counts[c]
            counts.matched += sum(m.intersection for m in matches)
            counts.n_pred += int(in_pred.sum())
            counts.n_gt += int(in_gt.sum())
            counts.intersection += int((in_gt & in_pred).sum())
        self.frames += 1

    def scores(self) -> dict[str, Scores]:
        return {self.class_set.names[c]: self._counts[c].scores() for c in self.classes}

    def mean(self) -> Scores:
        return mean_scores(self.scores().values())


def instance_scores(
    gt_labels: np.ndarray,
    gt_instances: np.ndarray,
    pred_labels: np.ndarray,
    pred_instances: np.ndarray,
    class_set: ClassSet,
    classes: Sequence[int] | None = None,
    ignore_gt: int | None = None,
) -> dict[str, Scores]:
    """Instance-level precision, recall and IoU of one frame (see :class:`InstanceMetrics`)."""
    metrics = InstanceMetrics(class_set, classes, ignore_gt)
    metrics.update(gt_labels, gt_instances, pred_labels, pred_instances)
    return metrics.scores()


class RuntimeStats:
    """Per-frame durations in milliseconds: mean ± standard deviation (as the thesis reports) and percentiles.

    The standard deviation is the population one (ddof=0) of the recorded frames.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._ms: list[float] = []

    def add(self, ms: float) -> None:
        if not math.isfinite(ms) or ms < 0:
            raise PerceptionError(f"runtime {self.name!r}: a duration must be a finite number of ms >= 0, got {ms}")
        self._ms.append(float(ms))

    @contextmanager
    def timer(self) -> Iterator[None]:
        """Time the ``with`` block and record it (also when the block raises: the time was spent)."""
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self._ms.append((time.perf_counter_ns() - start) / 1e6)

    @property
    def values_ms(self) -> np.ndarray:
        return np.asarray(self._ms, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._ms)

    @property
    def mean(self) -> float:
        return float(np.mean(self._ms)) if self._ms else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self._ms)) if self._ms else math.nan

    def percentile(self, q: float) -> float:
        if not 0 <= q <= 100:
            raise PerceptionError(f"percentile must be in 0..100, got {q}")
        return float(np.percentile(self._ms, q)) if self._ms else math.nan

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    def __str__(self) -> str:
        if not self._ms:
            return f"{self.name}: no frames" if self.name else "no frames"
        text = f"{self.mean:.1f} ± {self.std:.1f} ms"
        return f"{self.name}: {text}" if self.name else text

    def summary(self) -> str:
        """One line: mean ± std, p50/p90/p99 and the frame count."""
        if not self._ms:
            return str(self)
        return f"{self} (p50 {self.p50:.1f}, p90 {self.p90:.1f}, p99 {self.p99:.1f} ms; {len(self)} frames)"


def _cells(scores: Scores | None, digits: int) -> list[str]:
    if scores is None:
        return ["", "", ""]
    return ["-" if math.isnan(v) else f"{v:.{digits}f}" for v in scores.as_percent()]


def format_table(
    class_level: Mapping[str, Scores],
    instance_level: Mapping[str, Scores] | None = None,
    *,
    mean_over: Sequence[str] | None = None,
    digits: int = 1,
) -> str:
    """A text table of P / R / IoU in percent per class (undefined: "-"), like the thesis' Table 1.

    ``mean_over``: the class names averaged in the last row (NaN left out); default every row of
    ``class_level``. Pass the object classes to leave the background out.
    """
    names = list(class_level)
    if instance_level is not None:
        names += [n for n in instance_level if n not in class_level]
    mean_names = list(class_level) if mean_over is None else list(mean_over)
    unknown = [n for n in mean_names if n not in class_level and (instance_level is None or n not in instance_level)]
    if unknown:
        raise PerceptionError(f"format_table: mean_over names unknown class(es) {unknown}; rows are {names}")

    header = ["class", "P", "R", "IoU"] + (["P", "R", "IoU"] if instance_level is not None else [])
    rows = [header]
    for name in names:
        row = [name, *_cells(class_level.get(name), digits)]
        if instance_level is not None:
            row += _cells(instance_level.get(name), digits)
        rows.append(row)
    mean_row = ["mean", *_cells(mean_scores(class_level[n] for n in mean_names if n in class_level), digits)]
    if instance_level is not None:
        mean_row += _cells(mean_scores(instance_level[n] for n in mean_names if n in instance_level), digits)

    widths = [max(len(r[i]) for r in [*rows, mean_row]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        groups = [" ".join(cells[i : i + 3]) for i in range(1, len(cells), 3)]
        return "  ".join([cells[0], *groups])

    group_titles = ["class-level", "instance-level"][: (len(header) - 1) // 3]
    title = "  ".join([" " * widths[0], *(t.center(sum(widths[1:4]) + 2) for t in group_titles)])
    body = [line(r) for r in rows]
    rule = "-" * len(body[0])
    return "\n".join([title.rstrip(), body[0], rule, *body[1:], rule, line(mean_row)])
