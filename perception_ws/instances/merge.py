"""Merging of over-segmented objects: clusters of one class whose boxes overlap in the top view.

DBSCAN splits an object whose returns have gaps (a roof seen at a grazing angle, windows, a
partly hidden side) into several clusters; their boxes then overlap. Two boxes of the same class are
merged when their common top-view area covers at least ``min_overlap`` of the smaller one.
"""

from __future__ import annotations

import numpy as np

from perception_ws.boxes import Box3D, bev_iou


def overlap_of_smaller(a: Box3D, b: Box3D) -> float:
    """Top-view intersection area divided by the smaller box's top-view area (0 if either is empty)."""
    area_a, area_b = float(a.size[0] * a.size[1]), float(b.size[0] * b.size[1])
    if min(area_a, area_b) <= 0:
        return 0.0
    iou = bev_iou(a, b)
    intersection = iou * (area_a + area_b) / (1.0 + iou)  # from iou = I / (A + B - I)
    return intersection / min(area_a, area_b)


def merged_groups(groups: list[np.ndarray], boxes: list[Box3D], min_overlap: float) -> list[np.ndarray]:
    """Point-index groups after joining (transitively) those whose same-class boxes overlap enough."""
    parent = list(range(len(groups)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # only pairs of one class whose circumscribed circles meet can overlap: found for all pairs at once, the
    # polygon clipping only for those (in the order of a loop over i < j, so the merges are the same)
    centres = np.array([b.center[:2] for b in boxes]).reshape(-1, 2)
    reach = np.array([np.hypot(b.size[0], b.size[1]) / 2 for b in boxes])
    labels = np.array([b.label for b in boxes])
    apart = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=-1)
    candidate = (labels[:, None] == labels[None, :]) & (apart <= reach[:, None] + reach[None, :])
    for i, j in zip(*np.nonzero(np.triu(candidate, k=1)), strict=True):
        if overlap_of_smaller(boxes[i], boxes[j]) >= min_overlap:
            parent[root(int(j))] = root(int(i))
    members: dict[int, list[np.ndarray]] = {}
    for i, group in enumerate(groups):
        members.setdefault(root(i), []).append(group)
    return [np.concatenate(parts) for parts in members.values()]
