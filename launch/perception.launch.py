"""Launch the perception graph on a machine with ROS 2 installed: ``ros2 launch perception_ws perception.launch.py``.

Arguments (``ros2 launch perception_ws perception.launch.py --show-args``): sensor, model, weights, config,
bag, use_sim_time, rviz, camera, sim, segmenter, points_topic, sim_backend, carla_host, carla_port, carla_town,
sim_dataset (also ``perception run``'s), and namespace,
log_level, dds_profile (ROS launch's own). Which nodes start, and with which parameters, is decided by
``perception_ws.nodes.launch_graph.plan_graph`` — the same function ``perception run`` uses where
``ros2 launch`` is not installed — so both start the same graph from the same params file (keyed
``/**/NODE``, so it applies under ``namespace:=``). Each node is its installed executable
(``ros2 run perception_ws perception_node`` …; the bag replay is ``perception replay``, which takes the
``--ros-args`` block launch appends), with the Fast DDS profile ``config/fastdds_graph.xml`` (shared memory
sized for 120k-point scans, UDP on every interface); the graph shuts down when the perception node exits.
A bag's topics are published under their recorded names (``/points`` stays ``/points`` in a namespace):
set ``points_topic:=/points`` there.

With ``sim:=true`` the simulator also latches its mounting on ``/tf_static`` (shown by RViz's TF display)
and sends the car's pose on ``/tf``; the fusion node takes the LiDAR -> camera transform from there
(``calibration.from_tf``), the perception node tracks in ``odom`` (``tracking.fixed_frame``), and RViz
holds ``odom`` fixed. ``sim_backend:=carla`` (with ``carla_host``, ``carla_port``, ``carla_town``) takes the
frames from a CARLA server, ``sim_backend:=dataset sim_dataset:=DIR`` replays a recorded simulated dataset
(docs/carla.md, docs/simulator.md).

Example: ``ros2 launch perception_ws perception.launch.py sensor:=vlp16 bag:=run1 use_sim_time:=true rviz:=true``
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import Action, LaunchContext, LaunchDescription
from perception_ws.nodes.launch_graph import plan_graph
from perception_ws.ros_env import PROFILE_VARIABLES  # the variables Fast DDS reads its profile from

#: module of a graph node -> its executable in lib/perception_ws (pyproject.toml's [project.scripts]).
EXECUTABLES = {
    "perception_ws.nodes.perception_node": "perception_node",
    "perception_ws.nodes.fusion_node": "fusion_node",
    "perception_ws.nodes.sim_node": "sim_node",
    "perception_ws.cli": "perception",
}
FLAG = ["true", "false"]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("perception_ws")
    return LaunchDescription(
        [
            DeclareLaunchArgument("sensor", default_value="", description="sensor model; empty: the config's"),
            DeclareLaunchArgument("model", default_value="", description="segmentation network; empty: the config's"),
            DeclareLaunchArgument("weights", default_value="", description="weights file; empty: the config's"),
            DeclareLaunchArgument(
                "config",
                default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
                description="params file of the nodes",
            ),
            DeclareLaunchArgument("bag", default_value="", description="a bag to replay (with /clock); empty: none"),
            DeclareLaunchArgument("use_sim_time", default_value="false", choices=FLAG, description="follow /clock"),
            DeclareLaunchArgument("rviz", default_value="false", choices=FLAG, description="start RViz2"),
            DeclareLaunchArgument("camera", default_value="false", choices=FLAG, description="start the fusion node"),
            DeclareLaunchArgument("sim", default_value="false", choices=FLAG, description="start the simulator node"),
            DeclareLaunchArgument(
                "segmenter", default_value="", choices=["", "model", "labels", "none"], description="empty: config's"
            ),
            DeclareLaunchArgument(
                "points_topic",
                default_value="",
                description="PointCloud2 input of the perception node; empty: config's",
            ),
            DeclareLaunchArgument(
                "sim_backend",
                default_value="",
                choices=["", "builtin", "carla", "dataset"],
                description="with sim: the simulator's frames from; empty: config's",
            ),
            DeclareLaunchArgument("carla_host", default_value="", description="CARLA server host; empty: config's"),
            DeclareLaunchArgument("carla_port", default_value="", description="CARLA server port; empty: config's"),
            DeclareLaunchArgument("carla_town", default_value="", description="CARLA map to load; empty: config's"),
            DeclareLaunchArgument("sim_dataset", default_value="", description="recording to replay; empty: config's"),
            DeclareLaunchArgument("namespace", default_value="", description="ROS namespace of every node"),
            DeclareLaunchArgument(
                "log_level",
                default_value="info",
                choices=["debug", "info", "warn", "error", "fatal"],
                description="log level of every node",
            ),
            DeclareLaunchArgument(
                "dds_profile",
                default_value=PathJoinSubstitution([share, "config", "fastdds_graph.xml"]),
                description="Fast DDS profile of the nodes (large shared-memory segment for big clouds); empty: none",
            ),
            OpaqueFunction(function=_nodes),
        ]
    )


def _nodes(context: LaunchContext) -> list[Action]:
    names = (
        "sensor",
        "model",
        "weights",
        "config",
        "bag",
        "use_sim_time",
        "rviz",
        "camera",
        "sim",
        "segmenter",
        "points_topic",
        "sim_backend",
        "carla_host",
        "carla_port",
        "carla_town",
        "sim_dataset",
    )
    values = {name: LaunchConfiguration(name).perform(context) for name in names}
    namespace = LaunchConfiguration("namespace").perform(context)
    log_level = LaunchConfiguration("log_level").perform(context)
    profile = LaunchConfiguration("dds_profile").perform(context)
    # before the processes: they inherit the launch context's environment
    actions: list[Action] = [SetEnvironmentVariable(name, profile) for name in PROFILE_VARIABLES if profile]
    for spec in plan_graph(values):
        is_ros_node = spec.module != "perception_ws.cli"
        actions.append(
            Node(
                # the installed executables (ros2 run's), so the output names each process
                package="perception_ws" if spec.module else None,
                executable=EXECUTABLES[spec.module] if spec.module else spec.executable,
                name=spec.name if is_ros_node else None,
                namespace=namespace or None,
                # replay too is started as a node: perception replay takes the --ros-args block
                ros_arguments=["--log-level", log_level],
                arguments=list(spec.arguments),
                parameters=([spec.params_file] if spec.params_file else []) + [spec.parameters]
                if is_ros_node
                else None,
                output="screen",
                on_exit=Shutdown(reason=f"{spec.name} exited") if spec.required else None,
            )
        )
    return actions
