"""Static transform trees (what ``/tf_static`` carries) composed without tf2: frame -> frame as an Extrinsic.

Each edge is the pose of a *child* frame in its *parent* frame, translation (m) and unit quaternion
(x, y, z, w), as in ``geometry_msgs/TransformStamped``: a point ``p`` of the child frame is
``R p + t`` in the parent frame. As in tf2 a frame has at most one parent, and a later edge for the
same child replaces the earlier one (a re-published mounting wins).

:meth:`StaticTransformTree.lookup` maps points of a source frame into a target frame through their
nearest common ancestor. With ``base_link -> lidar`` and ``lidar -> camera`` (the simulator's mounting),
``lookup("camera", "lidar")`` is the inverse of the camera's pose in the LiDAR frame; with
``base_link -> lidar`` and ``base_link -> camera`` the chain is ``camera <- base_link <- lidar``.

Frames the tree does not (yet) connect raise :class:`TransformUnavailableError` (wait for more
transforms); edges that are wrong in themselves (a non-unit quaternion, a loop) raise
:class:`~perception_ws.errors.CalibrationError` when added.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from perception_ws.calib.camera import Extrinsic
from perception_ws.errors import CalibrationError

#: largest accepted | |q|² - 1 | of an edge's quaternion (the bound tf2 applies); within it q is normalised.
QUATERNION_TOLERANCE = 1e-2


class TransformUnavailableError(CalibrationError):
    """The tree does not connect the two frames (yet): a frame was never named, or they lie in separate trees."""


@dataclass(frozen=True)
class _Edge:
    parent: str
    pose: np.ndarray  # 4x4: child frame -> parent frame


class StaticTransformTree:
    """A thread-safe set of static edges; see the module doc."""

    def __init__(self) -> None:
        self._edges: dict[str, _Edge] = {}
        self._lock = threading.Lock()

    def add(self, parent: str, child: str, translation: Sequence[float], rotation_xyzw: Sequence[float]) -> None:
        """Add (or replace) the pose of ``child`` in ``parent``; a CalibrationError names what is wrong with it."""
        what = f"static transform {parent!r} -> {child!r}"
        if not parent or not child:
            raise CalibrationError(f"{what}: empty frame id; expected both the parent and the child frame named")
        if parent == child:
            raise CalibrationError(f"{what}: a frame cannot be its own parent")
        t = np.asarray(translation, dtype=np.float64).reshape(-1)
        q = np.asarray(rotation_xyzw, dtype=np.float64).reshape(-1)
        if t.shape != (3,) or q.shape != (4,):
            raise CalibrationError(f"{what}: {t.size} translation and {q.size} rotation values; expected 3 and 4")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
            raise CalibrationError(f"{what}: holds non-finite values")
        norm2 = float(q @ q)
        if abs(norm2 - 1.0) > QUATERNION_TOLERANCE:
            raise CalibrationError(
                f"{what}: quaternion (x y z w) = {q.tolist()} has length {np.sqrt(norm2):.4g}; "
                "expected a unit quaternion"
            )
        pose = np.eye(4)
        pose[:3, :3] = Rotation.from_quat(q / np.sqrt(norm2)).as_matrix()
        pose[:3, 3] = t
        with self._lock:
            ancestors = self._ancestors(parent)
            if child in ancestors:
                loop = " -> ".join([*reversed(ancestors[: ancestors.index(child) + 1]), child])
                raise CalibrationError(f"{what}: would close a loop ({loop}); expected a tree")
            self._edges[child] = _Edge(parent, pose)

    @property
    def frames(self) -> list[str]:
        """Every frame an edge names, sorted."""
        with self._lock:
            return sorted({*self._edges, *(edge.parent for edge in self._edges.values())})

    def lookup(self, target: str, source: str) -> Extrinsic:
        """The transform that maps points of frame ``source`` into frame ``target`` (e.g. camera <- lidar);
        its ``source`` attribute names the chain. TransformUnavailableError when the frames are not connected."""
        with self._lock:
            known = {*self._edges, *(edge.parent for edge in self._edges.values())}
            missing = [frame for frame in dict.fromkeys((target, source)) if frame not in known]
            if target == source and not missing:
                return Extrinsic(np.eye(4), f"/tf_static: {target} (same frame)")
            if missing:
                seen = ", ".join(sorted(known)) or "none yet"
                raise TransformUnavailableError(
                    f"no static transform names frame {' nor '.join(map(repr, missing))} (frames seen: {seen})"
                )
            up_source, up_target = self._ancestors(source), self._ancestors(target)
            common = next((frame for frame in up_source if frame in up_target), None)
            if common is None:
                raise TransformUnavailableError(
                    f"frames {target!r} and {source!r} are not connected: they lie in separate trees "
                    f"(roots {up_target[-1]!r} and {up_source[-1]!r})"
                )
            source_in_common = self._pose_in(source, common)
            target_in_common = self._pose_in(target, common)
        chain = [*up_target[: up_target.index(common) + 1], *reversed(up_source[: up_source.index(common)])]
        common_to_target = Extrinsic(target_in_common, f"pose of {target!r} in {common!r}").inverse()
        return Extrinsic(common_to_target.matrix @ source_in_common, f"/tf_static: {' <- '.join(chain)}")

    # -- walking up the tree (callers hold the lock) ------------------------------------------

    def _ancestors(self, frame: str) -> list[str]:
        """``[frame, parent, grandparent, ..., root]``."""
        chain = [frame]
        while (edge := self._edges.get(chain[-1])) is not None:
            chain.append(edge.parent)
        return chain

    def _pose_in(self, frame: str, ancestor: str) -> np.ndarray:
        """4x4 mapping points of ``frame`` into its ``ancestor`` frame."""
        pose = np.eye(4)
        while frame != ancestor:
            edge = self._edges[frame]
            pose = edge.pose @ pose
            frame = edge.parent
        return pose
