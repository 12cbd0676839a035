"""`perception demo`: the live ROS 2 graph on simulated data, end to end, over real DDS on loopback.

The simulator node (:mod:`perception_ws.nodes.sim_node`) publishes ``frames`` scans (and camera images)
of a procedural street; the perception node labels them and returns detections and tracks; the
camera-fusion node draws them on the image. Every node is its own process, all on one local DDS
domain (:mod:`perception_ws.ros_env`). This process records the graph's outputs to MCAP while it runs
(:class:`perception_ws.nodes.record.Recorder`), then reads the bag back for the summary and the
pictures (:mod:`perception_ws.demo.report`).

Segmenter: the trained network when ``perception_ws.models.load_weights(None)`` finds shipped weights,
else the 'labels' segmenter reading the simulator's ground-truth ``label`` field (the rest of the
pipeline, detection and tracking, runs the same either way); the summary says which one ran.

Pace: with the model on CPU the simulator runs slower than real time (:mod:`perception_ws.demo.options`).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from perception_ws.demo.options import (
    GROUND_TRUTH_TOPIC,
    INPUT_TOPIC,
    OVERLAY_TOPIC,
    DemoOptions,
    SegmenterChoice,
    real_time_factor,
)
from perception_ws.errors import PerceptionError
from perception_ws.nodes.launch_graph import (
    FUSION_MODULE,
    FUSION_NODE,
    PERCEPTION_NODE,
    SIM_MODULE,
    SIM_NODE,
    NodeSpec,
    _stop_all,
    command_of,
    share_path,
)
from perception_ws.nodes.record import (
    OUTPUT_TYPES,
    TF_STATIC_TOPIC,
    TF_TOPIC,
    TF_TYPE,
    Recorder,
    bag_destination,
    register_project_types,
)
from perception_ws.sim.stream_config import SimConfig

#: the scans' subscribers before the first frame: the perception node and the recorder (which alone must not count)
POINTS_SUBSCRIBERS = 2
#: longest wait for the nodes to come up, and for the last results once the simulator has finished.
STARTUP_TIMEOUT_S = 90.0
DRAIN_TIMEOUT_S = 15.0


def choose_segmenter(requested: str = "auto") -> SegmenterChoice:
    """The segmenter the demo runs: see the module doc."""
    if requested in ("labels", "none"):
        return SegmenterChoice(requested, None, "as requested")
    if requested not in ("auto", "model"):
        raise PerceptionError(f"demo segmenter {requested!r}: expected auto, model, labels or none")
    try:
        from perception_ws.models import load_weights

        network = load_weights(None)
    except (ImportError, PerceptionError, OSError) as err:
        if requested == "model":
            raise PerceptionError(f"demo segmenter 'model': the shipped weights do not load: {err}") from err
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        return SegmenterChoice("labels", None, f"no trained weights load ({why}); using ground-truth labels")
    from perception_ws.config import load_config

    name = str(getattr(network, "name", "squeezesegv2"))
    device = load_config(share_path("config", "perception.yaml")).segmenter.device
    return SegmenterChoice("model", name, "the shipped trained weights", device)


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` = ``env`` inside the block (rclpy reads it at init), restored after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def plan_demo_graph(options: DemoOptions, segmenter: SegmenterChoice) -> list[NodeSpec]:
    """The demo's nodes: perception (and fusion) first, the simulator last (it starts publishing at once)."""
    config = str(share_path("config", "perception.yaml"))
    # the simulator sends the car's pose on /tf: tracks move over the ground, as its ground truth does
    perception: dict[str, Any] = {"segmenter.kind": segmenter.kind, "tracking.fixed_frame": SimConfig().frames.odom}
    if segmenter.model:
        perception["segmenter.model"] = segmenter.model
    nodes = [NodeSpec(PERCEPTION_NODE, module="perception_ws.nodes.perception_node", params_file=config,
                      parameters=perception, required=True)]  # fmt: skip
    if options.camera:
        fusion = {"calibration.from_tf": True}  # the simulator latches its camera mounting on /tf_static
        nodes.append(NodeSpec(FUSION_NODE, module=FUSION_MODULE, params_file=config, parameters=fusion))
    sim: dict[str, Any] = {
        "run.max_frames": options.frames,
        "run.wait_for_subscribers_s": STARTUP_TIMEOUT_S,  # every frame reaches the graph, the first one too
        "run.points_subscribers": POINTS_SUBSCRIBERS,
        "scene.seed": options.seed,
        "sensor.columns": options.columns,
        "sensor.rate_hz": float(options.rate_hz),
        "camera.enabled": options.camera,
    }
    factor = real_time_factor(options, segmenter)
    if factor != 1.0:  # stamps one sensor period apart, sent further apart
        sim.update({"clock.mode": "sim", "clock.real_time_factor": float(factor)})
    nodes.append(NodeSpec(SIM_NODE, module=SIM_MODULE, params_file=config, parameters=sim))
    return nodes


def recorded_topics(camera: bool) -> dict[str, str | None]:
    """The perception node's outputs, the simulator's scans (with their ground-truth labels: the bag can be
    replayed into the graph, and the summary scores the labels against them), boxes, /tf_static and /tf, the overlay.
    """
    from perception_ws.config import PerceptionConfig

    topics = PerceptionConfig().topics
    out: dict[str, str | None] = {f"/{getattr(topics, key)}".replace("//", "/"): t for key, t in OUTPUT_TYPES.items()}
    out[INPUT_TOPIC] = "sensor_msgs/msg/PointCloud2"
    out[GROUND_TRUTH_TOPIC] = "perception_ws/msg/Detection3DArray"
    out[TF_STATIC_TOPIC] = TF_TYPE  # the simulator's mounting: RViz shows the bag with its frames
    out[TF_TOPIC] = TF_TYPE  # the car's pose in odom: RViz can hold odom fixed
    if camera:
        out[OVERLAY_TOPIC] = "sensor_msgs/msg/Image"
    return out


