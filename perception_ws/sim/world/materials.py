"""Surface materials: what a laser return off a triangle looks like.

Each triangle of a scene carries one material id. The intensity model reads ``albedo`` (diffuse
reflectance at 905 nm, 0..1) and ``retro`` (retro-reflective sheeting on the faces of signs and on plates returns
far more than its albedo); the physical dropout reads ``glass`` (the beam mostly passes through).
Albedos are rough figures for near-infrared: dark car paint and tyres reflect little, vegetation
and concrete reflect a lot (the real KITTI remissions of cars sit near zero, of terrain near 0.35).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Mat(IntEnum):
    """Material ids, stored per triangle (one byte)."""

    ASPHALT = 0
    LANE_PAINT = 1
    CONCRETE = 2
    GRASS = 3
    SOIL = 4
    BRICK = 5
    PLASTER = 6
    WINDOW = 7
    BARK = 8
    FOLIAGE = 9
    METAL = 10
    SIGN = 11
    CAR_PAINT_DARK = 12
    CAR_PAINT_LIGHT = 13
    RUBBER = 14
    PLATE = 15
    CLOTH_DARK = 16
    CLOTH_LIGHT = 17
    SKIN = 18
    WOOD = 19
    CAR_GLASS = 20


@dataclass(frozen=True)
class Material:
    """What the sensor models read of a material: albedo, and whether it is glass or retro-reflective."""

    name: str
    albedo: float
    glass: bool = False
    retro: bool = False


MATERIALS: dict[Mat, Material] = {
    Mat.ASPHALT: Material("asphalt", 0.26),
    Mat.LANE_PAINT: Material("lane paint", 0.75),
    Mat.CONCRETE: Material("concrete", 0.42),
    Mat.GRASS: Material("grass", 0.5),
    Mat.SOIL: Material("soil", 0.3),
    Mat.BRICK: Material("brick", 0.3),
    Mat.PLASTER: Material("plaster", 0.4),
    Mat.WINDOW: Material("window", 0.1, glass=True),
    Mat.BARK: Material("bark", 0.42),
    Mat.FOLIAGE: Material("foliage", 0.4),
    Mat.METAL: Material("metal", 0.25),
    Mat.SIGN: Material("sign", 0.8, retro=True),
    Mat.CAR_PAINT_DARK: Material("dark paint", 0.05),
    Mat.CAR_PAINT_LIGHT: Material("light paint", 0.25),
    Mat.RUBBER: Material("rubber", 0.05),
    Mat.PLATE: Material("licence plate", 0.8, retro=True),
    Mat.CLOTH_DARK: Material("dark cloth", 0.3),
    Mat.CLOTH_LIGHT: Material("light cloth", 0.6),
    Mat.SKIN: Material("skin", 0.5),
    Mat.WOOD: Material("wood", 0.35),
    Mat.CAR_GLASS: Material("car glass", 0.05, glass=True),
}


def _table(attr: str, dtype: type) -> np.ndarray:
    out: np.ndarray = np.zeros(max(MATERIALS) + 1, dtype=dtype)
    for mat, material in MATERIALS.items():
        out[mat] = getattr(material, attr)
    return out


#: per material id: albedo (float32), glass (bool), retro-reflective (bool)
ALBEDO = _table("albedo", np.float32)
IS_GLASS = _table("glass", np.bool_)
IS_RETRO = _table("retro", np.bool_)
