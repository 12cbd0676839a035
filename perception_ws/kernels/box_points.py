"""Which box each point falls in (numba): one pass over the points, first matching box wins.

The inside test is :meth:`perception_ws.boxes.Box3D.contains` written out with the same operations
in the same order (``cos`` and ``sin`` of the yaws come from numpy), so a point on an edge gets the
same answer here as there.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def first_box_ids(
    xyz: np.ndarray,
    labels: np.ndarray,
    box_labels: np.ndarray,
    centers: np.ndarray,
    cos: np.ndarray,
    sin: np.ndarray,
    half: np.ndarray,
) -> np.ndarray:
    """(N,) uint32: ``k + 1`` for the first box k (of K) whose label equals the point's and whose
    half extents ``half`` (K, 3) (margin included) hold the point, else 0.

    ``xyz`` (N, 3) float64, ``labels`` (N,) integers, ``box_labels`` (K,) int64, ``centers`` (K, 3),
    ``cos`` / ``sin`` (K,) of each box's yaw.
    """
    n = xyz.shape[0]
    out = np.zeros(n, dtype=np.uint32)
    if box_labels.shape[0] == 0:
        return out
    # a lookup table of the labels that have a box: most points (background) stop here
    top = 0
    for k in range(box_labels.shape[0]):
        top = max(top, box_labels[k])
    with_box = np.zeros(top + 1, dtype=np.bool_)
    for k in range(box_labels.shape[0]):
        if box_labels[k] >= 0:
            with_box[box_labels[k]] = True
    for i in range(n):
        label = labels[i]
        if label < 0 or label > top or not with_box[label]:
            continue
        for k in range(box_labels.shape[0]):
            if box_labels[k] != label:
                continue
            d0 = xyz[i, 0] - centers[k, 0]
            d1 = xyz[i, 1] - centers[k, 1]
            d2 = xyz[i, 2] - centers[k, 2]
            # Box3D.to_local: (c * dx + s * dy, -s * dx + c * dy, dz)
            along = cos[k] * d0 + sin[k] * d1
            across = -sin[k] * d0 + cos[k] * d1
            if abs(along) <= half[k, 0] and abs(across) <= half[k, 1] and abs(d2) <= half[k, 2]:
                out[i] = k + 1
                break
    return out
