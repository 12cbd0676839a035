"""The node graph of ``launch/perception.launch.py``, and ``perception run``: the same graph without ``ros2 launch``.

:func:`plan_graph` turns the launch arguments into the nodes to start; the launch file builds its
``launch_ros`` Node actions from it, and :func:`run_graph` starts the same nodes as child processes
(``python -m MODULE --ros-args …``), all in the caller's ROS environment, or with ``--local-dds`` in one
loopback-only domain (:mod:`perception_ws.ros_env`). Signals reach every child; when the
perception node ends, or any node fails, the others are stopped (SIGINT, then SIGTERM, then SIGKILL).

Only the standard library is imported here: the launch file imports this module.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perception_ws.errors import PerceptionError
from perception_ws.parent_death import preexec_die_with_parent


@dataclass(frozen=True)
class LaunchArgument:
    """One argument of the launch file: its name, default and help text."""

    name: str
    default: str
    help: str


#: the launch file's arguments, in its order; ``perception run`` takes each as ``--name`` (``_`` -> ``-``).
LAUNCH_ARGUMENTS = (
    LaunchArgument("sensor", "", "sensor model (built-in name or YAML); empty: sensor.model of the config file"),
    LaunchArgument("model", "", "segmentation network; empty: segmenter.model of the config file"),
    LaunchArgument("weights", "", "weights file; empty: segmenter.weights of the config file"),
    LaunchArgument("config", "", "params file; empty: config/perception.yaml of the package"),
    LaunchArgument("bag", "", "a bag to replay into the graph (with /clock); empty: none"),
    LaunchArgument("use_sim_time", "false", "true: every node follows /clock (set it with bag)"),
    LaunchArgument("rviz", "false", "true: start RViz2 with launch/perception.rviz"),
    LaunchArgument("camera", "false", "true: start the camera-fusion node"),
    LaunchArgument("sim", "false", "true: start the simulator node (scans, camera, ground truth) as the input"),
    LaunchArgument("segmenter", "", "segmenter kind: model, labels or none; empty: segmenter.kind of the config file"),
    LaunchArgument("points_topic", "", "PointCloud2 topic of the perception node; empty: topics.input of the config"),
    LaunchArgument("sim_backend", "", "with sim: builtin, carla or dataset; empty: backend of the config file"),
    LaunchArgument("carla_host", "", "with sim_backend carla: the server's host; empty: carla.host of the config"),
    LaunchArgument("carla_port", "", "with sim_backend carla: the server's port; empty: carla.port of the config"),
    LaunchArgument("carla_town", "", "with sim_backend carla: map to load; empty: carla.town of the config"),
    LaunchArgument("sim_dataset", "", "with sim_backend dataset: the recording to replay; empty: dataset.path"),
)
#: launch argument -> the perception node parameter it overrides when not empty.
PARAMETER_ARGUMENTS = {
    "sensor": "sensor.model",
    "model": "segmenter.model",
    "weights": "segmenter.weights",
    "segmenter": "segmenter.kind",
    "points_topic": "topics.input",
}
#: launch argument -> the simulator node parameter it overrides when not empty.
SIM_PARAMETER_ARGUMENTS = {
    "sim_backend": "backend",
    "carla_host": "carla.host",
    "carla_port": "carla.port",
    "carla_town": "carla.town",
    "sim_dataset": "dataset.path",
}
SIM_BACKENDS = ("builtin", "carla", "dataset")
PERCEPTION_NODE = "perception_node"
FUSION_NODE = "fusion_node"
FUSION_MODULE = "perception_ws.nodes.fusion_node"
SIM_NODE = "sim_node"
SIM_MODULE = "perception_ws.nodes.sim_node"
#: how long a stopping child gets after SIGINT, then after SIGTERM.
STOP_GRACE_S = (10.0, 5.0)


@dataclass(frozen=True)
class NodeSpec:
    """One process of the graph: ``python -m module *arguments --ros-args …`` (or ``executable``)."""

    name: str
    module: str | None = None
    executable: str | None = None
    arguments: tuple[str, ...] = ()
    params_file: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    required: bool = False  # the graph stops when this node ends


def _flag(values: Mapping[str, str], name: str) -> bool:
    value = str(values.get(name, "false")).strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise PerceptionError(f"launch argument {name}={value!r}: expected true or false")
    return value in ("true", "1")


def share_path(*parts: str) -> Path:
    """A file of the package's launch/ or config/: the source tree's, else the ROS install's share/."""
    source_tree = Path(__file__).resolve().parents[2].joinpath(*parts)
    if source_tree.exists():
        return source_tree
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("perception_ws")).joinpath(*parts)
    except (ImportError, LookupError) as err:
        raise PerceptionError(f"{'/'.join(parts)} not found in the source tree nor in a ROS install") from err


