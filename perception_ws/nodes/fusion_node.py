"""The camera-fusion node: a thin ROS 2 shell over :mod:`perception_ws.fusion` (docs/algorithms.md §10).

In: an Image, its CameraInfo, a PointCloud2 (the perception node's labelled cloud or a raw one), and
optionally a Detection3DArray and an image label mask (mono8/mono16 class ids), paired by stamp with
:class:`~perception_ws.sync.ApproximateTimeSync` (``message_filters`` is not installable here).

The LiDAR -> camera transform is a parameter (``calibration.extrinsic``, a matrix, or
``calibration.kitti_calib``, a KITTI calibration file) or, with ``calibration.from_tf``, composed from
``/tf_static`` and ``/tf`` (:class:`~perception_ws.calib.tf_tree.TransformTree`; tf2_ros is not
installable here) for each set: from the cloud's ``frame_id`` to the image's at the cloud's stamp,
through any chain of transforms (``lidar -> camera``, ``camera <- base_link -> lidar``, ...; a mounting
some drivers publish on ``/tf`` instead of ``/tf_static`` is read at that stamp). Sets that come before
the chain is complete are counted as waiting (``frames_waiting_for_transform`` on diagnostics), not as
failures; the log says where the transform came from, and why it is waited for.

Out: the cloud with an ``rgb`` field (PCL packing) and, with a mask, the cloud with ``label`` taken
from the mask, both with the cloud's header; an rgb8 overlay (points by class or depth, boxes as
projected edges) with the image's header; diagnostics.

Threads, as in the perception node: callbacks only check a message (bad ones are counted and logged
once per reason) and feed the pairing; a completed set goes to a one-item mailbox, and a worker fuses
and publishes the newest set (sets arriving while it is busy replace the waiting one, counted).

Run: ``python -m perception_ws.nodes.fusion_node --ros-args --params-file config/perception.yaml``.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.calib.tf_tree import TransformTree, TransformUnavailableError
from perception_ws.cloud import stamp_to_ns, to_msg, xyz_array
from perception_ws.config import FUSION_NODE_NAME, FusionConfig, declare_schema_parameters
from perception_ws.fusion import (
    RGB_FIELD,
    Occlusion,
    overlay_image,
    pack_rgb,
    paint_points,
    transfer_labels,
    with_field,
)
from perception_ws.fusion import load_extrinsic as extrinsic_from
from perception_ws.msg import Detection3DArray
from perception_ws.nodes.conversions import LABEL_DTYPE, LABEL_FIELD, detection_boxes
from perception_ws.nodes.diagnostics import NodeStats, diagnostics_msg
from perception_ws.nodes.image_intake import (
    IMAGE_REJECT_REASONS,
    accept_camera_info,
    accept_image,
    accept_mask,
    image_msg,
)
from perception_ws.nodes.intake import REJECT_REASONS, Frame, RejectedFrameError, accept_cloud
from perception_ws.nodes.issues import IssueLog
from perception_ws.nodes.process import run_node
from perception_ws.nodes.qos import output_qos, sensor_input_qos
from perception_ws.nodes.tf_topics import TF_TOPICS, TF_TRANSFORM, TransformListener
from perception_ws.nodes.worker import LatestWorker
from perception_ws.sync import ApproximateTimeSync

#: the image and the camera do not agree (checked once both are paired).
CAMERA_IMAGE_SIZE = "camera_image_size"


@dataclass(frozen=True)
class Stamped:
    """An accepted input: the message (for its header) and what was decoded from it."""

    msg: Any
    value: Any


@dataclass(frozen=True)
class FusionSet:
    """One paired set; ``detections``/``mask`` are None when that input is not subscribed."""

    image: Stamped
    camera: Stamped
    cloud: Stamped
    detections: Stamped | None
    mask: Stamped | None
    received_s: float


class FusionNode(Node):
    """See the module doc. ``defaults`` replace the schema's defaults (parameters still override them)."""

    def __init__(
        self,
        *,
        context: Context | None = None,
        defaults: FusionConfig | None = None,
        node_name: str = FUSION_NODE_NAME,
        cli_args: Sequence[str] | None = None,
    ) -> None:
        self._worker: LatestWorker[FusionSet] = LatestWorker(f"{node_name}_worker")
        super().__init__(node_name, context=context, cli_args=list(cli_args) if cli_args is not None else None)
        self.config = declare_schema_parameters(self, defaults or FusionConfig())
        c = self.config
        #: the parameter's transform; None with calibration.from_tf (then ``tf_tree`` gives one per set)
        self.extrinsic: Extrinsic | None = None
        self.tf_tree: TransformTree | None = None
        if c.calibration.from_tf:
            self.tf_tree = TransformListener(self, lambda problem: self.issues.record(TF_TRANSFORM, problem)).tree
        else:
            self.extrinsic = extrinsic_from(c.calibration.extrinsic, c.calibration.kitti_calib)
        self.frames_waiting = 0  # sets that came before /tf_static and /tf connected their frames
        self.wait_reason = ""  # why the latest set waited
        self.transform_source = ""  # the chain the latest set used (logged when it changes)
        f = c.fusion
        self.occlusion = (
            Occlusion(f.occlusion_window, f.occlusion_tolerance_m, f.occlusion_tolerance_rel) if f.occlusion else None
        )
        topics, depth = c.topics, c.qos.output_depth
        self.painted_pub = self.create_publisher(PointCloud2, topics.painted_cloud, output_qos(depth))
        self.overlay_pub = self.create_publisher(Image, topics.overlay, output_qos(depth))
        self.mask_cloud_pub = (
            self.create_publisher(PointCloud2, topics.mask_labelled_cloud, output_qos(depth))
            if topics.label_mask
            else None
        )
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, topics.diagnostics, output_qos(depth))
        self.stats = NodeStats()
        self.issues = IssueLog(self.get_logger().warning, "input")
        # inputs in pairing order; the optional ones only when their topic is set
        inputs: list[tuple[str, type, str, Callable[[Any], Any]]] = [
            ("image", Image, topics.image, accept_image),
            ("camera", CameraInfo, topics.camera_info, accept_camera_info),
            ("cloud", PointCloud2, topics.cloud, self._accept_cloud),
        ]
        if topics.detections:
            inputs.append(("detections", Detection3DArray, topics.detections, detection_boxes))
        if topics.label_mask:
            inputs.append(("mask", Image, topics.label_mask, accept_mask))
        self._names = [name for name, *_ in inputs]
        self._sync_lock = threading.Lock()
        self.sync: ApproximateTimeSync[Stamped] = ApproximateTimeSync(
            len(inputs), c.sync.slop_s, c.sync.queue_size, c.sync.min_period_s
        )
        self._worker.start(self.process_set, self.stats, self.issues, expected="fusion")
        self.subscriptions_by_input = {
            name: self.create_subscription(
                kind, topic, self._callback(index, accept), sensor_input_qos(c.qos.input_depth)
            )
            for index, (name, kind, topic, accept) in enumerate(inputs)
        }
        self.create_timer(c.output.diagnostics_period_s, self.publish_diagnostics)
        source = (
            self.extrinsic.source
            if self.extrinsic is not None
            else f"{TF_TOPICS} (cloud frame_id -> image frame_id, once published)"
        )
        self.get_logger().info(
            f"pairing {', '.join(s.topic_name for s in self.subscriptions_by_input.values())} "
            f"(slop {c.sync.slop_s} s); transform from {source}"
        )

    # -- the LiDAR -> camera transform --------------------------------------------------------

    def extrinsic_for(self, camera_frame: str, cloud_frame: str, stamp_ns: int | None = None) -> Extrinsic | None:
        """The LiDAR -> camera transform for a set with these frame ids: the parameter's, or composed from
        /tf_static and /tf at ``stamp_ns``; None (counted as waiting, the reason logged when it changes) while the
        chain is incomplete.
        """
        if self.tf_tree is None:
            return self.extrinsic
        try:
            if not camera_frame or not cloud_frame:
                raise TransformUnavailableError(
                    f"the {'image' if not camera_frame else 'cloud'} has an empty frame_id; no transform can place it"
                )
            extrinsic = self.tf_tree.lookup(camera_frame, cloud_frame, stamp_ns)
        except TransformUnavailableError as err:
            if str(err) != self.wait_reason:
                self.get_logger().info(f"waiting for the LiDAR -> camera transform on {TF_TOPICS}: {err}")
            # the reason before the count: a reader that sees the count (diagnostics, tests) sees its reason too
            self.wait_reason = str(err)
            self.frames_waiting += 1
            return None
        if extrinsic.source != self.transform_source:
            self.get_logger().info(
                f"LiDAR -> camera transform for cloud frame {cloud_frame!r} and image frame {camera_frame!r} "
                f"from {extrinsic.source}"
            )
        self.transform_source, self.wait_reason = extrinsic.source, ""
        return extrinsic

    # -- input: check, pair, leave the set in the mailbox -------------------------------------

    def _accept_cloud(self, msg: PointCloud2) -> Frame:
        return accept_cloud(msg, self.config.fusion.max_points, time.monotonic())

    def _callback(self, index: int, accept: Callable[[Any], Any]) -> Callable[[Any], None]:
        def on_message(msg: Any) -> None:
            try:
                value = accept(msg)
            except RejectedFrameError as rejected:
                self.issues.record(rejected.reason, rejected.detail)
                return
            except Exception as err:  # an unforeseen case must not take the executor down
                self.issues.record(f"internal_{type(err).__name__}", traceback.format_exc())
                return
            with self._sync_lock:
                sets = self.sync.add(index, stamp_to_ns(msg.header.stamp), Stamped(msg, value))
            for members in sets:
                self.stats.frame_received()
                named = dict(zip(self._names, members, strict=True))
                self._worker.slot.put(
                    FusionSet(
                        named["image"],
                        named["camera"],
                        named["cloud"],
                        named.get("detections"),
                        named.get("mask"),
                        time.monotonic(),
                    )
                )

        return on_message

    @property
    def frames_dropped(self) -> int:
        """Sets replaced while waiting for the worker, plus messages the pairing never used."""
        return self._worker.slot.dropped + sum(self.sync.dropped)

    def frames_rejected(self) -> int:
        rejects = {*REJECT_REASONS, *IMAGE_REJECT_REASONS, CAMERA_IMAGE_SIZE}
        return sum(count for reason, count in self.issues.counts().items() if reason in rejects)

    # -- worker: fuse, then publish -----------------------------------------------------------

    def process_set(self, inputs: FusionSet) -> None:
        """Fuse one paired set and publish the painted cloud, the overlay and (with a mask) the labelled cloud."""
        image: np.ndarray = inputs.image.value
        camera: PinholeCamera = inputs.camera.value
        frame: Frame = inputs.cloud.value
        if image.shape[:2] != (camera.height, camera.width):
            self.stats.frame_failed()
            self.issues.record(
                CAMERA_IMAGE_SIZE,
                f"image is {image.shape[1]}x{image.shape[0]}, CameraInfo says {camera.width}x{camera.height}",
            )
            return
        cloud_header = inputs.cloud.msg.header
        extrinsic = self.extrinsic_for(
            inputs.image.msg.header.frame_id, cloud_header.frame_id, stamp_to_ns(cloud_header.stamp)
        )
        if extrinsic is None:
            return
        points, f = frame.points, self.config.fusion
        xyz = xyz_array(points)
        rgb, _ = paint_points(xyz, image, camera, extrinsic, occlusion=self.occlusion)
        labels = points[f.label_field].reshape(-1) if f.label_field in (points.dtype.names or ()) else None
        boxes = inputs.detections.value if inputs.detections is not None else []
        picture = overlay_image(
            image,
            xyz,
            labels,
            boxes,
            camera,
            extrinsic,
            class_set=self.config.classes,
            radius=f.point_radius,
            max_depth=f.max_depth_m,
        )
        if inputs.mask is not None and self.mask_cloud_pub is not None:
            mask: np.ndarray = inputs.mask.value
            transferred = transfer_labels(xyz, mask, camera, extrinsic, occlusion=self.occlusion or False)
            labelled = with_field(points, LABEL_FIELD, transferred.astype(LABEL_DTYPE))
            self.mask_cloud_pub.publish(to_msg(labelled, header=cloud_header))
        self.painted_pub.publish(to_msg(with_field(points, RGB_FIELD, pack_rgb(rgb)), header=cloud_header))
        self.overlay_pub.publish(image_msg(inputs.image.msg.header, picture))
        latency_ms = (self.get_clock().now().nanoseconds - stamp_to_ns(cloud_header.stamp)) / 1e6
        self.stats.frame_processed(latency_ms, (time.monotonic() - inputs.received_s) * 1e3, {})

    # -- diagnostics, shutdown ----------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        report = self.stats.report(self.frames_dropped, self.issues.counts(), self.frames_rejected())
        if self.tf_tree is not None:
            report.values["frames_waiting_for_transform"] = str(self.frames_waiting)
            if self.wait_reason:
                report = replace(report, message=f"waiting for the transform on {TF_TOPICS}: {self.wait_reason}")
        msg = diagnostics_msg(self.get_clock().now().to_msg(), f"{self.get_name()}: fusion", "camera", report)
        self.diagnostics_pub.publish(msg)

    def destroy_node(self) -> None:
        """Stop the worker (after the set it is on), then the node."""
        self._worker.stop()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m perception_ws.nodes.fusion_node [--ros-args ...]``; exit status 1 on a
    configuration or calibration error (one line saying what is wrong). Ctrl-C ends it cleanly (:mod:`.process`).
    """
    return run_node(args, FusionNode, FUSION_NODE_NAME)


if __name__ == "__main__":
    raise SystemExit(main())
