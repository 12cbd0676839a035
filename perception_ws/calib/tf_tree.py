"""Transform trees (what ``/tf_static`` and ``/tf`` carry) composed without tf2: frame -> frame as an Extrinsic.

Each edge is the pose of a *child* frame in its *parent* frame, translation (m) and unit quaternion
(x, y, z, w), as in ``geometry_msgs/TransformStamped``: a point ``p`` of the child frame is
``R p + t`` in the parent frame. As in tf2 a frame has at most one parent, and a later edge for the
same child replaces the earlier one (a re-published mounting wins).

An edge is *static* (``/tf_static``: holds at every time) or *timed* (``/tf``: samples at stamps, e.g.
``odom -> base_link`` from the vehicle's odometry). A timed edge keeps :data:`CACHE_S` seconds of
samples and is read at a stamp by interpolating between the two around it (linear in translation,
spherical in rotation); a stamp up to :data:`HOLD_S` past the newest sample (or before the oldest)
takes that sample, further is refused rather than extrapolated. A sample more than :data:`CACHE_S`
older than the newest means time jumped back (a bag looped): the edge starts again from it.

:meth:`TransformTree.lookup` maps points of a source frame into a target frame through their nearest
common ancestor. With ``base_link -> lidar`` and ``lidar -> camera`` (the simulator's mounting),
``lookup("camera", "lidar")`` is the inverse of the camera's pose in the LiDAR frame; with
``base_link -> lidar`` and ``base_link -> camera`` the chain is ``camera <- base_link <- lidar``.

Frames the tree does not (yet) connect, and stamps a timed edge has no sample near, raise
:class:`TransformUnavailableError` (wait for more transforms); edges that are wrong in themselves (a
non-unit quaternion, a loop) raise :class:`~perception_ws.errors.CalibrationError` when added.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from perception_ws.calib.camera import Extrinsic
from perception_ws.errors import CalibrationError

#: largest accepted | |q|² - 1 | of an edge's quaternion (the bound tf2 applies); within it q is normalised.
QUATERNION_TOLERANCE = 1e-2
#: seconds of samples a timed edge keeps (tf2's default buffer length).
CACHE_S = 10.0
#: how far (s) past a timed edge's newest sample (or before its oldest) a lookup may hold that sample.
HOLD_S = 0.05


class TransformUnavailableError(CalibrationError):
    """The tree does not connect the two frames (yet), or a timed edge has no sample near the stamp."""


@dataclass(frozen=True)
class _StaticEdge:
    parent: str
    pose: np.ndarray  # 4x4: child frame -> parent frame

    def pose_at(self, child: str, stamp_ns: int | None) -> np.ndarray:
        return self.pose


@dataclass
class _TimedEdge:
    parent: str
    stamps: list[int] = field(default_factory=list)  # ns, increasing
    translations: list[np.ndarray] = field(default_factory=list)
    quaternions: list[np.ndarray] = field(default_factory=list)  # unit, x y z w

    def insert(self, stamp_ns: int, translation: np.ndarray, quaternion: np.ndarray) -> None:
        if self.stamps and stamp_ns < self.stamps[-1] - CACHE_S * 1e9:  # time jumped back: start again
            del self.stamps[:], self.translations[:], self.quaternions[:]
        i = bisect.bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:  # the same stamp again: the newer value wins
            self.translations[i], self.quaternions[i] = translation, quaternion
            return
        self.stamps.insert(i, stamp_ns)
        self.translations.insert(i, translation)
        self.quaternions.insert(i, quaternion)
        drop = bisect.bisect_left(self.stamps, self.stamps[-1] - CACHE_S * 1e9)
        if drop:
            del self.stamps[:drop], self.translations[:drop], self.quaternions[:drop]

    def pose_at(self, child: str, stamp_ns: int | None) -> np.ndarray:
        stamps = self.stamps
        if stamp_ns is None:
            return _pose(self.translations[-1], self.quaternions[-1])
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return _pose(self.translations[i], self.quaternions[i])
        if 0 < i < len(stamps):
            a = (stamp_ns - stamps[i - 1]) / (stamps[i] - stamps[i - 1])
            t = (1 - a) * self.translations[i - 1] + a * self.translations[i]
            return _pose(t, _slerp(self.quaternions[i - 1], self.quaternions[i], a))
        nearest = 0 if i == 0 else len(stamps) - 1
        gap_s = abs(stamp_ns - stamps[nearest]) / 1e9
        if gap_s <= HOLD_S:
            return _pose(self.translations[nearest], self.quaternions[nearest])
        when = "before the oldest" if i == 0 else "after the newest"
        raise TransformUnavailableError(
            f"transform {self.parent!r} -> {child!r} at {_sec(stamp_ns)}: {gap_s:.3f} s {when} sample "
            f"({_sec(stamps[nearest])}; {len(stamps)} kept); not extrapolated beyond {HOLD_S:g} s"
        )


class TransformTree:
    """A thread-safe set of static and timed edges; see the module doc."""

    def __init__(self) -> None:
        self._edges: dict[str, _StaticEdge | _TimedEdge] = {}
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)  # notified on every add: a waiting lookup tries again

    def add(
        self,
        parent: str,
        child: str,
        translation: Sequence[float],
        rotation_xyzw: Sequence[float],
        stamp_ns: int | None = None,
    ) -> None:
        """Add the pose of ``child`` in ``parent``: static without ``stamp_ns`` (replacing the edge), else one
        sample of a timed edge. A CalibrationError names what is wrong with it.
        """
        kind = "static transform" if stamp_ns is None else "transform"
        what = f"{kind} {parent!r} -> {child!r}"
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
        q = q / np.sqrt(norm2)
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.parent != parent:
                ancestors = self._ancestors(parent)
                if child in ancestors:
                    loop = " -> ".join([*reversed(ancestors[: ancestors.index(child) + 1]), child])
                    raise CalibrationError(f"{what}: would close a loop ({loop}); expected a tree")
            if stamp_ns is None:
                self._edges[child] = _StaticEdge(parent, _pose(t, q))
                self._added.notify_all()
                return
            if not isinstance(edge, _TimedEdge) or edge.parent != parent:
                edge = self._edges[child] = _TimedEdge(parent)
            edge.insert(int(stamp_ns), t, q)
            self._added.notify_all()

    @property
    def frames(self) -> list[str]:
        """Every frame an edge names, sorted."""
        with self._lock:
            return sorted({*self._edges, *(edge.parent for edge in self._edges.values())})

    def lookup(self, target: str, source: str, stamp_ns: int | None = None, timeout_s: float = 0.0) -> Extrinsic:
        """The transform that maps points of frame ``source`` into frame ``target`` (e.g. camera <- lidar) at
        ``stamp_ns`` (None: the newest sample of each timed edge); its ``source`` attribute names the chain.
        TransformUnavailableError when the frames are not connected or a timed edge has no sample near, after
        waiting up to ``timeout_s`` for transforms still to come (odometry a little behind the scan).
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                try:
                    return self._lookup(target, source, stamp_ns)
                except TransformUnavailableError:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._added.wait(left):
                        raise

    def _lookup(self, target: str, source: str, stamp_ns: int | None) -> Extrinsic:
        """:meth:`lookup` once, the lock held."""
        known = {*self._edges, *(edge.parent for edge in self._edges.values())}
        missing = [frame for frame in dict.fromkeys((target, source)) if frame not in known]
        if target == source and not missing:
            return Extrinsic(np.eye(4), f"/tf_static: {target} (same frame)")
        if missing:
            seen = ", ".join(sorted(known)) or "none yet"
            raise TransformUnavailableError(
                f"no transform names frame {' nor '.join(map(repr, missing))} (frames seen: {seen})"
            )
        up_source, up_target = self._ancestors(source), self._ancestors(target)
        common = next((frame for frame in up_source if frame in up_target), None)
        if common is None:
            raise TransformUnavailableError(
                f"frames {target!r} and {source!r} are not connected: they lie in separate trees "
                f"(roots {up_target[-1]!r} and {up_source[-1]!r})"
            )
        source_in_common = self._pose_in(source, common, stamp_ns)
        target_in_common = self._pose_in(target, common, stamp_ns)
        chain_edges = [*up_target[: up_target.index(common)], *up_source[: up_source.index(common)]]
        timed = any(isinstance(self._edges[frame], _TimedEdge) for frame in chain_edges)
        chain = [*up_target[: up_target.index(common) + 1], *reversed(up_source[: up_source.index(common)])]
        common_to_target = Extrinsic(target_in_common, f"pose of {target!r} in {common!r}").inverse()
        topic = f"/tf at {_sec(stamp_ns)}" if timed and stamp_ns is not None else "/tf" if timed else "/tf_static"
        return Extrinsic(common_to_target.matrix @ source_in_common, f"{topic}: {' <- '.join(chain)}")

    # -- walking up the tree (callers hold the lock) ------------------------------------------

    def _ancestors(self, frame: str) -> list[str]:
        """``[frame, parent, grandparent, ..., root]``."""
        chain = [frame]
        while (edge := self._edges.get(chain[-1])) is not None:
            chain.append(edge.parent)
        return chain

    def _pose_in(self, frame: str, ancestor: str, stamp_ns: int | None) -> np.ndarray:
        """4x4 mapping points of ``frame`` into its ``ancestor`` frame at ``stamp_ns``."""
        pose = np.eye(4)
        while frame != ancestor:
            edge = self._edges[frame]
            pose = edge.pose_at(frame, stamp_ns) @ pose
            frame = edge.parent
        return pose


