"""Class sets: ids, names and colours, and the mappings between datasets' label spaces.

Two sets are used across the project:

* ``KITTI3`` — the SqueezeSeg classes: 0 unknown (background), 1 car, 2 pedestrian, 3 cyclist.
* ``SEMANTIC_KITTI`` — the 19 SemanticKITTI learning classes, plus 0 unlabelled.

Raw SemanticKITTI ``.label`` values carry the semantic id in their low 16 bits (e.g. 10 car,
252 moving-car) and the instance id in the high 16 bits; :func:`semantickitti_learning_ids`
turns them into learning ids with the benchmark's official learning map (moving classes folded
into their static counterparts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_ws.errors import PerceptionError


@dataclass(frozen=True)
class ClassSet:
    """An ordered class table: id ``i`` is ``names[i]`` drawn in ``colors[i]`` (RGB, uint8)."""

    name: str
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    #: the id that means "no class / ignore" in metrics and training.
    ignore_id: int = 0

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise PerceptionError(f"class set {self.name}: {len(self.names)} names but {len(self.colors)} colours")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def ids(self) -> range:
        return range(len(self.names))

    @property
    def palette(self) -> np.ndarray:
        """(K, 3) uint8 RGB colours indexed by class id."""
        return np.asarray(self.colors, dtype=np.uint8)

    @property
    def object_ids(self) -> list[int]:
        """Every id except the ignore id."""
        return [i for i in self.ids if i != self.ignore_id]

    def id_of(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise PerceptionError(
                f"class set {self.name}: unknown class {name!r}; known: {', '.join(self.names)}"
            ) from None

    def colorize(self, ids: np.ndarray) -> np.ndarray:
        """RGB colour per id (ids outside the table are drawn black)."""
        ids = np.asarray(ids)
        table = np.vstack([self.palette, np.zeros((1, 3), np.uint8)])
        safe = np.where((ids >= 0) & (ids < len(self)), ids, len(self))
        return table[safe]


KITTI3 = ClassSet(
    name="kitti3",
    names=("unknown", "car", "pedestrian", "cyclist"),
    colors=((160, 160, 160), (0, 114, 255), (255, 64, 64), (255, 196, 0)),
)

# fmt: off  (tables read best as tables)
SEMANTIC_KITTI = ClassSet(
    name="semantickitti",
    names=(
        "unlabeled",
        "car",
        "bicycle",
        "motorcycle",
        "truck",
        "other-vehicle",
        "person",
        "bicyclist",
        "motorcyclist",
        "road",
        "parking",
        "sidewalk",
        "other-ground",
        "building",
        "fence",
        "vegetation",
        "trunk",
        "terrain",
        "pole",
        "traffic-sign",
    ),
    colors=(
        (110, 110, 110),
        (100, 150, 245),
        (100, 230, 245),
        (30, 60, 150),
        (80, 30, 180),
        (0, 0, 255),
        (255, 30, 30),
        (255, 40, 200),
        (150, 30, 90),
        (255, 0, 255),
        (255, 150, 255),
        (75, 0, 75),
        (175, 0, 75),
        (255, 200, 0),
        (255, 120, 50),
        (0, 175, 0),
        (135, 60, 0),
        (150, 240, 80),
        (255, 240, 150),
        (255, 0, 0),
    ),
)

CLASS_SETS: dict[str, ClassSet] = {KITTI3.name: KITTI3, SEMANTIC_KITTI.name: SEMANTIC_KITTI}

#: SemanticKITTI raw semantic id -> learning id (the benchmark's learning map).
SEMANTIC_KITTI_LEARNING_MAP: dict[int, int] = {
    0: 0,
    1: 0,
    10: 1,
    11: 2,
    13: 5,
    15: 3,
    16: 5,
    18: 4,
    20: 5,
    30: 6,
    31: 7,
    32: 8,
    40: 9,
    44: 10,
    48: 11,
    49: 12,
    50: 13,
    51: 14,
    52: 0,
    60: 9,
    70: 15,
    71: 16,
    72: 17,
    80: 18,
    81: 19,
    99: 0,
    252: 1,
    253: 7,
    254: 6,
    255: 8,
    256: 5,
    257: 5,
    258: 4,
    259: 5,
}
# fmt: on

#: SemanticKITTI learning name -> KITTI-3 name. Riders count as cyclists (KITTI's Cyclist box holds
#: rider and bicycle); a bicycle with no rider, motorcycles and trucks are not KITTI-3 objects.
SEMANTIC_KITTI_TO_KITTI3: dict[str, str] = {"car": "car", "person": "pedestrian", "bicyclist": "cyclist"}

#: KITTI object-benchmark label_2 type -> KITTI-3 name (the SqueezeSeg choice: Car, Pedestrian,
#: Cyclist only; Van, Truck, Person_sitting, Tram, Misc and DontCare stay unknown).
KITTI_OBJECT_TO_KITTI3: dict[str, str] = {"Car": "car", "Pedestrian": "pedestrian", "Cyclist": "cyclist"}

_LEARNING_LUT = np.zeros(1 << 16, dtype=np.int32)
for _raw, _learn in SEMANTIC_KITTI_LEARNING_MAP.items():
    _LEARNING_LUT[_raw] = _learn

_TO_KITTI3_LUT = np.zeros(len(SEMANTIC_KITTI), dtype=np.int32)
for _sk, _k3 in SEMANTIC_KITTI_TO_KITTI3.items():
    _TO_KITTI3_LUT[SEMANTIC_KITTI.id_of(_sk)] = KITTI3.id_of(_k3)


def get_class_set(name: str) -> ClassSet:
    """The class set called ``name`` (any case); a PerceptionError lists the known ones."""
    try:
        return CLASS_SETS[name.lower()]
    except KeyError:
        raise PerceptionError(f"unknown class set {name!r}; known: {', '.join(CLASS_SETS)}") from None


def semantickitti_learning_ids(raw: np.ndarray) -> np.ndarray:
    """Raw ``.label`` values (uint32, instance in the high bits) -> learning ids 0..19 (int32).

    Semantic ids absent from the learning map map to 0 (unlabelled), as in the benchmark.
    """
    return np.asarray(_LEARNING_LUT[np.asarray(raw).astype(np.uint32) & 0xFFFF])


def semantickitti_instance_ids(raw: np.ndarray) -> np.ndarray:
    """Instance id per point from raw ``.label`` values (high 16 bits), int32."""
    return (np.asarray(raw).astype(np.uint32) >> 16).astype(np.int32)


def semantickitti_to_kitti3(learning_ids: np.ndarray) -> np.ndarray:
    """SemanticKITTI learning ids (0..19) -> KITTI-3 ids (0 unknown, 1 car, 2 pedestrian, 3 cyclist)."""
    ids = np.asarray(learning_ids)
    if ids.size and (ids.min() < 0 or ids.max() >= len(SEMANTIC_KITTI)):
        raise PerceptionError(
            f"SemanticKITTI learning ids must lie in 0..{len(SEMANTIC_KITTI) - 1}; got {ids.min()}..{ids.max()}"
        )
    return np.asarray(_TO_KITTI3_LUT[ids])


def kitti_object_class(type_name: str) -> int:
    """KITTI-3 id of a KITTI object label type (``Car`` -> 1, ``Van`` -> 0 …)."""
    k3 = KITTI_OBJECT_TO_KITTI3.get(type_name)
    return KITTI3.id_of(k3) if k3 else 0
