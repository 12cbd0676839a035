"""The ROS ``ParameterDescriptor`` of each key of a settings schema: its description, its range and whether it
may change while the node runs (``ros2 param describe`` shows all three).

Ranges come from the field's bounds (``Field(ge=..., gt=..., le=..., lt=...)``). ROS ranges are inclusive and
need both ends: a side without a bound gets the widest finite value of the type (the schema refuses infinities),
and an exclusive bound becomes the next representable value inside it (``gt=0`` on an integer: 1; on a float:
the smallest positive double, 5e-324). rclpy compares floats with a relative tolerance of 1e-6, so at an
exclusive bound other than 0 it would still let the bound itself through; the schema's own check, run on every
value when the node starts, stays the one that decides (all the bounds of the schemas today are ``gt=0``).
A field with a fixed set of values (``Literal``) names them in ``additional_constraints``.
"""

from __future__ import annotations

import math
import sys

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from perception_ws.schema import Schema, constraint, descriptions, field_bounds, leaves

_INT64 = (-(2**63), 2**63 - 1)
_FLOAT = (-sys.float_info.max, sys.float_info.max)


def parameter_descriptors(schema: type[Schema], *, read_only: bool = True) -> dict[str, ParameterDescriptor]:
    """Dotted key -> descriptor of every leaf of ``schema``; ``read_only``: the node reads it at start only.

    Types stay dynamic (``dynamic_typing``) so that a params file's ``fov_deg: 360`` reaches the schema,
    which accepts it and names the key when a type is wrong.
    """
    docs = descriptions(schema)
    out: dict[str, ParameterDescriptor] = {}
    for key, info in leaves(schema).items():
        descriptor = ParameterDescriptor(
            name=key,
            description=docs[key],
            additional_constraints=constraint(info),
            read_only=read_only,
            dynamic_typing=True,
        )
        if info.annotation is int:
            descriptor.integer_range = [_integer_range(field_bounds(info))]
        elif info.annotation is float:
            descriptor.floating_point_range = [_float_range(field_bounds(info))]
        out[key] = descriptor
    return out


def _integer_range(bounds: dict[str, float]) -> IntegerRange:
    low = math.ceil(bounds["ge"]) if "ge" in bounds else math.floor(bounds["gt"]) + 1 if "gt" in bounds else _INT64[0]
    high = math.floor(bounds["le"]) if "le" in bounds else math.ceil(bounds["lt"]) - 1 if "lt" in bounds else _INT64[1]
    return IntegerRange(from_value=low, to_value=high, step=0)


def _float_range(bounds: dict[str, float]) -> FloatingPointRange:
    low = bounds["ge"] if "ge" in bounds else math.nextafter(bounds["gt"], math.inf) if "gt" in bounds else _FLOAT[0]
    high = bounds["le"] if "le" in bounds else math.nextafter(bounds["lt"], -math.inf) if "lt" in bounds else _FLOAT[1]
    return FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)
