"""CARLA semantic tags and how they become the project's classes (SemanticKITTI-19 and KITTI-3).

CARLA writes one tag per LiDAR point (``object_tag`` of ``sensor.lidar.ray_cast_semantic``) and per
pixel (red channel of ``sensor.camera.semantic_segmentation``). The table below is the numbering of
CARLA 0.9.14 and later (CARLA's ``ref_sensors`` page: "tags changed from version 0.9.13 to 0.9.14";
the same values are ``carla.CityObjectLabel`` in the 0.9.16 client). Older servers number the tags
differently (e.g. 10 was Vehicles); :func:`check_tag_numbering` refuses them rather than mislabel.

Riders are part of their bicycle's or motorcycle's actor in CARLA, so a point's ``object_idx`` tells
which vehicle a rider sits on: the rider of a bicycle is a SemanticKITTI ``bicyclist`` and, with the
bicycle's own points, one KITTI-3 ``cyclist`` instance (the bicycle keeps its SemanticKITTI class
``bicycle``, as in the procedural simulator, docs/simulator.md); the rider of a motorcycle is a
``motorcyclist`` (not a KITTI-3 object, see labels.SEMANTIC_KITTI_TO_KITTI3).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from enum import IntEnum

import numpy as np

from perception_ws.errors import CloudFormatError, SimulatorError
from perception_ws.labels import KITTI3, SEMANTIC_KITTI, semantickitti_to_kitti3

#: the first CARLA release with the tag numbering of :class:`CarlaTag`.
MODERN_TAGS_SINCE = (0, 9, 14)


class CarlaTag(IntEnum):
    """CARLA's semantic tags, 0.9.14+ numbering (``carla.CityObjectLabel``)."""

    UNLABELED = 0
    ROAD = 1
    SIDEWALK = 2
    BUILDING = 3
    WALL = 4
    FENCE = 5
    POLE = 6
    TRAFFIC_LIGHT = 7
    TRAFFIC_SIGN = 8
    VEGETATION = 9
    TERRAIN = 10
    SKY = 11
    PEDESTRIAN = 12
    RIDER = 13
    CAR = 14
    TRUCK = 15
    BUS = 16
    TRAIN = 17
    MOTORCYCLE = 18
    BICYCLE = 19
    STATIC = 20
    DYNAMIC = 21
    OTHER = 22
    WATER = 23
    ROAD_LINE = 24
    GROUND = 25
    BRIDGE = 26
    RAIL_TRACK = 27
    GUARD_RAIL = 28


# fmt: off  (a table reads best as a table)
#: CARLA tag -> SemanticKITTI learning class. Choices where the two taxonomies differ: lane markings
#: are road (SemanticKITTI folds lane-marking into road); stand-alone walls and guard rails are fence
#: (SemanticKITTI's fence holds small walls and crash barriers); traffic lights are traffic-sign (no
#: own class); buses and trains are other-vehicle; ground and rail track are other-ground; bridges,
#: static/dynamic props, water, sky and "other" are unlabelled (SemanticKITTI's other-structure and
#: other-object fold into unlabelled in its learning map).
TAG_TO_SEMANTIC_KITTI: dict[CarlaTag, str] = {
    CarlaTag.UNLABELED: "unlabeled",
    CarlaTag.ROAD: "road",
    CarlaTag.SIDEWALK: "sidewalk",
    CarlaTag.BUILDING: "building",
    CarlaTag.WALL: "fence",
    CarlaTag.FENCE: "fence",
    CarlaTag.POLE: "pole",
    CarlaTag.TRAFFIC_LIGHT: "traffic-sign",
    CarlaTag.TRAFFIC_SIGN: "traffic-sign",
    CarlaTag.VEGETATION: "vegetation",
    CarlaTag.TERRAIN: "terrain",
    CarlaTag.SKY: "unlabeled",
    CarlaTag.PEDESTRIAN: "person",
    CarlaTag.RIDER: "bicyclist",
    CarlaTag.CAR: "car",
    CarlaTag.TRUCK: "truck",
    CarlaTag.BUS: "other-vehicle",
    CarlaTag.TRAIN: "other-vehicle",
    CarlaTag.MOTORCYCLE: "motorcycle",
    CarlaTag.BICYCLE: "bicycle",
    CarlaTag.STATIC: "unlabeled",
    CarlaTag.DYNAMIC: "unlabeled",
    CarlaTag.OTHER: "unlabeled",
    CarlaTag.WATER: "unlabeled",
    CarlaTag.ROAD_LINE: "road",
    CarlaTag.GROUND: "other-ground",
    CarlaTag.BRIDGE: "unlabeled",
    CarlaTag.RAIL_TRACK: "other-ground",
    CarlaTag.GUARD_RAIL: "fence",
}
# fmt: on

