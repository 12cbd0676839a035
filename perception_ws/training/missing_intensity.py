"""Intensity for training frames that have none, rendered as the simulated sweeps' is (``--intensity lir:PATH``).

GTA-LiDAR stores intensity 0 and CARLA's semantic LiDAR has none, so their frames (read from a folder, from a
``perception sim generate --backend carla|dataset`` dataset, or live from ``carla://HOST:PORT``) reach the
network with an empty intensity channel while the simulated sweeps beside them in a ``--data`` mixture carry
rendered intensity. With a learned renderer (``lir:PATH``) that gap closes: the network renders a range image's
intensity from its points and mask alone (:class:`~perception_ws.sim.sensor.intensity.ImageIntensity`, the same
call the simulated sweep makes), so a frame whose intensity is 0 on every return is rendered by it on its own
image. Frames that have intensity (real scans) are never touched.

With ``--intensity model`` or ``off`` nothing is rendered: the reflectance model needs each surface's albedo,
incidence and retro-reflection, which only the procedural streets know, so such frames keep intensity 0 (docs/
training.md: train with ``--intensity-input zero`` to make the network ignore the channel, or with ``lir:PATH``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.sim.sensor.intensity import ImageIntensity, ReflectanceModel, check_intensity_mode, make_intensity

#: channels of a training image (perception_ws.projection): x, y, z, intensity, range, mask.
_XYZ, _INTENSITY, _MASK = slice(0, 3), 3, 5


@dataclass
class MissingIntensity:
    """Renders the intensity of an image that has none, when ``mode`` (the run's ``--intensity``) is ``lir:PATH``."""

    mode: str = "off"
    _renderer: ImageIntensity | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # a bad mode or a missing LIR file fails here, in one line, before any sample is drawn
        self.active = check_intensity_mode(self.mode) is not None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``image`` (H, W, 6), or a copy with its intensity rendered when it has none on any return."""
        mask = image[..., _MASK] > 0
        if not self.active or not mask.any() or image[..., _INTENSITY][mask].any():
            return image
        if self._renderer is None:  # loaded on first use, in the process that samples (a data-loader worker)
            self._renderer = self._load()
        out = image.copy()
        rendered = np.asarray(self._renderer.render(image[..., _XYZ], mask), dtype=np.float32)
        out[..., _INTENSITY] = np.where(mask, rendered, np.float32(0.0))
        return out

    def _load(self) -> ImageIntensity:
        renderer = make_intensity(self.mode)
        if renderer is None or isinstance(renderer, ReflectanceModel):
            raise PerceptionError(f"intensity {self.mode!r}: names no learned renderer to render missing intensity")
        return renderer

    def describe(self) -> dict[str, Any]:
        """What the training log says of it: nothing unless it renders."""
        return {"missing_intensity": f"rendered by {self.mode}"} if self.active else {}

    def __getstate__(self) -> dict[str, Any]:
        # data-loader workers load the network themselves
        return {**self.__dict__, "_renderer": None}