@dataclass(frozen=True)
class FrameTransform:
    """The pose of frame ``child`` in frame ``parent``, as /tf and /tf_static carry it: translation (m) and
    unit quaternion (x, y, z, w).
    """

    parent: str
    child: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]

    def values(self) -> list[float]:
        """``[x, y, z, qx, qy, qz, qw]``, as the nodes report it."""
        return [*self.translation, *self.rotation]


def pose_parts(pose: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """A rigid 4x4 ``pose`` as a translation (x, y, z) and a unit quaternion (x, y, z, w), as /tf carries it."""
    qx, qy, qz, qw = (float(v) for v in Rotation.from_matrix(pose[:3, :3]).as_quat())
    tx, ty, tz = (float(v) for v in pose[:3, 3])
    return (tx, ty, tz), (qx, qy, qz, qw)


def _pose(translation: np.ndarray, quaternion: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_quat(quaternion).as_matrix()
    pose[:3, 3] = translation
    return pose


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions, the short way round."""
    dot = float(q0 @ q1)
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear is exact to rounding, and avoids dividing by sin(~0)
        q = (1 - a) * q0 + a * q1
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - a) * theta) * q0 + np.sin(a * theta) * q1) / np.sin(theta)


def _sec(stamp_ns: int | None) -> str:
    return "latest" if stamp_ns is None else f"{stamp_ns / 1e9:.3f} s"