def plan_graph(values: Mapping[str, str]) -> list[NodeSpec]:
    """The nodes for these launch argument values (missing ones take their defaults)."""
    args = {a.name: str(values.get(a.name, a.default) or a.default) for a in LAUNCH_ARGUMENTS}
    unknown = set(values) - set(args)
    if unknown:
        raise PerceptionError(f"unknown launch arguments {sorted(unknown)}; known: {', '.join(args)}")
    config = args["config"] or str(share_path("config", "perception.yaml"))
    sim_time = _flag(args, "use_sim_time")
    overrides: dict[str, Any] = {key: args[arg] for arg, key in PARAMETER_ARGUMENTS.items() if args[arg]}
    nodes = [
        NodeSpec(
            PERCEPTION_NODE,
            module="perception_ws.nodes.perception_node",
            params_file=config,
            parameters={**overrides, "use_sim_time": sim_time},
            required=True,
        )
    ]
    simulate = _flag(args, "sim")
    from perception_ws.sim.stream_config import SimConfig  # here: the launch file imports this module on its own

    if simulate:
        # the simulator sends the car's pose on /tf: track over the ground, in its fixed frame
        nodes[0].parameters["tracking.fixed_frame"] = SimConfig().frames.odom
        nodes.append(NodeSpec(SIM_NODE, module=SIM_MODULE, params_file=config, parameters=_sim_parameters(args)))
    if _flag(args, "camera"):
        fusion: dict[str, Any] = {"use_sim_time": sim_time}
        if simulate:  # the simulator latches its camera mounting on /tf_static: no calibration file needed
            fusion["calibration.from_tf"] = True
        nodes.append(NodeSpec(FUSION_NODE, module=FUSION_MODULE, params_file=config, parameters=fusion))
    if args["bag"]:
        nodes.append(NodeSpec("replay", module="perception_ws.cli", arguments=("replay", args["bag"])))
    if _flag(args, "rviz"):
        arguments: tuple[str, ...] = ("-d", str(share_path("launch", "perception.rviz")))
        if simulate:  # the config's fixed frame is KITTI's 'velodyne'; the simulator's car drives in 'odom'
            arguments += ("-f", SimConfig().frames.odom)
        nodes.append(NodeSpec("rviz2", executable="rviz2", arguments=arguments, parameters={"use_sim_time": sim_time}))
    return nodes


def _sim_parameters(args: Mapping[str, str]) -> dict[str, Any]:
    """The simulator node's overrides from ``sim_backend`` and friends (checked here: a typo fails before start)."""
    out: dict[str, Any] = {"use_sim_time": False}
    for arg, key in SIM_PARAMETER_ARGUMENTS.items():
        if args[arg]:
            out[key] = args[arg]
    if out.get("backend", SIM_BACKENDS[0]) not in SIM_BACKENDS:
        raise PerceptionError(
            f"launch argument sim_backend={out['backend']!r}: expected one of {', '.join(SIM_BACKENDS)}"
        )
    if "carla.port" in out:
        port = out["carla.port"]
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise PerceptionError(f"launch argument carla_port={port!r}: expected a port number 1..65535")
        out["carla.port"] = int(port)
    return out


