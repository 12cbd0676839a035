"""Launch the perception graph on a machine with ROS 2 installed: ``ros2 launch perception_ws perception.launch.py``.

Arguments (``ros2 launch perception_ws perception.launch.py --show-args``): sensor, model, weights, config,
bag, use_sim_time, rviz, camera, sim, segmenter. Which nodes start, and with which parameters, is decided by
``perception_ws.nodes.launch_graph.plan_graph`` — the same function ``perception run`` uses where
``ros2 launch`` is not installed — so both start the same graph from the same params file. Each node is
the installed Python module run as ``python3 -m MODULE --ros-args …``; the graph shuts down when the
perception node exits.

With ``sim:=true`` the simulator also latches its mounting on ``/tf_static`` (shown by RViz's TF display)
and sends the car's pose on ``/tf``; the fusion node takes the LiDAR -> camera transform from there
(``calibration.from_tf``), the perception node tracks in ``odom`` (``tracking.fixed_frame``), and RViz
holds ``odom`` fixed.

Example: ``ros2 launch perception_ws perception.launch.py sensor:=vlp16 bag:=run1 use_sim_time:=true rviz:=true``
"""

import sys

from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchContext, LaunchDescription
from perception_ws.nodes.launch_graph import plan_graph


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("sensor", default_value="", description="sensor model; empty: the config's"),
            DeclareLaunchArgument("model", default_value="", description="segmentation network; empty: the config's"),
            DeclareLaunchArgument("weights", default_value="", description="weights file; empty: the config's"),
            DeclareLaunchArgument(
                "config",
                default_value=PathJoinSubstitution([FindPackageShare("perception_ws"), "config", "perception.yaml"]),
                description="params file of the nodes",
            ),
            DeclareLaunchArgument("bag", default_value="", description="a bag to replay (with /clock); empty: none"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
            DeclareLaunchArgument("rviz", default_value="false", description="start RViz2 with perception.rviz"),
            DeclareLaunchArgument("camera", default_value="false", description="start the camera-fusion node"),
            DeclareLaunchArgument("sim", default_value="false", description="start the simulator node as the input"),
            DeclareLaunchArgument("segmenter", default_value="", description="model, labels or none; empty: config's"),
            OpaqueFunction(function=_nodes),
        ]
    )


def _nodes(context: LaunchContext) -> list[Node]:
    names = ("sensor", "model", "weights", "config", "bag", "use_sim_time", "rviz", "camera", "sim", "segmenter")
    values = {name: LaunchConfiguration(name).perform(context) for name in names}
    actions = []
    for spec in plan_graph(values):
        if spec.module:  # a module of the installed package, run by this Python
            executable, arguments = sys.executable, ["-m", spec.module, *spec.arguments]
        else:
            executable, arguments = spec.executable, list(spec.arguments)
        is_ros_node = spec.module != "perception_ws.cli"
        actions.append(
            Node(
                executable=executable,
                name=spec.name if is_ros_node else None,
                arguments=arguments,
                parameters=([spec.params_file] if spec.params_file else []) + [spec.parameters]
                if is_ros_node
                else None,
                output="screen",
                on_exit=Shutdown(reason=f"{spec.name} exited") if spec.required else None,
            )
        )
    return actions
