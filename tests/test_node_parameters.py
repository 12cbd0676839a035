"""The nodes' parameters as ROS tools see them, over loopback DDS: ranges from the schema's bounds, read-only
once running, a value out of range refused (by rclpy's range check, and by the schema at start)."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from typing import Any

import pytest
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient
from rclpy.task import Future

from perception_ws.config import ConfigError, PerceptionConfig, load_config
from perception_ws.config.descriptors import parameter_descriptors
from perception_ws.nodes.perception_node import PerceptionNode
from tests.helpers.data import LABELLED, REPO
from tests.helpers.ros import WAIT_S, Spinner, wait_for

KEYS = ["sensor.width", "segmenter.threads", "detection.eps_m", "detection.min_score", "segmenter.kind", "class_set"]


def _result(future: Future, what: str) -> Any:
    wait_for(future.done, what)
    return future.result()


@pytest.mark.dds
def test_ranges_and_read_only_over_dds(ros_context: Context) -> None:
    node = PerceptionNode(context=ros_context, defaults=PerceptionConfig().replace(**LABELLED))
    client_node = Node("parameter_client", context=ros_context)
    client = AsyncParameterClient(client_node, node.get_fully_qualified_name())
    try:
        with Spinner(ros_context, node, client_node):
            assert client.wait_for_services(WAIT_S)
            described = _result(client.describe_parameters(KEYS), "describe_parameters").descriptors
            by_key: dict[str, ParameterDescriptor] = dict(zip(KEYS, described, strict=True))
            assert all(d.read_only for d in described)
            width = by_key["sensor.width"].integer_range[0]  # ge=1, no upper bound: int64's
            assert (width.from_value, width.to_value, width.step) == (1, 2**63 - 1, 0)
            assert by_key["segmenter.threads"].integer_range[0].from_value == 0  # ge=0
            eps = by_key["detection.eps_m"].floating_point_range[0]  # gt=0: the smallest positive double
            assert (eps.from_value, eps.to_value) == (math.nextafter(0.0, 1.0), sys.float_info.max)
            score = by_key["detection.min_score"].floating_point_range[0]
            assert (score.from_value, score.to_value) == (0.0, 1.0)
            assert by_key["detection.min_score"].additional_constraints == "at least 0 and at most 1"
            assert by_key["segmenter.kind"].additional_constraints == "one of model, labels, none"
            assert not by_key["segmenter.kind"].integer_range
            assert not by_key["class_set"].floating_point_range
            assert by_key["sensor.width"].description == node.describe_parameter("sensor.width").description != ""

            changes = [Parameter("sensor.width", value=512), Parameter("detection.min_score", value=2.0)]
            results = _result(client.set_parameters(changes), "set_parameters").results
            assert [r.successful for r in results] == [False, False]
            assert all("read-only" in r.reason for r in results), results
            # rclpy's own parameter, not a schema key, stays settable
            sim_time = client.set_parameters([Parameter("use_sim_time", value=True)])
            assert _result(sim_time, "set use_sim_time").results[0].successful
        assert node.config.sensor.width == PerceptionConfig().sensor.width
    finally:
        client_node.destroy_node()
        node.destroy_node()


@pytest.mark.dds
def test_the_range_alone_makes_rclpy_refuse_a_value(ros_context: Context) -> None:
    # a node that allowed changes (read_only off) would still get only values inside the schema's bounds
    descriptors = parameter_descriptors(PerceptionConfig, read_only=False)
    node = Node("ranges", context=ros_context)
    try:
        node.declare_parameter("sensor.width", 2048, descriptors["sensor.width"])
        node.declare_parameter("detection.eps_m", 0.5, descriptors["detection.eps_m"])
        node.declare_parameter("detection.min_score", 0.3, descriptors["detection.min_score"])
        refused = node.set_parameters(
            [
                Parameter("sensor.width", value=0),
                Parameter("detection.eps_m", value=0.0),
                Parameter("detection.min_score", value=1.5),
            ]
        )
        assert [r.successful for r in refused] == [False, False, False]
        assert all("out of range" in r.reason for r in refused), refused
        accepted = node.set_parameters(
            [
                Parameter("sensor.width", value=1),
                Parameter("detection.eps_m", value=1e-9),
                Parameter("detection.min_score", value=1.0),
            ]
        )
        assert all(r.successful for r in accepted), accepted
    finally:
        node.destroy_node()


@pytest.mark.dds
def test_a_value_out_of_range_at_start_is_the_schemas_one_line_error(ros_context: Context) -> None:
    with pytest.raises(ConfigError, match=r"sensor\.width = 0; expected at least 1$"):
        PerceptionNode(context=ros_context, cli_args=["--ros-args", "-p", "sensor.width:=0"])
    with pytest.raises(ConfigError, match=r"detection\.eps_m = 0\.0; expected > 0$"):
        PerceptionNode(context=ros_context, cli_args=["--ros-args", "-p", "detection.eps_m:=0.0"])


@pytest.mark.dds
def test_the_shipped_params_file_applies_in_a_namespace(local_env: dict[str, str], ros_context: Context) -> None:
    # as a user starts it on a second car: its own namespace, the preset file keyed '/**/perception_node'
    preset = REPO / "config" / "perception_cpu_front.yaml"
    expected = load_config(preset)
    assert (expected.sensor.width, expected.sensor.fov_deg) != (PerceptionConfig().sensor.width, 360.0)
    command = [sys.executable, "-m", "perception_ws.nodes.perception_node", "--ros-args", "-r", "__ns:=/car1"]
    command += ["--params-file", str(preset), "-p", "segmenter.kind:=labels"]  # labels: no network to load
    process = subprocess.Popen(
        command, cwd=REPO, env=local_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    client_node = Node("namespace_check", context=ros_context)
    client = AsyncParameterClient(client_node, "/car1/perception_node")
    try:
        with Spinner(ros_context, client_node):
            wait_for(lambda: client.services_are_ready() or process.poll() is not None, "/car1/perception_node")
            assert process.poll() is None, process.communicate()[0]
            keys = ["sensor.width", "sensor.fov_deg", "segmenter.threads", "segmenter.kind"]
            values = _result(client.get_parameters(keys), "get_parameters").values
            got = [parameter_value_to_python(value) for value in values]
            assert got == [expected.sensor.width, expected.sensor.fov_deg, expected.segmenter.threads, "labels"]
            # the input topic is relative: the node listens in its namespace
            wait_for(lambda: client_node.count_subscribers("/car1/points") == 1, "a subscriber on /car1/points")
    finally:
        client_node.destroy_node()
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=WAIT_S)[0]
    assert process.returncode == 0, output
