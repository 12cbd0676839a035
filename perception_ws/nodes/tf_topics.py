"""``/tf_static`` and ``/tf`` as ROS 2 uses them: tf2_msgs/TFMessage on both.

``/tf_static`` is reliable and transient local, so a late subscriber still gets what was published once.
A static broadcaster publishes ONE message with all its transforms (keep last 1: a second message would
replace the first for late joiners); a listener keeps the latched message of every broadcaster. ``/tf``
(moving frames: ``odom -> base_link``) is reliable and volatile, a stream of stamped samples.
tf2_msgs comes from a ROS 2 install, or from the stand-in that ``make interfaces`` builds
(interfaces/tf2_msgs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from perception_ws.calib.tf_tree import TransformTree
from perception_ws.cloud import stamp_to_ns
from perception_ws.errors import CalibrationError, CloudFormatError

TF_STATIC_TOPIC = "/tf_static"
TF_TOPIC = "/tf"
TF_TOPICS = "/tf_static and /tf"
#: the issue a transform on /tf_static or /tf that cannot be used is counted under (logged once).
TF_TRANSFORM = "tf_transform"
#: what a listener keeps: the latched message of up to this many broadcasters (tf2_ros keeps 100 too).
LISTENER_DEPTH = 100


class StaticEdge(Protocol):
    """The pose of ``child`` in ``parent`` (e.g. :class:`perception_ws.calib.tf_tree.FrameTransform`)."""

    @property
    def parent(self) -> str: ...
    @property
    def child(self) -> str: ...
    @property
    def translation(self) -> Sequence[float]: ...
    @property
    def rotation(self) -> Sequence[float]: ...


def tf_static_qos(depth: int = 1) -> QoSProfile:
    """Reliable, transient local, keep last ``depth``: 1 for a broadcaster, :data:`LISTENER_DEPTH` for a listener."""
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def tf_qos(depth: int = LISTENER_DEPTH) -> QoSProfile:
    """``/tf``: reliable, volatile, keep last ``depth`` (tf2_ros listens with 100)."""
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def tf_message(stamp: Time, edges: Iterable[StaticEdge]) -> TFMessage:
    """One TFMessage holding every edge, each stamped ``stamp``."""
    transforms = []
    for edge in edges:
        (x, y, z), (qx, qy, qz, qw) = edge.translation, edge.rotation
        transforms.append(
            TransformStamped(
                header=Header(stamp=stamp, frame_id=edge.parent),
                child_frame_id=edge.child,
                transform=Transform(translation=Vector3(x=x, y=y, z=z), rotation=Quaternion(x=qx, y=qy, z=qz, w=qw)),
            )
        )
    return TFMessage(transforms=transforms)


def add_tf_message(tree: TransformTree, msg: TFMessage, timed: bool = False) -> list[str]:
    """Add every transform of ``msg`` to ``tree`` (static ones from /tf_static, or ``timed`` samples at their
    stamps from /tf); what was wrong with those left out, one line each.
    """
    problems = []
    for transform in msg.transforms:
        t, q = transform.transform.translation, transform.transform.rotation
        parent, child = transform.header.frame_id, transform.child_frame_id
        try:
            stamp_ns = stamp_to_ns(transform.header.stamp) if timed else None
        except CloudFormatError as err:
            problems.append(f"transform {parent!r} -> {child!r}: {err}")
            continue
        try:
            tree.add(parent, child, (t.x, t.y, t.z), (q.x, q.y, q.z, q.w), stamp_ns)
        except CalibrationError as err:
            problems.append(str(err))
    return problems


class TransformListener:
    """A :class:`TransformTree` that ``node``'s subscriptions to /tf_static and /tf keep filled (what tf2_ros'
    buffer and listener do where tf2_ros is installed); each transform that cannot be added goes to
    ``on_problem`` with the reason.
    """

    def __init__(self, node: Node, on_problem: Callable[[str], object]) -> None:
        self.tree = TransformTree()
        self._on_problem = on_problem
        node.create_subscription(TFMessage, TF_STATIC_TOPIC, self._on_static, tf_static_qos(LISTENER_DEPTH))
        node.create_subscription(TFMessage, TF_TOPIC, self._on_timed, tf_qos())

    def _on_static(self, msg: TFMessage) -> None:
        for problem in add_tf_message(self.tree, msg):
            self._on_problem(problem)

    def _on_timed(self, msg: TFMessage) -> None:
        for problem in add_tf_message(self.tree, msg, timed=True):
            self._on_problem(problem)
