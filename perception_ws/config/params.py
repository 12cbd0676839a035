"""Schemas <-> ROS params files and ROS parameters: read a node's section of a params file, write one, and
declare every key of a schema as a parameter of a node (then read the values back, validated).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from perception_ws.config.perception import NODE_NAME, PerceptionConfig
from perception_ws.schema import (
    ConfigError,
    Schema,
    SchemaT,
    flatten,
    is_ros_own,
    schema_from_flat,
    unknown_key_message,
)

if TYPE_CHECKING:
    from rclpy.node import Node

#: what may stand for the node name in a params file (ROS 2 wildcards).
_WILDCARDS = ("/**", "**")


def section_key(node_name: str) -> str:
    """The params-file key of a node's section: ``/**/NAME`` applies under any namespace (``-r __ns:=/car1``,
    ``PushRosNamespace``), where a bare ``NAME`` applies only to the node at the root.
    """
    return f"/**/{node_name}"


def from_flat(values: Mapping[str, Any], where: str = "config") -> PerceptionConfig:
    """A validated perception config from dotted keys; keys left out keep their defaults."""
    return schema_from_flat(PerceptionConfig, values, where)


def from_mapping(params: Mapping[str, Any], where: str = "config") -> PerceptionConfig:
    """A validated config from nested mappings and/or dotted keys (a params file's ``ros__parameters``)."""
    return from_flat(_flatten_mapping(params, "", where), where)


def load_config(path: str | Path, node_name: str = NODE_NAME) -> PerceptionConfig:
    """The config of ``node_name`` in a ROS params file (``node: ros__parameters: {...}``).

    Sections for other nodes are ignored; a ``/**`` section applies to every node; the node's own
    section (``/**/NAME`` as :func:`section_key` writes it, or ``NAME`` or ``/NAME``) wins over it, key by key.
    """
    return load_schema_config(path, PerceptionConfig, node_name)


def load_schema_config(path: str | Path, schema: type[SchemaT], node_name: str) -> SchemaT:
    """:func:`load_config` for any schema class (``FusionConfig`` of node ``fusion_node``)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: expected a mapping '{section_key(node_name)}: ros__parameters: {{...}}' at the top")
    merged: dict[str, Any] = {}
    found = False
    for name in (*_WILDCARDS, section_key(node_name), node_name, f"/{node_name}"):
        section = document.get(name)
        if section is None:
            continue
        if not isinstance(section, Mapping) or "ros__parameters" not in section:
            raise ConfigError(f"{path}: section {name!r} lacks 'ros__parameters'")
        merged.update(_flatten_mapping(section["ros__parameters"] or {}, "", f"{path} [{name}]"))
        found = True
    if not found:
        raise ConfigError(f"{path}: no section for node {node_name!r} (or '/**'); sections: {list(document)}")
    return schema_from_flat(schema, merged, str(path))


def to_params_document(config: Schema, node_name: str = NODE_NAME) -> dict[str, Any]:
    """The params-file document (nested) of a config, keyed to apply under any namespace; :func:`load_config`
    reads it back unchanged.
    """
    nested: dict[str, Any] = {}
    for key, value in flatten(config).items():
        *parents, leaf = key.split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return {section_key(node_name): {"ros__parameters": nested}}


def declare_ros_parameters(node: Node, defaults: PerceptionConfig | None = None) -> PerceptionConfig:
    """Declare every key as a parameter of ``node`` (default from ``defaults``), then read them back.

    Values from a params file or ``-p key:=value`` override the defaults; they are checked here like a
    YAML file's, before rclpy sees them, so a wrong type or a value out of range gets this module's error
    naming the key, not rclpy's exception. Each parameter carries its description, its range and
    ``read_only`` (:mod:`perception_ws.config.descriptors`): the nodes read their settings at start only.
    """
    return declare_schema_parameters(node, defaults or PerceptionConfig())


def declare_schema_parameters(node: Node, defaults: SchemaT) -> SchemaT:
    """:func:`declare_ros_parameters` for any schema: the keys of ``type(defaults)``."""
    from perception_ws.config.descriptors import parameter_descriptors

    schema = type(defaults)
    flat = flatten(defaults)
    where = f"parameters of node {node.get_name()!r}"
    # rclpy keeps the overrides it was given in this attribute (no public accessor)
    overrides: Mapping[str, Any] = getattr(node, "_parameter_overrides", {})
    for key in overrides:
        # a misspelt key in a params file would otherwise be ignored silently (only declared names are read)
        if key not in flat and not is_ros_own(key):
            raise ConfigError(f"{where}: {unknown_key_message(key, flat)}")
    schema_from_flat(schema, {**flat, **{key: overrides[key].value for key in overrides}}, where)
    for key, descriptor in parameter_descriptors(schema).items():
        node.declare_parameter(key, flat[key], descriptor)
    values = {key: node.get_parameter(key).value for key in flat}
    return schema_from_flat(schema, values, where)


def _flatten_mapping(params: Mapping[str, Any], prefix: str, where: str) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'ros__parameters'} must be a mapping")
    out: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(_flatten_mapping(value, f"{key}.", where))
        else:
            out[key] = value
    return out
