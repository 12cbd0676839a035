"""What kind of streets to generate (:class:`SceneConfig`), and the named content presets.

The presets are what an ablation switches between (``perception sim generate --scene-content`` and
``perception train --scene-content``): ``v1`` is the street content as it was before the hard negatives and
the extra people came in (the same scenes, draw for draw), ``v2`` (the default) adds them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from perception_ws.errors import PerceptionError
from perception_ws.sim.world.vehicles import VEHICLE_MIX, VEHICLE_MIX_V1

#: the most a content density may be scaled up (more crowds the sidewalks beyond anything KITTI drove past)
MAX_DENSITY = 3.0


@dataclass(frozen=True)
class SceneConfig:
    """What kind of streets to generate. Ranges are (low, high), drawn uniformly per scene."""

    half_length: float = 90.0  # the street runs from x = -half_length to +half_length
    y_extent: float = 60.0  # ground reaches |y| <= y_extent
    cross_street_probability: float = 0.35
    parked_density: tuple[float, float] = (0.3, 0.9)  # share of curb space taken by parked vehicles
    moving_vehicles: tuple[int, int] = (1, 6)
    pedestrians: tuple[int, int] = (3, 16)
    cyclists: tuple[int, int] = (1, 5)
    vehicle_mix: dict[str, float] = field(default_factory=lambda: dict(VEHICLE_MIX))
    #: number of sensor poses suggested along the ego lane (the first at x = 0)
    ego_poses: int = 5
    #: hard negatives at people's height along the sidewalks (bollards, post boxes, hydrants, parking meters,
    #: short sign posts, young trees, traffic-light poles, bus shelters, garden walls, sidewalk hedges):
    #: 1 = about one every 8-20 m per side, 0 = none.
    street_furniture: float = 1.0
    #: bicycles parked without a rider (SemanticKITTI bicycle, never a KITTI-3 cyclist): 1 = about 3 stands
    #: of 1-3 bikes per scene, 0 = none.
    parked_bicycles: float = 1.0
    #: people beyond ``pedestrians``: groups of 2-4, people beside walls, poles and parked cars, people carrying
    #: umbrellas and bags or pushing strollers and trolleys, more children. 1 = about 8 more people, 0 = none.
    extra_people: float = 1.0

    def __post_init__(self) -> None:
        if self.half_length < 30.0:
            raise PerceptionError(f"scene config: half_length must be >= 30 m; got {self.half_length}")
        for name in ("parked_density", "moving_vehicles", "pedestrians", "cyclists"):
            lo, hi = getattr(self, name)
            if lo < 0 or hi < lo:
                raise PerceptionError(f"scene config: {name} must be a range 0 <= low <= high; got {(lo, hi)}")
        if self.ego_poses < 1:
            raise PerceptionError(f"scene config: ego_poses must be >= 1; got {self.ego_poses}")
        for name in ("street_furniture", "parked_bicycles", "extra_people"):
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_DENSITY:  # NaN fails this too
                raise PerceptionError(f"scene config: {name} must lie in 0..{MAX_DENSITY}; got {value!r}")


#: content presets: name -> the settings that differ from the default SceneConfig
SCENE_CONTENT: dict[str, dict[str, object]] = {
    "v1": {
        "street_furniture": 0.0,
        "parked_bicycles": 0.0,
        "extra_people": 0.0,
        "vehicle_mix": dict(VEHICLE_MIX_V1),
    },
    "v2": {},
}
DEFAULT_SCENE_CONTENT = "v2"


def check_scene_content(name: str) -> str:
    """``name`` if it is a content preset, else a PerceptionError listing the presets."""
    if name not in SCENE_CONTENT:
        raise PerceptionError(f"scene content {name!r}: expected one of {', '.join(SCENE_CONTENT)}")
    return name


def scene_config_for(content: str, **overrides: object) -> SceneConfig:
    """The SceneConfig of content preset ``content`` (``v1`` or ``v2``), with ``overrides`` on top."""
    settings = {**SCENE_CONTENT[check_scene_content(content)], **overrides}
    return dataclasses.replace(SceneConfig(), **settings)  # type: ignore[arg-type]
