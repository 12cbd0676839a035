"""The base of every settings model (:class:`Schema`) and the dotted-key view of one (``sensor.model`` …).

A schema is a tree of frozen pydantic models, validated once at construction: strict types (no ``"1"`` for
an int, no 1 for a bool), finite floats, no unknown keys, bounds as ``Field(ge=..., le=...)`` (introspectable:
they are the ranges a ROS parameter may take). Any invalid value raises :class:`ConfigError` with one line
naming the dotted key, the value and what was expected. Lives outside :mod:`perception_ws.config` so that
:mod:`perception_ws.instances` can base its tracker settings on it without an import cycle.
"""

from __future__ import annotations

import difflib
import functools
import re
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from perception_ws.errors import PerceptionError

#: parameters rclpy declares itself on every node; a params file may set them, a schema ignores them.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
_ROS_OWN_PREFIXES = ("qos_overrides.",)

SchemaT = TypeVar("SchemaT", bound="Schema")


class ConfigError(PerceptionError):
    """A configuration key is unknown, or its value has the wrong type or lies out of range.

    ``key`` (dotted, relative to the model that raised it) and ``detail`` (the message after the key) are set
    where the message starts with the key, so that a model holding that one as a section can prefix its name.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.detail = message[len(key) :] if key is not None else message


class Schema(BaseModel):
    """A frozen settings model, validated once; a bad value raises :class:`ConfigError` (see the module doc).

    Validators of a field raise ``ValueError("expected ...")`` (the key and value are added here); validators
    of a whole model raise ConfigError with the complete message (they name their keys themselves).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise _error(type(self), err.errors()[0], values) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with dotted keys changed: ``config.replace(**{"segmenter.kind": "labels"})``."""
        flat = flatten(self)
        for key in changes:
            if key not in flat:
                raise ConfigError(unknown_key_message(key, flat))
        return schema_from_flat(type(self), {**flat, **changes})


# -- field types shared by the schemas ----------------------------------------------------------


def _listed(value: Any) -> Any:
    """A list (as YAML and ROS give it) as a tuple; None (a params file's ``[]`` reaches rclpy untyped) as ()."""
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else value


#: a list of strings / of finite numbers, stored as a tuple (the models are frozen).
Strings = Annotated[tuple[str, ...], BeforeValidator(_listed)]
Numbers = Annotated[tuple[float, ...], BeforeValidator(_listed)]


_TOPIC = re.compile(r"~?/?[A-Za-z_{][A-Za-z0-9_{}/~]*")


def _topic_name(topic: str) -> str:
    if not _TOPIC.fullmatch(topic):
        raise ValueError("expected a ROS topic name such as 'points' or '/lidar/points'")
    return topic


def _optional_topic_name(topic: str) -> str:
    return topic and _topic_name(topic)


#: a ROS topic name; OptionalTopicName may also be empty (that input is not subscribed).
TopicName = Annotated[str, AfterValidator(_topic_name)]
OptionalTopicName = Annotated[str, AfterValidator(_optional_topic_name)]


# -- dotted keys ------------------------------------------------------------------------------


def flatten(config: Schema, prefix: str = "") -> dict[str, Any]:
    """``{"sensor.model": "hdl64e", …}``: every leaf of a schema by its dotted key, in schema order."""
    out: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, Schema):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = list(value) if isinstance(value, tuple) else value
    return out


@functools.cache
def leaves(schema: type[Schema]) -> dict[str, FieldInfo]:
    """Dotted key -> field (type, default, bounds, description) of every leaf of a schema class."""
    out: dict[str, FieldInfo] = {}
    for name, info in schema.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, Schema):
            out.update({f"{name}.{key}": leaf for key, leaf in leaves(info.annotation).items()})
        else:
            out[name] = info
    return out


def descriptions(schema: type[Schema]) -> dict[str, str]:
    """One-line description of every dotted key (shown by ``ros2 param describe``)."""
    return {key: info.description or "" for key, info in leaves(schema).items()}


