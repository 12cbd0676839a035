"""One configuration schema per node, mirrored 1:1 as ROS parameters.

Every leaf of a schema (:class:`PerceptionConfig`, :class:`FusionConfig`, the simulator's
:class:`~perception_ws.sim.stream_config.SimConfig`) is one ROS parameter, named by its path:
``sensor.model``, ``segmenter.kind``, ``tracking.confirm_hits`` … The same names are the keys of a ROS
params file::

    /**/perception_node:          # any namespace; a bare perception_node: only the root's
      ros__parameters:
        sensor: {model: hdl64e, fov_deg: 360.0, width: 2048}
        segmenter: {kind: labels}

so a YAML read here (:func:`load_config`, no ROS needed), the parameters a node declares
(:func:`declare_ros_parameters`) and ``ros2 param dump`` all agree. Values are checked once, at
construction, whichever way they came in (:mod:`perception_ws.schema`): a wrong key or value raises
:class:`ConfigError` naming the key and what was expected.

Modules: :mod:`.perception` (the pipeline's and the perception node's schema), :mod:`.fusion` (the
camera-fusion node's), :mod:`.params` (params files and ROS parameters).
"""

from perception_ws.config.fusion import FUSION_NODE_NAME, FusionConfig
from perception_ws.config.params import (
    declare_ros_parameters,
    declare_schema_parameters,
    from_flat,
    from_mapping,
    load_config,
    load_schema_config,
    section_key,
    to_params_document,
)
from perception_ws.config.perception import NODE_NAME, PerceptionConfig, PipelineConfig
from perception_ws.schema import ConfigError, descriptions, flatten

__all__ = [
    "FUSION_NODE_NAME",
    "NODE_NAME",
    "ConfigError",
    "FusionConfig",
    "PerceptionConfig",
    "PipelineConfig",
    "declare_ros_parameters",
    "declare_schema_parameters",
    "descriptions",
    "flatten",
    "from_flat",
    "from_mapping",
    "load_config",
    "load_schema_config",
    "section_key",
    "to_params_document",
]