#: tags of countable objects: their points keep the hit actor's id as instance id.
THING_TAGS = (
    CarlaTag.PEDESTRIAN,
    CarlaTag.RIDER,
    CarlaTag.CAR,
    CarlaTag.TRUCK,
    CarlaTag.BUS,
    CarlaTag.TRAIN,
    CarlaTag.MOTORCYCLE,
    CarlaTag.BICYCLE,
)

# Tags are one byte in the camera's red channel; custom tags a user adds past 28 stay unlabelled.
_TAG_LUT = np.zeros(256, dtype=np.int32)
for _tag, _name in TAG_TO_SEMANTIC_KITTI.items():
    _TAG_LUT[_tag] = SEMANTIC_KITTI.id_of(_name)
_THING_LUT = np.zeros(256, dtype=bool)
_THING_LUT[list(THING_TAGS)] = True

_BICYCLIST = SEMANTIC_KITTI.id_of("bicyclist")
_MOTORCYCLIST = SEMANTIC_KITTI.id_of("motorcyclist")
_CYCLIST = KITTI3.id_of("cyclist")


def _tag_indices(tags: np.ndarray) -> np.ndarray:
    """Tags as LUT indices; values past 255 (never written by CARLA) count as unlabelled."""
    t = np.asarray(tags)
    if t.size and np.issubdtype(t.dtype, np.signedinteger) and t.min() < 0:
        raise CloudFormatError(f"CARLA tags must be >= 0; got {int(t.min())}")
    return np.where(t < 256, t, 0).astype(np.intp)


def thing_instances(tags: np.ndarray, object_idx: np.ndarray) -> np.ndarray:
    """Instance id per point (int32): the hit actor's id for object tags, 0 for stuff (road, buildings …)."""
    idx = np.asarray(object_idx)
    if idx.shape != np.shape(tags):
        raise CloudFormatError(f"CARLA object_idx has shape {idx.shape}, expected that of the tags {np.shape(tags)}")
    return np.where(_THING_LUT[_tag_indices(tags)], idx, 0).astype(np.int32)


def semantic_from_tags(
    tags: np.ndarray, instances: np.ndarray | None = None, motorcycle_instances: Collection[int] = ()
) -> np.ndarray:
    """CARLA tags -> SemanticKITTI learning ids (int32).

    With ``instances`` (actor ids, 0 = none), a rider whose actor also shows motorcycle points, or
    is listed in ``motorcycle_instances`` (actors known to be motorcycles), is a motorcyclist; any
    other rider is a bicyclist.
    """
    t = _tag_indices(tags)
    semantic = _TAG_LUT[t]
    if instances is not None:
        inst = _checked_instances(instances, t)
        listed = np.fromiter(motorcycle_instances, dtype=np.int64, count=len(motorcycle_instances))
        moto = np.union1d(inst[(t == CarlaTag.MOTORCYCLE) & (inst != 0)].astype(np.int64), listed)
        on_moto = (t == CarlaTag.RIDER) & (inst != 0) & np.isin(inst, moto)
        semantic[on_moto] = _MOTORCYCLIST
    return semantic