def schema_from_flat(schema: type[SchemaT], values: Mapping[str, Any], where: str = "config") -> SchemaT:
    """A validated ``schema`` from dotted keys; keys left out keep their defaults."""
    known = leaves(schema)
    nested: dict[str, Any] = {}
    for key, value in values.items():
        if is_ros_own(key):
            continue
        if key not in known:
            raise ConfigError(f"{where}: {unknown_key_message(key, known)}")
        *parents, leaf = key.split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    try:
        return schema(**nested)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def is_ros_own(key: str) -> bool:
    """Whether ``key`` is a parameter ROS itself gives every node (use_sim_time, qos_overrides.*), not a schema key."""
    return key in ROS_OWN_PARAMETERS or key.startswith(_ROS_OWN_PREFIXES)


def unknown_key_message(key: str, known: Mapping[str, Any]) -> str:
    """``unknown key 'x'`` with the closest known key, or else the list of known keys."""
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return f"unknown key {key!r}{hint}"


# -- one line per validation error ------------------------------------------------------------


def _error(schema: type[Schema], error: ErrorDetails, values: Mapping[str, Any]) -> ConfigError:
    """pydantic's first error as ``key = value; expected ...`` (the value as given, a whole list included)."""
    path = [part for part in error["loc"] if isinstance(part, str)]
    key = ".".join(path)
    kind, ctx = error["type"], error.get("ctx", {})
    cause = ctx.get("error")
    if kind == "value_error" and isinstance(cause, ConfigError):
        if cause.key is None:  # a model's own check: its message names its keys
            return cause
        # a section's error (pydantic builds sections with their own __init__): prefix the section's name
        inner = ".".join([*path, cause.key])
        return ConfigError(f"{inner}{cause.detail}", inner)
    if kind == "extra_forbidden":
        return ConfigError(unknown_key_message(key, leaves(schema)))
    info = leaves(schema).get(key)
    value = _given(values, path, error["input"])
    if info is not None and info.annotation is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # as validated
    if kind == "value_error":  # a check of the project's own (a PerceptionError) says what is wrong itself
        detail = f" = {value!r}{':' if isinstance(cause, PerceptionError) else ';'} {cause}"
    elif info is None:  # a whole section given as something else than a mapping
        detail = f" = {value!r}; expected a mapping of its keys"
    elif kind == "literal_error":
        detail = f" = {value!r}; expected {_kind(info.annotation)}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        detail = f" = {value!r}; expected {_bounds(info)}"
    else:
        detail = f" = {value!r} ({type(value).__name__}); expected {_kind(info.annotation)}"
    return ConfigError(f"{key}{detail}", key)


def _given(values: Mapping[str, Any], path: list[str], default: Any) -> Any:
    found: Any = values
    for part in path:
        if not isinstance(found, Mapping) or part not in found:
            return default
        found = found[part]
    return found


def field_bounds(info: FieldInfo) -> dict[str, float]:
    """The numeric bounds of a field by kind (``gt``, ``ge``, ``lt``, ``le``), as ``Field(...)`` gave them."""
    return {name: getattr(m, name) for m in info.metadata for name in ("gt", "ge", "lt", "le") if hasattr(m, name)}


def constraint(info: FieldInfo) -> str:
    """What a field takes beyond its type, in words (``at least 1``, ``one of cpu, cuda``); empty: nothing more."""
    if typing.get_origin(info.annotation) is Literal:
        return _kind(info.annotation)
    return _bounds(info)


def _bounds(info: FieldInfo) -> str:
    limits = field_bounds(info)
    low = f"at least {limits['ge']}" if "ge" in limits else f"> {limits['gt']}" if "gt" in limits else ""
    high = f"at most {limits['le']}" if "le" in limits else f"< {limits['lt']}" if "lt" in limits else ""
    return " and ".join(part for part in (low, high) if part)


def _kind(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return f"one of {', '.join(map(str, typing.get_args(annotation)))}"
    if typing.get_origin(annotation) is tuple:
        return "a list of strings" if typing.get_args(annotation)[0] is str else "a list of finite numbers"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    return names.get(annotation, str(annotation))
