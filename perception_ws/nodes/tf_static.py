"""``/tf_static`` as ROS 2 uses it: tf2_msgs/TFMessage, reliable and transient local, so a late subscriber
still gets what was published once.

A static broadcaster publishes ONE message with all its transforms (keep last 1: a second message would
replace the first for late joiners); a listener keeps the latched message of every broadcaster. tf2_msgs
comes from a ROS 2 install, or from the stand-in that ``make interfaces`` builds (interfaces/tf2_msgs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from perception_ws.calib.tf_tree import StaticTransformTree
from perception_ws.errors import CalibrationError

TF_STATIC_TOPIC = "/tf_static"
#: what a listener keeps: the latched message of up to this many broadcasters (tf2_ros keeps 100 too).
LISTENER_DEPTH = 100


class StaticEdge(Protocol):
    """The pose of ``child`` in ``parent`` (e.g. :class:`perception_ws.sim.stream.StaticTransform`)."""

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


def add_tf_message(tree: StaticTransformTree, msg: TFMessage) -> list[str]:
    """Add every transform of ``msg`` to ``tree``; what was wrong with those left out, one line each."""
    problems = []
    for transform in msg.transforms:
        t, q = transform.transform.translation, transform.transform.rotation
        try:
            tree.add(transform.header.frame_id, transform.child_frame_id, (t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        except CalibrationError as err:
            problems.append(str(err))
    return problems
