"""A trained LIR network in use: render intensity for range images, score it, save and load it.

:meth:`LirModel.render` takes numpy arrays (returns numpy, on the CPU) or torch tensors (returns a tensor
on their device: a GPU batch never goes through the host). It is also the simulator's intensity model
for ``--intensity lir:PATH`` (:class:`~perception_ws.sim.sensor.intensity.ImageIntensity`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception_ws.adapt.lir_file import LIR_FORMAT, check_lir_file
from perception_ws.adapt.lir_net import LirNet
from perception_ws.errors import PerceptionError, WeightsError
from perception_ws.models.weights import check_state_matches, read_state, write_state

#: channels of a projected image (perception_ws.projection): x, y, z at 0..2, intensity 3, mask 5
XYZ, INTENSITY, MASK = slice(0, 3), 3, 5


def pixel_mse(rendered: Sequence[np.ndarray], images: Sequence[np.ndarray]) -> float:
    """Mean squared intensity error over the valid pixels of all ``images`` (H, W, 6), pooled."""
    errors = [(r - im[..., INTENSITY])[im[..., MASK] > 0] for r, im in zip(rendered, images, strict=True)]
    pooled = np.concatenate(errors) if errors else np.zeros(0)
    if pooled.size == 0:
        raise PerceptionError("lir mse: the images hold no valid pixel")
    return float(np.mean(pooled.astype(np.float64) ** 2))


class LirModel:
    """A :class:`LirNet` in eval mode with the record of its training (``training``, ``scores``)."""

    def __init__(self, net: LirNet, training: Mapping[str, Any] | None = None) -> None:
        self.net = net.eval()
        self.training: dict[str, Any] = dict(training or {})
        self.scores: dict[str, Any] = {}

    @property
    def mode(self) -> str:
        return self.net.mode

    @torch.no_grad()
    def render(self, xyz: Any, mask: Any = None) -> Any:
        """Intensity (..., H, W) float32 in [0, 1] of (H, W, 3) or (B, H, W, 3) points; 0 where empty.

        ``mask``: the pixels holding a return; None: those whose point is not the origin.
        """
        as_numpy = isinstance(xyz, np.ndarray)
        points = torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32)) if as_numpy else xyz.float()
        if points.ndim not in (3, 4) or points.shape[-1] != 3:
            raise PerceptionError(f"lir render: expected (H, W, 3) or (B, H, W, 3) points, got {tuple(points.shape)}")
        if mask is None:
            valid = points.abs().sum(dim=-1) > 0
        else:
            valid = torch.from_numpy(np.asarray(mask, dtype=bool)) if as_numpy else mask.to(torch.bool)
        single = points.ndim == 3
        if single:
            points, valid = points.unsqueeze(0), valid.unsqueeze(0)
        self.net.to(points.device)  # a no-op after the first call on a device
        intensity = self.net.intensity(self.net(points, valid), valid)
        intensity = intensity[0] if single else intensity
        return intensity.cpu().numpy() if as_numpy else intensity

    def mse(self, images: Sequence[np.ndarray]) -> float:
        """Mean squared error of the rendered intensity over the valid pixels of (H, W, 6) projected images."""
        rendered = [self.render(im[..., XYZ], im[..., MASK] > 0) for im in images]
        return pixel_mse(rendered, images)

    def save(self, path: str | Path) -> Path:
        """Write the weights (``.pt``) and their manifest (``.json``) beside it; returns the ``.pt`` path."""
        training = {"data": "unlabelled target scans", "steps": 0, **self.training}
        return write_state(
            self.net.state_dict(),
            path,
            model_config=self.net.config,
            training=training,
            scores=self.scores,
            file_format=LIR_FORMAT,
        )


def load_lir(path: str | Path, device: str = "cpu") -> LirModel:
    """The LIR network saved at ``path``, checked as :func:`~perception_ws.models.weights.load_weights` checks."""
    weights = check_lir_file(path)
    manifest, state = read_state(weights, LIR_FORMAT)
    try:
        net = LirNet(**manifest["model"])
    except (PerceptionError, TypeError, ValueError) as exc:
        raise WeightsError(f"{weights}: the LIR config {manifest['model']} cannot be built ({exc})") from None
    check_state_matches(weights, net.state_dict(), state)
    net.load_state_dict(state)
    model = LirModel(net.to(torch.device(device)), manifest.get("training"))
    model.scores = dict(manifest.get("scores") or {})
    return model
