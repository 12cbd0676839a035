"""How the simulated camera colours what its rays hit: visible base colours, a sun, the sky.

The LiDAR's materials (:mod:`perception_ws.sim.world.materials`) describe near-infrared reflectance; a
camera needs visible colours, so every material has a base RGB here, scaled by the part's own
brightness (``Part.albedo_scale``, recovered from the soup's albedo) so that two buildings of one
material still differ. Car paint takes a colour per instance from a small palette of common car
colours (dark paint: black, navy, dark red …; light paint: white, silver, red …).

Shading is Lambert's law with one sun and an ambient sky term, ``base * (ambient_sky + sun_gain *
max(0, n · sun) * lit)``, where ``lit`` is 0 in a cast shadow (a second ray towards the sun) and the
face normal is turned towards the camera (meshes do not orient their faces consistently). Far
surfaces fade into the horizon haze; rays that hit nothing take a sky gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_ws.errors import CalibrationError
from perception_ws.sim.world.materials import ALBEDO, Mat
from perception_ws.sim.world.scene import TriangleSoup

#: base colour (sRGB, 0..1) per material id, for the camera only.
_BASE = {
    Mat.ASPHALT: (0.33, 0.33, 0.34),
    Mat.LANE_PAINT: (0.92, 0.92, 0.88),
    Mat.CONCRETE: (0.66, 0.65, 0.62),
    Mat.GRASS: (0.36, 0.52, 0.22),
    Mat.SOIL: (0.45, 0.37, 0.27),
    Mat.BRICK: (0.62, 0.33, 0.25),
    Mat.PLASTER: (0.82, 0.77, 0.66),
    Mat.WINDOW: (0.24, 0.30, 0.36),
    Mat.BARK: (0.36, 0.27, 0.20),
    Mat.FOLIAGE: (0.24, 0.42, 0.16),
    Mat.METAL: (0.55, 0.56, 0.58),
    Mat.SIGN: (0.90, 0.90, 0.92),
    Mat.CAR_PAINT_DARK: (0.12, 0.12, 0.13),
    Mat.CAR_PAINT_LIGHT: (0.80, 0.80, 0.80),
    Mat.RUBBER: (0.07, 0.07, 0.07),
    Mat.PLATE: (0.95, 0.93, 0.80),
    Mat.CLOTH_DARK: (0.18, 0.20, 0.26),
    Mat.CLOTH_LIGHT: (0.72, 0.68, 0.60),
    Mat.SKIN: (0.85, 0.66, 0.52),
    Mat.WOOD: (0.55, 0.40, 0.25),
    Mat.CAR_GLASS: (0.10, 0.13, 0.16),
}
BASE_RGB = np.zeros((len(ALBEDO), 3), dtype=np.float32)
for _mat, _rgb in _BASE.items():
    BASE_RGB[_mat] = _rgb

#: car colours by instance (sRGB 0..1): dark and light paints.
DARK_PAINTS = np.array(
    [(0.05, 0.05, 0.06), (0.08, 0.12, 0.28), (0.32, 0.06, 0.07), (0.10, 0.20, 0.12), (0.22, 0.23, 0.25)],
    dtype=np.float32,
)
LIGHT_PAINTS = np.array(
    [(0.88, 0.88, 0.86), (0.66, 0.68, 0.70), (0.72, 0.14, 0.12), (0.85, 0.70, 0.20), (0.30, 0.48, 0.75)],
    dtype=np.float32,
)
SKY_ZENITH = np.array([0.36, 0.55, 0.86], dtype=np.float32)
SKY_HORIZON = np.array([0.80, 0.86, 0.93], dtype=np.float32)


@dataclass(frozen=True)
class Lighting:
    """The sun (world frame: azimuth from +x towards +y, elevation above the horizon) and the sky."""

    sun_azimuth_deg: float = 35.0
    sun_elevation_deg: float = 50.0
    #: light from the sky on a surface in full shadow, as a share of full sunlight.
    ambient: float = 0.35
    #: cast shadows (one more ray per lit pixel).
    shadows: bool = True
    #: distance at which 63 % of a surface's colour has faded into the horizon haze (metres).
    haze_m: float = 600.0

    def __post_init__(self) -> None:
        if not 0.0 < self.sun_elevation_deg <= 90.0:
            raise CalibrationError(
                f"camera lighting: sun_elevation_deg = {self.sun_elevation_deg}; expected 0 < e <= 90"
            )
        if not 0.0 <= self.ambient <= 1.0:
            raise CalibrationError(f"camera lighting: ambient = {self.ambient}; expected 0..1")
        if not self.haze_m > 0:
            raise CalibrationError(f"camera lighting: haze_m = {self.haze_m}; expected > 0 metres")

    @property
    def sun(self) -> np.ndarray:
        """(3,) unit vector towards the sun, world frame."""
        az, el = np.radians(self.sun_azimuth_deg), np.radians(self.sun_elevation_deg)
        return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def base_colors(soup: TriangleSoup, triangles: np.ndarray) -> np.ndarray:
    """(N, 3) float32 base colour of the given triangles (indices into ``soup``, all >= 0)."""
    material = soup.material[triangles]
    rgb = BASE_RGB[material].copy()
    nominal = ALBEDO[material]
    scale = np.where(nominal > 0, soup.albedo[triangles] / np.maximum(nominal, 1e-6), 1.0)
    # the part's brightness relative to its material; muted so that no part turns white or black
    rgb *= np.clip(0.6 + 0.4 * scale, 0.5, 1.4)[:, None]
    instance = soup.instance[triangles].astype(np.int64)
    for paint, palette in ((Mat.CAR_PAINT_DARK, DARK_PAINTS), (Mat.CAR_PAINT_LIGHT, LIGHT_PAINTS)):
        on = material == paint
        # Knuth's multiplicative hash spreads neighbouring instance ids over the palette
        pick = (instance[on] * 2654435761 >> 7) % len(palette)
        rgb[on] = palette[pick]
    return np.asarray(np.clip(rgb, 0.0, 1.0))


def facing_normals(normals: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Face normals (N, 3) flipped where needed so that they point back along the rays (towards the camera)."""
    away = np.einsum("ij,ij->i", normals, directions) > 0
    return np.where(away[:, None], -normals, normals)


def shade(base: np.ndarray, normals: np.ndarray, lit: np.ndarray, distance: np.ndarray, light: Lighting) -> np.ndarray:
    """(N, 3) float32 colour: Lambert with the sun where ``lit``, sky light everywhere, haze with ``distance``."""
    sun = light.sun.astype(np.float32)
    lambert = np.clip(normals @ sun, 0.0, 1.0) * lit
    # the sky lights upward faces more than walls, and walls more than overhangs
    sky = light.ambient * (0.75 + 0.25 * normals[:, 2])
    rgb = base * (sky + (1.0 - light.ambient) * lambert)[:, None]
    fade = (1.0 - np.exp(-distance / light.haze_m)).astype(np.float32)[:, None]
    return np.asarray(rgb * (1.0 - fade) + SKY_HORIZON * fade)


def sky_colors(directions: np.ndarray) -> np.ndarray:
    """(N, 3) float32 sky colour of world-frame ray directions: horizon haze to a blue zenith."""
    up = np.clip(directions[:, 2], 0.0, 1.0)[:, None]
    blend = np.sqrt(up).astype(np.float32)
    return np.asarray(SKY_HORIZON * (1.0 - blend) + SKY_ZENITH * blend)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Colours in 0..1 as 8-bit values, clipped and rounded."""
    return np.asarray(np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8))
