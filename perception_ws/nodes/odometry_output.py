"""LiDAR odometry out: each scan's pose (``tracking.odometry: lidar``) on /tf and as nav_msgs/Odometry.

The pipeline's pose is the scan frame's in an odom frame of its own: where the scan's frame was at the first
scan (and again after the tracker resets, e.g. a replay restarted). With ``lidar_odometry.child_frame_id``
another frame than the scan's (e.g. ``base_link``), its mounting ``M`` (the scan's frame in it, from
/tf_static) turns the pose ``P`` into ``M P M^-1``: that frame's pose in an odom where it was at the first
scan. The twist (in the child frame, as nav_msgs asks) is the last step over the time between the two scans.
Covariances are zero: not estimated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, Quaternion
from nav_msgs.msg import Odometry
from rclpy.node import Node
from scipy.spatial.transform import Rotation

from perception_ws.calib.tf_tree import FrameTransform, TransformTree, TransformUnavailableError, pose_parts
from perception_ws.cloud import stamp_to_ns
from perception_ws.config.perception import PerceptionConfig
from perception_ws.nodes.conversions import vector_msg
from perception_ws.nodes.qos import output_qos
from perception_ws.nodes.tf_topics import TF_TOPIC, TFMessage, tf_message, tf_qos

#: the issue a scan whose odometry could not go out is counted under (logged once).
ODOMETRY_FRAME = "odometry_frame"


class OdometryPublisher:
    """Publishes what :attr:`PipelineResult.odometry_pose` says, per ``config.lidar_odometry`` and
    ``config.topics.odometry``; ``mounting`` (a tree /tf_static fills) is read when the child frame is not the
    scan's; a scan whose pose cannot go out goes to ``on_problem`` with the reason.
    """

    def __init__(
        self,
        node: Node,
        config: PerceptionConfig,
        mounting: TransformTree | None,
        on_problem: Callable[[str, str], object],
    ) -> None:
        self.settings = config.lidar_odometry
        self._mounting = mounting
        self._on_problem = on_problem
        self.tf_pub = node.create_publisher(TFMessage, TF_TOPIC, tf_qos()) if self.settings.publish_tf else None
        topic, depth = config.topics.odometry, config.qos.output_depth
        self.odometry_pub = node.create_publisher(Odometry, topic, output_qos(depth)) if topic else None
        self._last: tuple[int, np.ndarray] | None = None  # stamp (ns) and pose of the previous scan

    def publish(self, header: Any, sensor_pose: np.ndarray) -> None:
        """Send the pose of the scan under ``header`` (4x4, its frame -> odom)."""
        child = self.settings.child_frame_id or header.frame_id
        pose = sensor_pose
        if child != header.frame_id:
            try:
                if self._mounting is None:
                    raise TransformUnavailableError("no /tf_static listener")
                mount = self._mounting.lookup(child, header.frame_id).matrix
            except TransformUnavailableError as err:
                self._on_problem(ODOMETRY_FRAME, f"odometry not sent: {child!r} <- {header.frame_id!r}: {err}")
                return
            pose = mount @ sensor_pose @ np.linalg.inv(mount)
        stamp_ns = stamp_to_ns(header.stamp)
        (tx, ty, tz), (qx, qy, qz, qw) = pose_parts(pose)
        if self.tf_pub is not None:
            edge = FrameTransform(self.settings.frame_id, child, (tx, ty, tz), (qx, qy, qz, qw))
            self.tf_pub.publish(tf_message(header.stamp, [edge]))
        if self.odometry_pub is not None:
            msg = Odometry(child_frame_id=child)
            msg.header.stamp, msg.header.frame_id = header.stamp, self.settings.frame_id
            msg.pose.pose.position = Point(x=tx, y=ty, z=tz)
            msg.pose.pose.orientation = Quaternion(x=qx, y=qy, z=qz, w=qw)
            linear, angular = self._twist(stamp_ns, pose)
            msg.twist.twist.linear, msg.twist.twist.angular = vector_msg(linear), vector_msg(angular)
            self.odometry_pub.publish(msg)
        self._last = (stamp_ns, pose)

    def _twist(self, stamp_ns: int, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Linear and angular velocity over the last step, in the child frame (zero on the first scan, or when
        time did not move forward).
        """
        if self._last is None or stamp_ns <= self._last[0]:
            return np.zeros(3), np.zeros(3)
        dt = (stamp_ns - self._last[0]) * 1e-9
        step = np.linalg.inv(self._last[1]) @ pose  # this scan's frame in the previous one
        return step[:3, 3] / dt, Rotation.from_matrix(step[:3, :3]).as_rotvec() / dt
