"""Instances: ground removal, clustering, box fitting and tracking (docs/algorithms.md §7).

The public functions, one module each::

    ground_mask(xyz, GroundConfig())              -> (N,) bool        ground.py
    dbscan(xyz, eps, min_samples)                 -> (N,) int, -1     dbscan.py
    cluster_by_class(xyz, labels, class_set, ...) -> (N,) instance id clustering.py
    fit_box(xyz, method="search")                 -> Box3D            box_fit.py
    detect(xyz, labels, KITTI3, DetectConfig())   -> list[Box3D]      detect.py
    Tracker(TrackerConfig()).update(boxes, stamp) -> list[Box3D]      tracker.py
    clear_mot(ground_truth, hypotheses, 2.0)      -> MotResult        mot_metrics.py
"""

from perception_ws.instances.box_fit import fit_box
from perception_ws.instances.clustering import cluster_by_class
from perception_ws.instances.config import (
    ClusterConfig,
    ClusterParams,
    DetectConfig,
    GroundConfig,
    TrackerConfig,
)
from perception_ws.instances.dbscan import dbscan
from perception_ws.instances.detect import detect
from perception_ws.instances.ground import fit_plane, ground_mask
from perception_ws.instances.mot_metrics import MotResult, clear_mot
from perception_ws.instances.tracker import Tracker

__all__ = [
    "ClusterConfig",
    "ClusterParams",
    "DetectConfig",
    "GroundConfig",
    "MotResult",
    "Tracker",
    "TrackerConfig",
    "clear_mot",
    "cluster_by_class",
    "dbscan",
    "detect",
    "fit_box",
    "fit_plane",
    "ground_mask",
]
