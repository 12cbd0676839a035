"""The perception node: a thin ROS 2 shell over :class:`~perception_ws.pipeline.Pipeline`.

In: a PointCloud2 (``topics.input``, SensorData QoS). Out, each with the input's header: the cloud with
``label`` and ``instance`` fields, a Detection3DArray (the project's, and vision_msgs' unless
``topics.vision_detections`` is empty), a TrackArray, a MarkerArray for RViz, and
diagnostics (latency, rate, drops, input problems, per-stage times: the pipeline's and the node's
``serialisation``). Parameters: :mod:`perception_ws.config`, one ROS
parameter per key, read at start (declared read-only: rclpy refuses a change while it runs).

Threads: the subscription callback only checks a message (:mod:`.intake`) and leaves it in a one-frame
mailbox (:mod:`.latest`); a worker thread (:mod:`.worker`) takes the newest frame, runs the pipeline and publishes. A
frame that arrives while the worker is busy replaces the waiting one, which is dropped and counted:
latest-only, never a queue. A bad frame is counted and logged once per reason; the node keeps serving.

Tracking frame: with ``tracking.fixed_frame`` (e.g. ``odom``) the node listens to /tf and /tf_static and
tracks in that frame, the scan's pose read at its stamp (:class:`~perception_ws.calib.tf_tree.TransformTree`);
the tracks still go out in the scan's frame, their velocities over the ground. A scan whose pose is not
known (yet; after waiting up to ``tracking.tf_timeout_s`` for odometry that lags the scan) is detected but
not tracked, counted as ``tracking_without_pose``. Without odometry on /tf, ``tracking.odometry: lidar``
has the pipeline find the motion in the scans themselves; the node then publishes it (:mod:`.odometry_output`)
on /tf and as nav_msgs/Odometry (``lidar_odometry.*``, ``topics.odometry``).

Run: ``python -m perception_ws.nodes.perception_node --ros-args --params-file config/perception.yaml``.
"""

from __future__ import annotations

import gc
import time
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from vision_msgs.msg import Detection3DArray as VisionDetection3DArray
from visualization_msgs.msg import MarkerArray

from perception_ws.calib.tf_tree import TransformTree, TransformUnavailableError
from perception_ws.cloud import stamp_to_ns
from perception_ws.config import NODE_NAME, PerceptionConfig, declare_ros_parameters
from perception_ws.errors import PerceptionError
from perception_ws.msg import Detection3DArray, TrackArray
from perception_ws.nodes.conversions import detections_msg, labelled_cloud_msg, tracks_msg, vision_detections_msg
from perception_ws.nodes.diagnostics import NodeStats, diagnostics_msg
from perception_ws.nodes.intake import (
    NON_FINITE_POINTS,
    REJECT_REASONS,
    Frame,
    RejectedFrameError,
    accept_cloud,
    transport_warning,
)
from perception_ws.nodes.issues import IssueLog
from perception_ws.nodes.markers import markers_msg
from perception_ws.nodes.odometry_output import OdometryPublisher
from perception_ws.nodes.process import run_node
from perception_ws.nodes.qos import output_qos, sensor_input_qos
from perception_ws.nodes.tf_topics import TF_TOPICS, TF_TRANSFORM, TransformListener
from perception_ws.nodes.worker import LatestWorker
from perception_ws.pipeline import Pipeline, PipelineResult
from perception_ws.ros_env import shm_segment_bytes
from perception_ws.timing import stage

#: a scan whose pose in tracking.fixed_frame is not known (yet): detected, not tracked (counted, logged once).
TRACKING_WITHOUT_POSE = "tracking_without_pose"
#: the node's own stage after the pipeline's (diagnostics key stage_serialisation_ms_*): output messages built
#: and published
SERIALISATION_STAGE = "serialisation"


