"""The two model families and their names, without torch (the config schema and the node's start-up read them).

``range_image``: SqueezeSeg / SqueezeSegV2 on the projected range image (:mod:`perception_ws.models.registry`).
``point_voxel``: SPVCNN / SPVNAS on the 3D points, each point labelled directly
(:mod:`perception_ws.models.spvnas.point_model`).
"""

from __future__ import annotations

#: the point-voxel networks (``perception train --model``, ``segmenter.model``).
POINT_MODELS = ("spvcnn", "spvnas")


def is_point_model(name: str) -> bool:
    """Whether ``name`` (any case) is a point-voxel network rather than a range-image one."""
    return name.lower() in POINT_MODELS
