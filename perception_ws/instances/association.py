"""Assignment of detections to tracks: the Hungarian method on a cost matrix, with gating."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

#: cost given to forbidden pairs; large enough never to be chosen over an allowed one, finite so
#: that linear_sum_assignment always has a solution.
_FORBIDDEN = 1e12


def assign(cost: np.ndarray, allowed: np.ndarray) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost one-to-one matches among ``allowed`` pairs of a (rows, cols) cost matrix.

    Returns the matched (row, col) pairs, the unmatched rows and the unmatched columns. A pair
    outside the gate is never matched, even if the optimal assignment of the full matrix would use it.
    """
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    r, c = linear_sum_assignment(np.where(allowed, cost, _FORBIDDEN))
    matches = [(int(i), int(j)) for i, j in zip(r, c, strict=True) if allowed[i, j]]
    matched_rows = {i for i, _ in matches}
    matched_cols = {j for _, j in matches}
    return (
        matches,
        [i for i in range(rows) if i not in matched_rows],
        [j for j in range(cols) if j not in matched_cols],
    )


def mahalanobis2(innovations: np.ndarray, covariances: np.ndarray, determinant: np.ndarray | None = None) -> np.ndarray:
    """Squared Mahalanobis distances y^T S^-1 y for innovations (..., 2) and covariances (..., 2, 2)
    (``determinant``: their :func:`determinants`, when the caller has them already).
    """
    # S^-1 of a 2 x 2 in closed form (adjugate over determinant): a few array operations for every track and
    # detection pair at once, where a batched solve paid numpy's per-matrix cost
    a, b, c, d = (covariances[..., i, j] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    y0, y1 = innovations[..., 0], innovations[..., 1]
    det = determinants(covariances) if determinant is None else determinant
    return np.asarray((d * y0 * y0 - (b + c) * y0 * y1 + a * y1 * y1) / det)


def determinants(covariances: np.ndarray) -> np.ndarray:
    """Determinants of (..., 2, 2) matrices."""
    return np.asarray(covariances[..., 0, 0] * covariances[..., 1, 1] - covariances[..., 0, 1] * covariances[..., 1, 0])