class PerceptionNode(Node):
    """See the module doc. ``defaults`` replace the schema's defaults (parameters still override them);
    ``network`` is a segmentation model to run instead of loading weights (segmenter.kind 'model').
    """

    def __init__(
        self,
        *,
        context: Context | None = None,
        defaults: PerceptionConfig | None = None,
        network: Any = None,
        node_name: str = NODE_NAME,
        cli_args: Sequence[str] | None = None,
    ) -> None:
        # before anything can fail: rclpy destroys a context's nodes at shutdown, a half-built one too
        self._worker: LatestWorker[Frame] = LatestWorker(f"{node_name}_worker")
        super().__init__(node_name, context=context, cli_args=list(cli_args) if cli_args is not None else None)
        self.config = declare_ros_parameters(self, defaults)
        too_large = transport_warning(self.config.sensor.max_points, shm_segment_bytes())
        if too_large:
            self.get_logger().warning(too_large)
        self.pipeline = Pipeline(self.config.pipeline_config(), network)
        self.stats = NodeStats()
        self.issues = IssueLog(self.get_logger().warning, "frame")
        # the warm-up runs in the worker, before subscribing: the first scans are not slowed by JIT or torch.compile,
        # and a compiled network's CUDA graphs, which belong to the thread that records them, are that thread's
        self._worker.start(self.process_frame, self.stats, self.issues, before=self.pipeline.warm_up)
        self._worker.wait_ready()
        # what exists now (the network, compiled graphs, numba's caches: long-lived) leaves the garbage collector's
        # view, so its occasional full passes stay short and do not stall a scan
        gc.freeze()
        topics, depth = self.config.topics, self.config.qos.output_depth
        self.cloud_pub = self.create_publisher(PointCloud2, topics.labelled_cloud, output_qos(depth))
        self.detections_pub = self.create_publisher(Detection3DArray, topics.detections, output_qos(depth))
        self.vision_detections_pub = (
            self.create_publisher(VisionDetection3DArray, topics.vision_detections, output_qos(depth))
            if topics.vision_detections
            else None
        )
        self.tracks_pub = self.create_publisher(TrackArray, topics.tracks, output_qos(depth))
        self.markers_pub = self.create_publisher(MarkerArray, topics.markers, output_qos(depth))
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, topics.diagnostics, output_qos(depth))
        fixed_frame = self.config.tracking.fixed_frame if self.config.tracking.enabled else ""
        #: where the sensor is in ``tracking.fixed_frame`` at each scan (None: tracking in the scan's frame)
        self.transforms: TransformTree | None = None
        if fixed_frame:
            self.transforms = TransformListener(self, lambda problem: self.issues.record(TF_TRANSFORM, problem)).tree
        #: the poses of tracking.odometry lidar on /tf and nav_msgs/Odometry (None: no lidar odometry)
        self.odometry_out: OdometryPublisher | None = None
        if self.pipeline.odometry is not None:
            # a child frame other than the scan's needs its mounting on the sensor, from /tf_static
            mounting = None
            if self.config.lidar_odometry.child_frame_id:
                problem = self.issues.record
                mounting = TransformListener(self, lambda detail: problem(TF_TRANSFORM, detail)).tree
            self.odometry_out = OdometryPublisher(self, self.config, mounting, self.issues.record)
        self.subscription = self.create_subscription(
            PointCloud2, topics.input, self.on_cloud, sensor_input_qos(self.config.qos.input_depth)
        )
        self.create_timer(self.config.output.diagnostics_period_s, self.publish_diagnostics)
        self.get_logger().info(
            f"listening on {self.subscription.topic_name}: sensor {self.config.sensor.model}, segmenter "
            f"{self.config.segmenter.kind}{self.pipeline.segmenter_summary}, class set {self.config.class_set}"
            + (f"; tracking in {fixed_frame!r} (from {TF_TOPICS})" if fixed_frame else "")
            + ("; tracking on lidar odometry" if self.pipeline.odometry is not None else "")
        )

    # -- input: check, then leave in the mailbox ----------------------------------------------

    def on_cloud(self, msg: PointCloud2) -> None:
        """Subscription callback: reject a bad frame (counted, logged once), else make it the pending one."""
        received = time.monotonic()
        self.stats.frame_received()
        try:
            frame = accept_cloud(msg, self.config.sensor.max_points, received, self.pipeline.sensor)
        except RejectedFrameError as rejected:
            self.issues.record(rejected.reason, rejected.detail)
            return
        except Exception as err:  # a case the checks do not foresee must not take the executor down
            self.issues.record(f"internal_{type(err).__name__}", traceback.format_exc())
            return
        self._worker.slot.put(frame)  # replaces (drops) a frame still waiting; the slot counts it

    @property
    def frames_dropped(self) -> int:
        return self._worker.slot.dropped

    def frames_rejected(self) -> int:
        return sum(count for reason, count in self.issues.counts().items() if reason in REJECT_REASONS)

    # -- worker: the pipeline, then publish ---------------------------------------------------

    def process_frame(self, frame: Frame) -> PipelineResult | None:
        """Run the pipeline on one accepted frame and publish its results (None when it failed)."""
        if frame.non_finite:
            self.issues.record(
                NON_FINITE_POINTS,
                f"{frame.non_finite} of {frame.points.size} points have NaN/Inf coordinates; the frame is processed "
                "without them (label 0, instance 0)",
            )
        pose = self._sensor_pose(frame)
        try:
            if self.transforms is None:
                result = self.pipeline.process(frame.points, frame.stamp_s)
            else:  # without the sensor's pose the tracker sits this scan out (detections still go out)
                result = self.pipeline.process(frame.points, frame.stamp_s, pose, track=pose is not None)
        except PerceptionError as err:
            self.stats.frame_failed()
            self.issues.record(f"pipeline_{type(err).__name__}", str(err))
            return None
        except Exception as err:  # a bug must not stop the node: counted, logged once per type with its trace
            self.stats.frame_failed()
            self.issues.record(f"internal_{type(err).__name__}", traceback.format_exc())
            return None
        if result.tracker_reset:
            came_or_went = f", or the scan's pose in {self.config.tracking.fixed_frame!r} came or went"
            self.get_logger().info(
                "scan stamps went back in time (a replay restarted?)"
                + (came_or_went if self.transforms is not None else "")
                + ": tracks were reset"
            )
        self._publish(frame, result)
        return result

    def _sensor_pose(self, frame: Frame) -> np.ndarray | None:
        """The scan's frame in ``tracking.fixed_frame`` at its stamp; None (counted, the reason logged once)
        while /tf and /tf_static do not give it.
        """
        if self.transforms is None:
            return None
        header = frame.msg.header
        try:
            tracking = self.config.tracking
            return self.transforms.lookup(
                tracking.fixed_frame, header.frame_id, stamp_to_ns(header.stamp), timeout_s=tracking.tf_timeout_s
            ).matrix
        except TransformUnavailableError as err:
            self.issues.record(TRACKING_WITHOUT_POSE, f"scan not tracked: {err}")
            return None

    def _publish(self, frame: Frame, result: PipelineResult) -> None:
        header, classes = frame.msg.header, result.class_set
        timings = dict(result.timings_ms)
        # serialisation: building the output messages and handing them to DDS (the pipeline's stages are before)
        with stage(timings, SERIALISATION_STAGE):
            if self.odometry_out is not None and result.odometry_pose is not None:
                self.odometry_out.publish(header, result.odometry_pose)  # first: there when the outputs arrive
            self.detections_pub.publish(detections_msg(header, result.detections, classes))
            if self.vision_detections_pub is not None:
                self.vision_detections_pub.publish(vision_detections_msg(header, result.detections, classes))
            self.tracks_pub.publish(tracks_msg(header, result.live_tracks, classes))
            self.cloud_pub.publish(labelled_cloud_msg(header, frame.points, result.labels, result.instances))
            style = self.config.output.marker_style
            self.markers_pub.publish(markers_msg(header, result.detections, result.tracks, classes, style))
        latency_ms = (self.get_clock().now().nanoseconds - stamp_to_ns(header.stamp)) / 1e6
        processing_ms = (time.monotonic() - frame.received_s) * 1e3
        self.stats.frame_processed(latency_ms, processing_ms, timings)

    # -- diagnostics, parameters, shutdown ----------------------------------------------------

    def publish_diagnostics(self) -> None:
        report = self.stats.report(self.frames_dropped, self.issues.counts(), self.frames_rejected())
        name = f"{self.get_name()}: pipeline"
        msg = diagnostics_msg(self.get_clock().now().to_msg(), name, self.config.sensor.model, report)
        self.diagnostics_pub.publish(msg)

    def destroy_node(self) -> None:
        """Stop the worker (after the frame it is on), then the node."""
        self._worker.stop()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m perception_ws.nodes.perception_node [--ros-args ...]``; exit status 1 on a
    configuration or weights error (one line saying what is wrong). Ctrl-C ends it cleanly (:mod:`.process`).
    """
    return run_node(args, PerceptionNode, NODE_NAME)


if __name__ == "__main__":
    raise SystemExit(main())
