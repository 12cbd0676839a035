"""The launch file, the params file, the config schema and `perception run` agree.

launch/perception.launch.py cannot run here (launch and launch_ros are not installable from pip), so it
is read as Python source: its declared arguments are compared with the ones `perception run` takes, and
the graph both build (perception_ws.nodes.launch_graph.plan_graph) is checked against the schema whose
keys the perception node declares as parameters (tests/test_node_perception.py checks that declaration).
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from perception_ws.cli import build_parser
from perception_ws.config import NODE_NAME, FusionConfig, PerceptionConfig, flatten, load_config, section_key
from perception_ws.errors import PerceptionError
from perception_ws.nodes.launch_graph import (
    LAUNCH_ARGUMENTS,
    PARAMETER_ARGUMENTS,
    PERCEPTION_NODE,
    command_of,
    plan_graph,
)
from perception_ws.ros_env import PROFILE_VARIABLES
from perception_ws.sim.stream_config import SimConfig

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "perception.launch.py"
PARAMS_FILE = REPO / "config" / "perception.yaml"
#: the launch file's own arguments (ROS launch's business, not ``perception run``'s)
LAUNCH_ONLY = ("namespace", "log_level", "dds_profile")


def _launch_constant(name: str) -> object:
    """A top-level constant of the launch file (``EXECUTABLES = {...}``), read from its source."""
    for node in ast.parse(LAUNCH_FILE.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"launch file: no top-level {name}")


def _declared_arguments() -> dict[str, ast.expr | None]:
    """name -> default_value expression of every DeclareLaunchArgument(...) in the launch file."""
    tree = ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"))
    found: dict[str, ast.expr | None] = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument":
            name = call.args[0]
            assert isinstance(name, ast.Constant), ast.dump(call)
            found[name.value] = next((k.value for k in call.keywords if k.arg == "default_value"), None)
    return found


def _performed_names() -> tuple[str, ...]:
    """The argument names the launch file hands to plan_graph (the ``names`` tuple in _nodes)."""
    tree = ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "names":
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("launch file: no `names = (...)` tuple of arguments")


def test_launch_file_declares_the_arguments_perception_run_takes() -> None:
    declared = _declared_arguments()
    assert list(declared) == [a.name for a in LAUNCH_ARGUMENTS] + list(LAUNCH_ONLY)
    assert _performed_names() == tuple(a.name for a in LAUNCH_ARGUMENTS)
    for argument in LAUNCH_ARGUMENTS:
        default = declared[argument.name]
        if argument.name == "config":  # the installed share/perception_ws/config/perception.yaml
            assert isinstance(default, ast.Call)
            assert "perception.yaml" in ast.unparse(default)
        else:
            assert isinstance(default, ast.Constant), argument.name
            assert default.value == argument.default, argument.name
    options = build_parser().parse_args(["run"])
    assert {a.name: getattr(options, a.name) for a in LAUNCH_ARGUMENTS} == {a.name: a.default for a in LAUNCH_ARGUMENTS}


def test_params_file_lists_every_schema_key_with_its_default() -> None:
    document = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    assert section_key(NODE_NAME) in document  # other nodes' sections (fusion_node) are theirs to check
    assert load_config(PARAMS_FILE) == PerceptionConfig()

    def leaves(mapping: dict, prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, value in mapping.items():
            out |= leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
        return out

    assert leaves(document[section_key(NODE_NAME)]["ros__parameters"]) == set(flatten(PerceptionConfig()))


def test_graph_parameters_are_schema_keys_and_reach_the_command_line() -> None:
    schema = set(flatten(PerceptionConfig()))
    assert set(PARAMETER_ARGUMENTS.values()) <= schema
    values = {"sensor": "vlp16", "model": "squeezeseg", "weights": "w.pt", "bag": "run1", "use_sim_time": "true"}
    nodes = {n.name: n for n in plan_graph(values)}
    assert list(nodes) == ["perception_node", "replay"]
    perception = nodes["perception_node"]
    assert perception.params_file == str(PARAMS_FILE)
    assert perception.required
    assert set(perception.parameters) - {"use_sim_time"} <= schema
    command = command_of(perception)
    assert command[:3] == [sys.executable, "-m", "perception_ws.nodes.perception_node"]
    # strings quoted (rcl reads YAML: an empty string or 'true' would change type), booleans bare
    pairs = (
        'sensor.model:="vlp16"',
        'segmenter.model:="squeezeseg"',
        'segmenter.weights:="w.pt"',
        "use_sim_time:=true",
    )
    for pair in pairs:
        assert command[command.index(pair) - 1] == "-p"
    assert command[command.index("--params-file") + 1] == str(PARAMS_FILE)
    assert command_of(nodes["replay"])[3:] == ["replay", "run1"]
    # defaults: only the perception node, no override of what the params file says
    (only,) = plan_graph({})
    assert only.parameters == {"use_sim_time": False}
    assert {n.name for n in plan_graph({"camera": "true", "rviz": "true"})} == {
        "perception_node",
        "fusion_node",
        "rviz2",
    }
    with pytest.raises(PerceptionError, match=r"camera='maybe'.*expected true or false"):
        plan_graph({"camera": "maybe"})
    with pytest.raises(PerceptionError, match="unknown launch arguments"):
        plan_graph({"sensors": "vlp16"})


def test_rviz_config_shows_the_node_outputs() -> None:
    rviz = yaml.safe_load((REPO / "launch" / "perception.rviz").read_text(encoding="utf-8"))
    displays: dict[str, dict[str, dict]] = {}  # class -> topic -> display
    for display in rviz["Visualization Manager"]["Displays"]:
        if "Topic" in display:
            displays.setdefault(display["Class"].split("/")[-1], {})[display["Topic"]["Value"]] = display
    topics, sim, fusion = PerceptionConfig().topics, SimConfig().topics, FusionConfig().topics
    cloud = displays["PointCloud2"][f"/{topics.labelled_cloud}"]
    assert cloud["Channel Name"] == "label"
    assert cloud["Enabled"]
    assert f"/{topics.markers}" in displays["MarkerArray"]
    assert f"/{fusion.overlay}" in displays["Image"]
    # the simulator's: ground-truth boxes, camera, and its scan coloured by the true labels (sensor data: best effort)
    assert f"/{sim.markers}" in displays["MarkerArray"]
    assert displays["Image"][f"/{sim.image}"]["Topic"]["Reliability Policy"] == "Best Effort"
    truth = displays["PointCloud2"][f"/{sim.points}"]
    assert truth["Channel Name"] == "label"
    assert truth["Topic"]["Reliability Policy"] == "Best Effort"
    # RViz's fixed frame is KITTI's; with the simulator the graph hands RViz the frame its car drives in (odom,
    # on /tf), where the perception node tracks too
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == "velodyne"
    graph = {n.name: n for n in plan_graph({"sim": "true", "rviz": "true"})}
    assert graph["rviz2"].arguments[-2:] == ("-f", SimConfig().frames.odom)
    assert graph[PERCEPTION_NODE].parameters["tracking.fixed_frame"] == SimConfig().frames.odom


@pytest.mark.dds
def test_run_stops_the_graph_when_the_perception_node_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "perception_ws.cli", "run", "--sensor", "nosuch"],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "sensor.model = 'nosuch': unknown sensor" in result.stderr
    assert "run: perception_node exited with 1; stopping the graph" in result.stdout
    assert "ROS_DOMAIN_ID=" in result.stdout
    assert "(loopback only)" in result.stdout


def _entry_points() -> dict[str, str]:
    """name -> "module:function" of pyproject.toml's [project.scripts]."""
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]


