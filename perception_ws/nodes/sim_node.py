"""The simulator node: a thin ROS 2 shell over a frame source (:mod:`perception_ws.sim.source`).

``backend`` picks the source: ``builtin`` (:class:`perception_ws.sim.stream.SimStream`, procedural
streets), ``carla`` (a CARLA server, ``carla.*``: one synchronous tick per frame; docs/carla.md) or
``dataset`` (a recorded simulated dataset, ``dataset.*``: GTA-LiDAR ``.npy``, ``perception sim generate``
output). Every backend publishes the same topics; with ``clock.mode: sim`` stamps and /clock follow the
source's own time (the procedural scene's, CARLA's ticks, the recording's stamps).

Out, every ``1 / sensor.rate_hz`` seconds (divided by ``clock.real_time_factor``): the LiDAR sweep as a
PointCloud2 (fields x y z intensity ring label instance; ``label`` is the KITTI-3 ground truth,
``instance`` the actor id; SensorData QoS), the ground-truth boxes as a perception_ws/Detection3DArray
(reliable; ``track_id`` = instance) and as a MarkerArray for RViz, the camera Image (rgb8) and
CameraInfo (SensorData QoS; ``camera.enabled``), /clock at each frame's stamp (``clock.publish``), and
diagnostics (achieved rate; ``processing_ms``: the rendering, ``latency_ms``: tick to publication;
``frames_dropped``: skipped ticks).

Static transforms: the sensor mounting (``frames.base`` -> ``frames.lidar`` -> ``frames.camera``, the
latter with the camera) goes out once at start on ``/tf_static`` as ROS 2 does it: one
tf2_msgs/TFMessage with every transform, reliable, transient local, keep last 1, so RViz, tf2 listeners
and the fusion node (``calibration.from_tf``) get it whenever they join. It is also reported as
read-only parameters, one per transform, ``transforms.<parent>_to_<child>`` =
``[x, y, z, qx, qy, qz, qw]`` (the child frame's pose in the parent frame): ``base_link_to_lidar`` and
``lidar_to_camera`` with the default frame names (``ros2 param get /sim_node transforms.lidar_to_camera``).
The vehicle's pose in the scene goes out with every frame on ``/tf`` (``frames.odom`` -> ``frames.base``,
stamped like the scan, sent just before it), so RViz can hold ``odom`` fixed and the perception node can
track in it (``tracking.fixed_frame``).

Timing: a timer ticks at the sensor rate and hands the tick to a worker thread through a one-item
mailbox (:mod:`.latest`); the worker (:mod:`.worker`) renders and publishes. A tick that comes while a frame is still
being rendered waits in the mailbox, and a later one replaces it (counted as skipped): the stream
runs at the rendering speed when that is slower than the rate, never building a queue.

Run: ``python -m perception_ws.nodes.sim_node --ros-args --params-file config/perception.yaml``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.context import Context
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from perception_ws.cloud import to_msg
from perception_ws.config import declare_schema_parameters
from perception_ws.labels import KITTI3
from perception_ws.msg import Detection3DArray
from perception_ws.nodes.conversions import detections_msg
from perception_ws.nodes.diagnostics import NodeStats, diagnostics_msg
from perception_ws.nodes.image_intake import image_msg
from perception_ws.nodes.issues import IssueLog
from perception_ws.nodes.markers import markers_msg
from perception_ws.nodes.process import run_node
from perception_ws.nodes.qos import output_qos, sensor_input_qos
from perception_ws.nodes.tf_topics import TF_STATIC_TOPIC, TF_TOPIC, TFMessage, tf_message, tf_qos, tf_static_qos
from perception_ws.nodes.worker import LatestWorker
from perception_ws.sim.source import SimFrame
from perception_ws.sim.sources import open_source
from perception_ws.sim.stream_config import SIM_NODE_NAME, SimConfig

if TYPE_CHECKING:
    from perception_ws.sim.carla.client import SessionFactory

#: queue depth of the SensorData publishers (best effort: a late scan is worth nothing).
_SENSOR_DEPTH = 2


class SimNode(Node):
    """See the module doc. ``defaults`` replace the schema's defaults (parameters still override them);
    ``carla_session`` replaces the CARLA session of the ``carla`` backend (a stand-in without a server).
    """

    def __init__(
        self,
        *,
        context: Context | None = None,
        defaults: SimConfig | None = None,
        node_name: str = SIM_NODE_NAME,
        cli_args: Sequence[str] | None = None,
        carla_session: SessionFactory | None = None,
    ) -> None:
        self._worker: LatestWorker[int] = LatestWorker(f"{node_name}_worker")
        super().__init__(node_name, context=context, cli_args=list(cli_args) if cli_args is not None else None)
        self.config = c = declare_schema_parameters(self, defaults or SimConfig())
        try:
            self.source = open_source(c, carla_session)
        except BaseException:
            super().destroy_node()  # no half-built node left in the graph
            raise
        transforms = self.source.static_transforms()
        for transform in transforms:
            self.declare_parameter(
                f"transforms.{transform.parent}_to_{transform.child}",
                transform.values(),
                ParameterDescriptor(
                    description=f"pose of {transform.child} in {transform.parent}: x y z (m), qx qy qz qw",
                    read_only=True,
                ),
            )
        sensor_qos, depth = sensor_input_qos(_SENSOR_DEPTH), c.run.output_depth
        self.points_pub = self.create_publisher(PointCloud2, c.topics.points, sensor_qos)
        self.boxes_pub = self.create_publisher(Detection3DArray, c.topics.boxes, output_qos(depth))
        self.markers_pub = self.create_publisher(MarkerArray, c.topics.markers, output_qos(depth))
        camera_on = c.camera.enabled
        self.image_pub = self.create_publisher(Image, c.topics.image, sensor_qos) if camera_on else None
        self.info_pub = self.create_publisher(CameraInfo, c.topics.camera_info, sensor_qos) if camera_on else None
        self.clock_pub = self.create_publisher(Clock, "/clock", output_qos(1)) if c.clock.publish else None
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, c.topics.diagnostics, output_qos(depth))
        # once: the transient-local publisher keeps it for every subscriber that joins later
        self.tf_static_pub = self.create_publisher(TFMessage, TF_STATIC_TOPIC, tf_static_qos())
        self.tf_static_pub.publish(tf_message(self.get_clock().now().to_msg(), transforms))
        self.tf_pub = self.create_publisher(TFMessage, TF_TOPIC, tf_qos())
        self.stats = NodeStats()
        self.issues = IssueLog(self.get_logger().warning, "frame")
        #: set once run.max_frames frames are out; main() then ends the process.
        self.finished = threading.Event()
        self.published = 0
        self._first_ns = self._last_ns = 0  # monotonic times of the first and the latest frame out
        self._start_ns = time.time_ns()
        self._start_mono_ns = time.monotonic_ns()
        wait_s = c.run.wait_for_subscribers_s
        self._worker.start(
            self._handle_tick, self.stats, self.issues, before=lambda: self._wait_for_subscribers(wait_s)
        )
        self.create_timer(self.source.period_s, self._tick)
        self.create_timer(c.run.diagnostics_period_s, self.publish_diagnostics)
        self.get_logger().info(
            f"{self.source.describe()}; on {self.points_pub.topic_name}, clock {c.clock.mode}"
            + (f" at {c.clock.real_time_factor:g}x real time" if c.clock.real_time_factor != 1 else "")
            + f"; on {TF_STATIC_TOPIC}: "
            + ", ".join(f"{t.parent} -> {t.child}" for t in transforms)
            + f"; on {TF_TOPIC}: {c.frames.odom} -> {c.frames.base} at every frame"
        )

    # -- timer: hand the tick to the worker (a tick still waiting is replaced: skipped) ------------

    def _tick(self) -> None:
        if not self.finished.is_set():
            self.stats.frame_received()
            self._worker.slot.put(time.monotonic_ns())

    @property
    def ticks_skipped(self) -> int:
        return self._worker.slot.dropped

    # -- worker: render, then publish ------------------------------------------------------------

    def _handle_tick(self, tick_ns: int) -> None:
        if not self.finished.is_set():  # else a tick that was waiting when the last frame went out
            self.publish_frame(tick_ns)

    def _wait_for_subscribers(self, timeout_s: float) -> None:
        """Hold the first frame until every sensor topic is subscribed (a recording that must be complete): the
        point topic by ``run.points_subscribers`` (a recorder of it alone must not start the frames).
        """
        wanted = [(self.points_pub, self.config.run.points_subscribers)]
        wanted += [(self.image_pub, 1)] if self.image_pub is not None else []

        def missing() -> bool:
            return any(publisher.get_subscription_count() < count for publisher, count in wanted)

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and missing():
            time.sleep(0.05)
        if timeout_s > 0 and missing():
            self.get_logger().warning(f"no subscriber on every sensor topic after {timeout_s:g} s; starting anyway")
        self._worker.slot.take(timeout_s=0.0)  # the ticks that came while waiting are not frames to catch up on
        self._start_ns, self._start_mono_ns = time.time_ns(), time.monotonic_ns()  # scene time 0 is now

    def publish_frame(self, tick_ns: int) -> SimFrame:
        """Render the next frame for the tick at monotonic ``tick_ns`` and publish everything of it."""
        index = self.published
        elapsed_s = (tick_ns - self._start_mono_ns) / 1e9
        frame = self.source.next_frame(index, elapsed_s)
        stamp = _time(self.source.frame_stamp_ns(frame, time.time_ns(), self._start_ns))
        c = self.config
        lidar_header = Header(stamp=stamp, frame_id=c.frames.lidar)
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=stamp))
        self.tf_pub.publish(tf_message(stamp, [frame.vehicle]))  # before the scan: there when the scan arrives
        self.points_pub.publish(to_msg(frame.points, header=lidar_header))
        self.boxes_pub.publish(detections_msg(lidar_header, frame.boxes, KITTI3))
        # for RViz: the boxes, and as "tracks" their ids and speeds (the truth the tracker is measured against)
        self.markers_pub.publish(markers_msg(lidar_header, frame.boxes, frame.boxes, KITTI3))
        if frame.camera is not None and self.image_pub is not None and self.info_pub is not None:
            camera_header = Header(stamp=stamp, frame_id=c.frames.camera)
            self.image_pub.publish(image_msg(camera_header, frame.camera.rgb))
            self.info_pub.publish(CameraInfo(header=camera_header, **frame.camera.camera_info()))
        self.published += 1
        self._first_ns = self._first_ns or time.monotonic_ns()
        self._last_ns = time.monotonic_ns()
        # "latency": how far behind its tick a frame went out; "processing": the rendering alone
        self.stats.frame_processed((time.monotonic_ns() - tick_ns) / 1e6, frame.render_ms, {})
        if c.run.max_frames and self.published >= c.run.max_frames:
            self.finished.set()
        if self.source.length is not None and self.published >= self.source.length:
            self.finished.set()  # a recording replayed once is over
        return frame

    # -- diagnostics, shutdown -------------------------------------------------------------------

    def achieved_rate_hz(self) -> float:
        """Frames per second between the first frame out and the latest (0 before two frames)."""
        if self.published < 2:
            return 0.0
        return (self.published - 1) / max((self._last_ns - self._first_ns) / 1e9, 1e-9)

    def publish_diagnostics(self) -> None:
        report = self.stats.report(self.ticks_skipped, self.issues.counts(), 0)
        name = f"{self.get_name()}: simulator"
        stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(diagnostics_msg(stamp, name, self.config.sensor.model, report))

    def summary(self) -> str:
        return (
            f"published {self.published} frames at {self.achieved_rate_hz():.2f} Hz "
            f"(target {1.0 / self.source.period_s:g} Hz), {self.ticks_skipped} ticks skipped while rendering"
        )

    def destroy_node(self) -> None:
        """Stop the worker (after the frame it is on), give the source back, then the node."""
        self._worker.stop()
        self.source.close()
        super().destroy_node()


def _time(stamp_ns: int) -> Time:
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def main(args: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m perception_ws.nodes.sim_node [--ros-args ...]``; exit status 1 on a configuration
    error (one line saying what is wrong). Ends by itself after ``run.max_frames`` frames when that is set
    (a second later: the last frame's reliable messages get acknowledged); Ctrl-C ends it cleanly.
    """
    return run_node(
        args,
        SimNode,
        SIM_NODE_NAME,
        finished=lambda node: node.finished.is_set(),
        linger_s=1.0,
        on_exit=lambda node: node.get_logger().info(node.summary()),
    )


if __name__ == "__main__":
    raise SystemExit(main())
