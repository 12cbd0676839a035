"""DBSCAN clustering of a point cloud: scikit-learn's meaning, a voxel-grid numba kernel underneath."""

from __future__ import annotations

import numpy as np

from perception_ws.instances.inputs import as_xyz, positive, positive_int
from perception_ws.kernels.dbscan import dbscan_grid


def dbscan(xyz: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Cluster label per point (N,) int64: 0..K-1, or -1 for noise.

    Same result as ``sklearn.cluster.DBSCAN(eps, min_samples=min_samples).fit_predict(xyz)``:
    identical core points (at least ``min_samples`` points within Euclidean distance ``eps``,
    the point itself included) and identical clusters of core points, numbered the same way; a border
    point joins the cluster of its nearest core point (scikit-learn: the first cluster that reaches
    it — both are valid DBSCAN). ``xyz`` is any (N, 3) array; N = 0 gives an empty result.
    """
    pts = as_xyz(xyz, "dbscan input")
    eps = positive(eps, "dbscan eps")
    min_samples = positive_int(min_samples, "dbscan min_samples")
    labels, _ = dbscan_grid(pts, eps, min_samples)
    return labels