def test_ros2_run_executables_are_the_pip_entry_points() -> None:
    scripts = _entry_points()
    assert {"perception", "perception_node", "fusion_node", "sim_node"} <= set(scripts)
    for name, target in scripts.items():  # each names a main() that exists
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name
    # CMakeLists.txt installs the same list into lib/perception_ws for `ros2 run`
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    block = re.search(r"set\(PERCEPTION_WS_ENTRY_POINTS(.*?)\)", cmake, re.S)
    assert block is not None
    installed = dict(entry.split("=") for entry in re.findall(r'"([^"]+)"', block.group(1)))
    assert installed == {name: target.split(":")[0] for name, target in scripts.items()}
    assert {target.split(":")[1] for target in scripts.values()} == {"main"}  # what scripts/entry_point.in calls


def test_launch_arguments_with_fixed_values_declare_choices_and_nodes_run_the_executables() -> None:
    tree = ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"))
    flag = _launch_constant("FLAG")
    choices: dict[str, list[str]] = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument":
            for keyword in call.keywords:
                if keyword.arg == "choices":
                    value = keyword.value
                    choices[call.args[0].value] = flag if isinstance(value, ast.Name) else ast.literal_eval(value)
    assert choices == {
        "use_sim_time": ["true", "false"], "rviz": ["true", "false"], "camera": ["true", "false"],
        "sim": ["true", "false"], "segmenter": ["", "model", "labels", "none"],
        "sim_backend": ["", "builtin", "carla", "dataset"],
        "log_level": ["debug", "info", "warn", "error", "fatal"],
    }  # fmt: skip
    # every module the graph can start has its installed executable, and it is a pip entry point too
    executables = _launch_constant("EXECUTABLES")
    assert isinstance(executables, dict)
    modules = {n.module for n in plan_graph({"sim": "true", "camera": "true", "bag": "b", "rviz": "true"}) if n.module}
    assert modules == set(executables)
    scripts = _entry_points()
    assert all(scripts[name].split(":")[0] == module for module, name in executables.items())
    # the Fast DDS profile of the graph: both variable names, the shared-memory segment of the local profile,
    # and UDP not held to loopback (the graph talks to the caller's system)
    assert PROFILE_VARIABLES == ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
    imported = [n for n in ast.parse(LAUNCH_FILE.read_text(encoding="utf-8")).body if isinstance(n, ast.ImportFrom)]
    assert any(
        n.module == "perception_ws.ros_env" and "PROFILE_VARIABLES" in {a.name for a in n.names} for n in imported
    )
    assert "fastdds_graph.xml" in ast.unparse(_declared_arguments()["dds_profile"])
    graph, local = (ElementTree.parse(REPO / "config" / name) for name in ("fastdds_graph.xml", "fastdds_local.xml"))
    segment = ".//{http://www.eprosima.com}segment_size"
    assert graph.findtext(segment) == local.findtext(segment) == str(32 * 1024 * 1024)
    assert graph.find(".//{http://www.eprosima.com}interfaceWhiteList") is None
    assert local.find(".//{http://www.eprosima.com}interfaceWhiteList") is not None
    # points_topic reaches the perception node as topics.input
    (perception,) = plan_graph({"points_topic": "/points"})
    assert perception.parameters["topics.input"] == "/points"
