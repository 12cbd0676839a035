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


def merged_members(boxes: list[Box3D], min_overlap: float) -> list[list[int]]:
    """Which boxes join (transitively, same class, overlap of the smaller >= ``min_overlap``): lists of box indices,
    each in increasing order, the lists in the order of their first member.
    """
    parent = list(range(len(boxes)))

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
    members: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        members.setdefault(root(i), []).append(i)
    return list(members.values())


def merged_groups(groups: list[np.ndarray], boxes: list[Box3D], min_overlap: float) -> list[np.ndarray]:
    """Point-index groups after joining those whose same-class boxes overlap enough (:func:`merged_members`)."""
    return [np.concatenate([groups[i] for i in joined]) for joined in merged_members(boxes, min_overlap)]
