"""CLEAR MOT metrics (Bernardin and Stiefelhagen, 2008): MOTA, MOTP and identity switches.

Frame by frame, ground-truth objects and hypotheses (tracker outputs) are matched by distance:
a correspondence from the previous frames is kept while it stays within the threshold; the rest
are matched by the Hungarian method on distance, pairs beyond the threshold forbidden. An object
matched to a different hypothesis than the one it was last matched to (in any earlier frame)
counts one identity switch. Unmatched objects are misses, unmatched hypotheses false positives.
MOTA = 1 - (misses + false positives + switches) / objects; MOTP = mean distance of the matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.instances.association import assign

#: one frame: id (any hashable: int, str …) -> position (x, y) or (x, y, z).
Frame = Mapping[Any, Sequence[float] | np.ndarray]


@dataclass(frozen=True)
class MotResult:
    """The CLEAR MOT counts of a sequence, from which MOTA and MOTP follow."""

    objects: int
    matches: int
    misses: int
    false_positives: int
    id_switches: int
    #: summed distance of all matches (metres)
    distance: float

    @property
    def mota(self) -> float:
        if self.objects == 0:
            return float("nan")
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / self.objects

    @property
    def motp(self) -> float:
        return self.distance / self.matches if self.matches else float("nan")


def _distances(gt: Frame, hyp: Frame, gt_ids: list[Any], hyp_ids: list[Any]) -> np.ndarray:
    if not gt_ids or not hyp_ids:
        return np.zeros((len(gt_ids), len(hyp_ids)))
    a = np.array([np.asarray(gt[i], dtype=np.float64) for i in gt_ids])
    b = np.array([np.asarray(hyp[j], dtype=np.float64) for j in hyp_ids])
    if a.shape[1] != b.shape[1]:
        raise PerceptionError(f"MOT positions must have the same dimension; got {a.shape[1]} and {b.shape[1]}")
    return np.asarray(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2))


def clear_mot(ground_truth: Sequence[Frame], hypotheses: Sequence[Frame], threshold_m: float) -> MotResult:
    """CLEAR MOT over aligned frame sequences; a match needs a distance below ``threshold_m``."""
    if len(ground_truth) != len(hypotheses):
        raise PerceptionError(
            f"MOT needs one hypothesis frame per ground-truth frame; got {len(hypotheses)} and {len(ground_truth)}"
        )
    last_match: dict[Any, Any] = {}  # object id -> the hypothesis id it was last matched to
    objects = matches = misses = false_positives = switches = 0
    distance = 0.0
    for gt, hyp in zip(ground_truth, hypotheses, strict=True):
        gt_ids, hyp_ids = list(gt), list(hyp)
        dist = _distances(gt, hyp, gt_ids, hyp_ids)
        within = dist < threshold_m
        pairs: list[tuple[int, int]] = []
        # 1. keep last frame's correspondences that are still valid
        hyp_index = {h: j for j, h in enumerate(hyp_ids)}
        for i, o in enumerate(gt_ids):
            if o not in last_match or last_match[o] not in hyp_index:
                continue
            j = hyp_index[last_match[o]]
            if within[i, j] and all(j != jj for _, jj in pairs):
                pairs.append((i, j))
        kept_rows = {i for i, _ in pairs}
        kept_cols = {j for _, j in pairs}
        # 2. Hungarian on the rest
        rows = [i for i in range(len(gt_ids)) if i not in kept_rows]
        cols = [j for j in range(len(hyp_ids)) if j not in kept_cols]
        sub = dist[np.ix_(rows, cols)]
        new, _, _ = assign(sub, within[np.ix_(rows, cols)])
        for r, c in new:
            i, j = rows[r], cols[c]
            o, h = gt_ids[i], hyp_ids[j]
            if o in last_match and last_match[o] != h:
                switches += 1
            pairs.append((i, j))
        for i, j in pairs:
            last_match[gt_ids[i]] = hyp_ids[j]
            distance += float(dist[i, j])
        objects += len(gt_ids)
        matches += len(pairs)
        misses += len(gt_ids) - len(pairs)
        false_positives += len(hyp_ids) - len(pairs)
    return MotResult(objects, matches, misses, false_positives, switches, distance)
