"""The state of a scene while it is assembled: the random stream, the layout, the claimed ground, the next id.

:class:`SceneBuilder` is shared by the steps of :mod:`perception_ws.sim.world.generator` (the street as it
always was) and :mod:`perception_ws.sim.world.content` (hard negatives, parked bicycles, extra people), so
both place objects the same way: an object goes where its footprint is free, or not at all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from perception_ws.sim.world.assets import Asset
from perception_ws.sim.world.footprints import Footprints, rectangle
from perception_ws.sim.world.layout import StreetLayout, random_layout
from perception_ws.sim.world.scene import Actor, Part, Scene
from perception_ws.sim.world.scene_config import SceneConfig


class SceneBuilder:
    """Carries the random stream, the layout and the claimed space while a scene is assembled."""

    def __init__(self, seed: int, config: SceneConfig) -> None:
        self.rng = np.random.default_rng(seed)
        self.config = config
        self.layout: StreetLayout = random_layout(self.rng, config.half_length, config.cross_street_probability)
        self.space = Footprints()
        self.scene = Scene(seed=seed, layout=self.layout)
        self.next_instance = 1

    def z(self, x: float, y: float) -> float:
        return float(self.layout.surface_height(np.array(x), np.array(y)))

    def stuff(self, parts: Part | list[Part]) -> None:
        self.scene.parts.extend(parts if isinstance(parts, list) else [parts])

    def actor(
        self, asset: Asset, x: float, y: float, yaw: float, speed: float = 0.0, margin: float = 0.3
    ) -> Actor | None:
        """Place ``asset`` at (x, y) heading ``yaw`` if its footprint is free; returns the actor, or None."""
        lo, hi = asset.local_extent()
        c, s = np.cos(yaw), np.sin(yaw)
        mid = (lo + hi) / 2
        cx, cy = x + c * mid[0] - s * mid[1], y + s * mid[0] + c * mid[1]
        rect = rectangle(cx, cy, hi[0] - lo[0], hi[1] - lo[1], yaw, margin)
        if not self.space.claim(rect):
            return None
        # stand on the highest ground under the footprint (never sink into a bump or the road crown)
        inner = rectangle(cx, cy, (hi[0] - lo[0]) * 0.8, (hi[1] - lo[1]) * 0.8, yaw)
        z = float(self.layout.surface_height(inner[:, 0], inner[:, 1]).max())
        velocity = (speed * c, speed * s, 0.0)
        actor = asset.place(x, y, z, yaw, self.next_instance, velocity)
        self.scene.actors.append(actor)
        self.next_instance += 1
        return actor

    def uniform(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))


def along_x(b: SceneBuilder, spacing: tuple[float, float], place: Callable[[float], None]) -> None:
    """Call ``place(x)`` at random spacing along the street, skipping the side street."""
    x = b.layout.x_min + b.uniform(0, spacing[1])
    while x < b.layout.x_max - 1.0:
        if not b.layout.in_cross_street(np.array(x), 1.0):
            place(float(x))
        x += b.uniform(*spacing)


#: people and cyclists stand mostly (this share) within NEAR_EGO_X metres of the street's middle, where the
#: sensor poses are (x = -30..30): spread over the whole 180 m street, most would be too far away to be
#: more than a handful of points, and a segmentation model learns little from them.
NEAR_EGO_SHARE = 0.7
NEAR_EGO_X = 45.0


def actor_x(b: SceneBuilder, margin: float) -> float:
    """Where along the street a person or cyclist goes (see :data:`NEAR_EGO_SHARE`)."""
    lo, hi = b.layout.x_min + margin, b.layout.x_max - margin
    if b.rng.random() < NEAR_EGO_SHARE:
        lo, hi = max(lo, -NEAR_EGO_X), min(hi, NEAR_EGO_X)
    return b.uniform(lo, hi)