def _parameter_value(value: Any) -> str:
    if isinstance(value, list | tuple):  # a YAML list, as ``-p key:=[1.0, 2.0]`` takes it
        return "[" + ", ".join(_parameter_value(v) for v in value) + "]"
    if isinstance(value, str):  # quoted: rcl reads the value as YAML, where '', 'true' or '1' would not stay strings
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def command_of(node: NodeSpec) -> list[str]:
    """The command line that starts ``node`` (what the launch file's Node action runs, too)."""
    head = [sys.executable, "-m", node.module] if node.module else [str(node.executable)]
    if node.module == "perception_ws.cli":  # the CLI is not a ROS node: no --ros-args
        return [*head, *node.arguments]
    ros = ["--ros-args", "-r", f"__node:={node.name}"]
    if node.params_file:
        ros += ["--params-file", node.params_file]
    for key, value in node.parameters.items():
        ros += ["-p", f"{key}:={_parameter_value(value)}"]
    return [*head, *node.arguments, *ros]


@dataclass(frozen=True)
class GraphOptions:
    """The launch arguments' values by name, as ``perception run`` received them."""

    values: dict[str, str]

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> GraphOptions:
        return cls({a.name: str(getattr(args, a.name)) for a in LAUNCH_ARGUMENTS})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The launch arguments as ``--name VALUE`` options of ``perception run``."""
    for argument in LAUNCH_ARGUMENTS:
        flag = f"--{argument.name.replace('_', '-')}"
        parser.add_argument(flag, dest=argument.name, default=argument.default, help=argument.help)


def _startable(node: NodeSpec) -> str | None:
    """Why ``node`` cannot start here (None: it can)."""
    if node.module and importlib.util.find_spec(node.module) is None:
        return f"module {node.module} is not installed"
    if node.executable and shutil.which(node.executable) is None:
        return f"{node.executable} is not on PATH (install ROS 2 with RViz2 to use rviz:=true)"
    return None


def run_graph(options: GraphOptions, *, local_dds: bool = False) -> int:
    """Start the graph, wait until it ends or a signal comes, stop it cleanly; the exit status.

    Its processes get the caller's ROS environment, or with ``local_dds`` (or PERCEPTION_LOCAL_DDS=1) one
    loopback-only random domain for the whole graph.
    """
    from perception_ws.ros_env import prepare_ros_env

    nodes = plan_graph(options.values)
    print(f"run: {prepare_ros_env(local_dds)}", flush=True)
    env = dict(os.environ)
    for node in list(nodes):
        why = _startable(node)
        if why is not None:
            if node.required or node.name == FUSION_NODE:
                raise PerceptionError(f"cannot start {node.name}: {why}")
            print(f"run: skipped {node.name}: {why}", flush=True)
            nodes.remove(node)
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    # own sessions: a terminal's Ctrl-C reaches the children only through us, once, in order; and each gets
    # SIGTERM from the kernel should we be killed without a chance to stop them (SIGKILL, OOM killer)
    children = {
        n.name: (
            n,
            subprocess.Popen(command_of(n), env=env, start_new_session=True, preexec_fn=preexec_die_with_parent()),
        )
        for n in nodes
    }
    status = 0
    try:
        while not stopping:
            for name, (node, child) in children.items():
                code = child.poll()
                if code is None:
                    continue
                if code != 0 or node.required:
                    print(f"run: {name} exited with {code}; stopping the graph", flush=True)
                    status = code or status
                    stopping = True
            if all(child.poll() is not None for _, child in children.values()):
                break
            time.sleep(0.1)
    finally:
        status = _stop_all([child for _, child in children.values()]) or status
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _stop_all(children: list[subprocess.Popen[bytes]]) -> int:
    """SIGINT every running child, then SIGTERM, then SIGKILL the ones still there; nonzero if any was killed."""
    status = 0
    for sig, grace in ((signal.SIGINT, STOP_GRACE_S[0]), (signal.SIGTERM, STOP_GRACE_S[1]), (signal.SIGKILL, 5.0)):
        running = [c for c in children if c.poll() is None]
        if not running:
            break
        for child in running:
            child.send_signal(sig)
        deadline = time.monotonic() + grace
        for child in running:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                status = 1
    return status