def kitti3_from_tags(
    tags: np.ndarray,
    instances: np.ndarray,
    semantic: np.ndarray | None = None,
    instance_classes: Mapping[int, int] | None = None,
) -> np.ndarray:
    """KITTI-3 id per point (int32) from CARLA tags and instance ids.

    Default: the SemanticKITTI class's KITTI-3 class, and a bicycle whose actor also has rider points
    becomes a cyclist with its rider. ``instance_classes`` (actor id -> KITTI-3 id, known from the
    actors themselves: a van is not a KITTI car) overrides the points of the instances it lists.
    """
    t = _tag_indices(tags)
    inst = _checked_instances(instances, t)
    sem = semantic_from_tags(t, inst) if semantic is None else np.asarray(semantic)
    labels = semantickitti_to_kitti3(sem).astype(np.int32)
    riders = np.unique(inst[(sem == _BICYCLIST) & (inst != 0)])
    labels[(t == CarlaTag.BICYCLE) & (inst != 0) & np.isin(inst, riders)] = _CYCLIST
    if instance_classes:
        ids = np.fromiter(instance_classes.keys(), dtype=np.int64, count=len(instance_classes))
        classes = np.fromiter(instance_classes.values(), dtype=np.int32, count=len(instance_classes))
        order = np.argsort(ids)
        ids, classes = ids[order], classes[order]
        pos = np.clip(np.searchsorted(ids, inst), 0, len(ids) - 1)
        known = (inst != 0) & (ids[pos] == inst)
        labels[known] = classes[pos[known]]
    return labels


def _checked_instances(instances: np.ndarray, tags: np.ndarray) -> np.ndarray:
    inst = np.asarray(instances)
    if inst.shape != tags.shape:
        raise CloudFormatError(f"instance ids have shape {inst.shape}, expected that of the tags {tags.shape}")
    return inst


def parse_version(version: str) -> tuple[int, ...] | None:
    """(major, minor, patch) from a CARLA version string ("0.9.16", "0.9.15.2", "0.9.14-dirty"), or None."""
    match = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups(default="0"))


def check_tag_numbering(server_version: str) -> None:
    """Refuse a server older than 0.9.14, whose tag numbers mean other classes."""
    parsed = parse_version(server_version)
    if parsed is not None and parsed < MODERN_TAGS_SINCE:
        since = ".".join(map(str, MODERN_TAGS_SINCE))
        raise SimulatorError(
            f"CARLA server {server_version} numbers its semantic tags the pre-{since} way; this backend maps the "
            f"{since}+ numbering only (e.g. 14 Car, 12 Pedestrian). Use a CARLA {since} or newer server."
        )


#: CARLA's vehicle ``base_type`` attribute (0.9.14+; walkers count as "pedestrian") -> KITTI object
#: type, whose KITTI-3 class ``labels.kitti_object_class`` gives (buses and motorcycles are Misc).
BASE_TYPE_TO_KITTI: dict[str, str] = {
    "car": "Car",
    "van": "Van",
    "truck": "Truck",
    "bus": "Misc",
    "motorcycle": "Misc",
    "bicycle": "Cyclist",
    "pedestrian": "Pedestrian",
}
# Without a base_type (custom blueprints), the actor's own tags tell; the first tag found wins.
_TAG_BASE_TYPES = (
    (CarlaTag.BICYCLE, "bicycle"),
    (CarlaTag.MOTORCYCLE, "motorcycle"),
    (CarlaTag.BUS, "bus"),
    (CarlaTag.TRUCK, "truck"),
    (CarlaTag.CAR, "car"),
    (CarlaTag.PEDESTRIAN, "pedestrian"),
)


def actor_base_type(type_id: str, base_type: str = "", semantic_tags: Collection[int] = ()) -> str:
    """An actor's kind ("car", "van", "bicycle", "pedestrian" …) from its blueprint id, its
    ``base_type`` attribute when it has one, else its semantic tags; "other" when none tells.
    """
    if type_id.startswith("walker."):
        return "pedestrian"
    if base_type:
        return base_type.strip().lower()
    tags = set(semantic_tags)
    return next((name for tag, name in _TAG_BASE_TYPES if tag in tags), "other")


def kitti_type(base_type: str) -> str:
    """KITTI object type of an actor kind (anything unknown is Misc)."""
    return BASE_TYPE_TO_KITTI.get(base_type, "Misc")