def run_live_demo(options: DemoOptions) -> int:
    """Run the graph, record it, write pictures and the summary under ``options.out``; exit status."""
    from perception_ws.demo.report import report
    from perception_ws.ros_env import DOMAIN_ID_OVERRIDE, local_dds_env

    if options.frames < 1:
        raise PerceptionError(f"demo frames = {options.frames}; expected at least 1")
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    bag_path = out / "demo.mcap"
    if bag_path.exists():
        bag_path.unlink()  # the demo's own output from an earlier run
    segmenter = choose_segmenter(options.segmenter)
    print(f"demo: segmenter '{segmenter.kind}'" + (f" ({segmenter.model})" if segmenter.model else "") +
          f": {segmenter.reason}", flush=True)  # fmt: skip
    factor = real_time_factor(options, segmenter)
    if not 0 < factor <= 1:
        raise PerceptionError(f"demo real-time factor = {factor:g}; expected 0 < factor <= 1")
    if factor != 1.0:
        period = 1.0 / (options.rate_hz * factor)
        print(f"demo: simulator at {factor:g}x real time: {options.rate_hz:g} Hz scans sent every {period:.1f} s, "
              f"so the model on {segmenter.device} keeps up", flush=True)  # fmt: skip
    env = local_dds_env()
    env[DOMAIN_ID_OVERRIDE] = env["ROS_DOMAIN_ID"]
    print(f"demo: ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']} (loopback only), logs in {env['ROS_LOG_DIR']}", flush=True)
    nodes = plan_demo_graph(options, segmenter)
    started = time.perf_counter()
    with _environment(env):
        counts, exits = _run_and_record(nodes, env, bag_path, options, 1.0 / (options.rate_hz * factor))
    wall_s = time.perf_counter() - started
    failed = {name: code for name, code in exits.items() if code not in (0, None)}
    if failed:
        raise PerceptionError(f"demo: node(s) failed: {failed}; their logs are in {env['ROS_LOG_DIR']}")
    return report(bag_path, out, options, segmenter, counts, wall_s)


def _run_and_record(
    nodes: list[NodeSpec], env: dict[str, str], bag_path: Path, options: DemoOptions, period_s: float
) -> tuple[dict[str, int], dict[str, int | None]]:
    """Start the nodes, record until the simulator has sent every frame (sent every ``period_s``) and the
    last answers are in; the messages per topic and the nodes' exit statuses.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from perception_ws.io.bag import BagWriter

    children: dict[str, subprocess.Popen[bytes]] = {}
    context = rclpy.Context()
    rclpy.init(args=[], context=context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    try:
        with bag_destination(bag_path) as destination, BagWriter(destination, "mcap") as bag:
            register_project_types(bag.typestore)
            node = Node("demo_recorder", context=context)
            recorder = Recorder(node, bag, recorded_topics(options.camera), best_effort=[INPUT_TOPIC])
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            for spec in nodes[:-1]:
                children[spec.name] = subprocess.Popen(command_of(spec), env=env, start_new_session=True)
            _spin_until(executor, lambda: _ready(node, options.camera), STARTUP_TIMEOUT_S, children, "nodes up")
            sim = nodes[-1]
            children[sim.name] = subprocess.Popen(command_of(sim), env=env, start_new_session=True)
            detections = next(t for t in recorder.counts if t.endswith("/detections"))
            with tqdm(total=options.frames, desc="demo frames", unit="frame") as bar:

                def progress() -> bool:
                    if recorder.counts[detections] > bar.n:
                        bar.update(recorder.counts[detections] - bar.n)
                    return children[sim.name].poll() is not None

                timeout_s = STARTUP_TIMEOUT_S + options.frames * (5.0 + period_s)
                _spin_until(executor, progress, timeout_s, children, "the simulator")
                # the last frames' results: until every published frame is answered or nothing comes any more
                last, quiet_since = -1, time.monotonic()
                deadline = time.monotonic() + DRAIN_TIMEOUT_S
                while time.monotonic() < deadline and time.monotonic() - quiet_since < 3.0:
                    executor.spin_once(timeout_sec=0.1)
                    done = recorder.counts[detections]
                    if done != last:
                        last, quiet_since = done, time.monotonic()
                    if done >= recorder.counts[GROUND_TRUTH_TOPIC]:
                        break
                bar.update(max(0, recorder.counts[detections] - bar.n))
            node.destroy_node()
    finally:
        exits = {name: child.poll() for name, child in children.items()}
        _stop_all(list(children.values()))
        rclpy.try_shutdown(context=context)
    return dict(recorder.counts), exits


def _ready(node: Any, camera: bool) -> bool:
    """The perception node (and the fusion node) have subscribed to the simulator's topics."""
    topics = SimConfig().topics
    if node.count_subscribers(topics.points) < POINTS_SUBSCRIBERS:
        return False
    return not camera or node.count_subscribers(topics.image) >= 1


def _spin_until(
    executor: Any, condition: Any, timeout_s: float, children: dict[str, subprocess.Popen[bytes]], what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        ended = {name: child.poll() for name, child in children.items() if child.poll() not in (None, 0)}
        if ended:
            raise PerceptionError(f"demo: {', '.join(f'{n} exited with {c}' for n, c in ended.items())} ({what})")
        if time.monotonic() > deadline:
            raise PerceptionError(f"demo: timed out after {timeout_s:.0f} s waiting for {what}")
        executor.spin_once(timeout_sec=0.1)
