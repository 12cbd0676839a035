"""The range-image projection and labels back to points, on the network's device (``segmenter.projection: device``).

:func:`project_on_device` takes the same arguments as :func:`perception_ws.projection.project`, checks them the same
way (:func:`~perception_ws.projection.prepare_projection`), copies the points to the device through pinned memory
and builds the range image there (:mod:`perception_ws.kernels.projection_torch`): the same pixels, owners and image
as the host projection. :class:`DeviceProjection` brings per-pixel results back to every point on the device, the
hidden points' nearest-owner step included, so only the per-point labels and confidences come back to the host.
Rows from a ring field or the storage order are worked out on the host (they check the ring values) and uploaded.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from perception_ws.calib.sensors import SensorModel
from perception_ws.device_runtime import PinnedTransfers
from perception_ws.errors import ProjectionError
from perception_ws.kernels.projection import ROWS_GIVEN, ROWS_TABLE, ColumnRule
from perception_ws.kernels.projection_torch import (
    DeviceRowRule,
    gather_image_torch,
    hidden_point_sources,
    project_torch,
)
from perception_ws.projection import RING_FIELDS, ImageSize, ProjectionInputs, RowSource, prepare_projection, table_rule


@dataclass(frozen=True, eq=False)
class DeviceProjection(ImageSize):
    """A range image and the pixel of every input point, as tensors on the device (see :class:`Projection`)."""

    #: (H, W, 6) float32 x, y, z, intensity, range, mask; empty pixels 0.
    image: torch.Tensor
    #: (N,) int32 row / column of every point, -1 when not in view.
    rows: torch.Tensor
    cols: torch.Tensor
    #: (H, W) int32 index of the point that won each pixel, -1 where empty.
    owner: torch.Tensor
    #: (N, 3) float32 coordinates of the input points (the nearest-owner search reads them).
    xyz: torch.Tensor
    columns: ColumnRule

    @functools.cached_property
    def source_pixels(self) -> torch.Tensor:
        """(N,) int64 flat pixel each point takes its label from, -1 when not in view: its own pixel if it won it,
        else the pixel of the nearest owner in 3D (as :attr:`Projection.source_pixels`).
        """
        in_view = self.rows >= 0
        pixel = torch.where(in_view, self.rows.to(torch.int64) * self.width + self.cols, -1)
        index = torch.arange(len(pixel), device=pixel.device)
        won = self.owner.view(-1)[pixel.clamp(min=0)] == index
        hidden = torch.nonzero(in_view & ~won).view(-1)  # waits for the projection: the search's size
        if len(hidden):
            pixel[hidden] = hidden_point_sources(self.xyz, hidden, self.owner, self.cols, self.columns)
        return pixel

    def labels_to_points(self, pixel_labels: torch.Tensor, fill: int = 0) -> torch.Tensor:
        """(N,) label of every point from an (H, W) integer label tensor on the device (``fill`` when not in view)."""
        if tuple(pixel_labels.shape) != (self.height, self.width) or pixel_labels.is_floating_point():
            raise ProjectionError(
                f"pixel labels of shape {tuple(pixel_labels.shape)} and dtype {pixel_labels.dtype}: expected an "
                f"integer tensor of shape ({self.height}, {self.width})"
            )
        return self._gather(pixel_labels.reshape(-1), fill)

    def pixel_values_to_points(self, values: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """(N, ...) float values of every point from an (H, W, ...) tensor on the device."""
        if tuple(values.shape[:2]) != (self.height, self.width):
            raise ProjectionError(
                f"pixel values of shape {tuple(values.shape)}: expected shape ({self.height}, {self.width}, ...)"
            )
        return self._gather(values.reshape(self.height * self.width, *values.shape[2:]).float(), fill)

    def _gather(self, flat: torch.Tensor, fill: float) -> torch.Tensor:
        source = self.source_pixels
        seen = (source >= 0).view(-1, *([1] * (flat.dim() - 1)))
        return torch.where(seen, flat[source.clamp(min=0)], torch.tensor(fill, dtype=flat.dtype, device=flat.device))


def project_on_device(
    points: Any,
    transfers: PinnedTransfers,
    sensor: SensorModel | str | None = None,
    fov_deg: float | tuple[float, float] = 90.0,
    width: int = 512,
    height: int | None = None,
    ring_field: str | Sequence[str] = RING_FIELDS,
    row_source: RowSource = "auto",
) -> DeviceProjection:
    """:func:`~perception_ws.projection.project` on ``transfers.device``: same arguments (but the backend), same
    errors, same result as tensors there. Nothing waits for the device.
    """
    inputs = prepare_projection(points, sensor, fov_deg, width, height, ring_field, row_source)
    coordinates = [inputs.x, inputs.y, inputs.z]
    # float32 clouds travel as float32 (the usual case); other coordinate types as float64, which holds them exactly
    dtype = torch.float32 if all(c.dtype == np.float32 for c in coordinates) else torch.float64
    intensity = [] if inputs.intensity is None else [inputs.intensity]
    values = transfers.upload("points", coordinates + intensity, dtype)
    x, y, z = values[0], values[1], values[2]
    rule = _rows_on_device(inputs, transfers)
    projected = project_torch(x, y, z, rule, inputs.columns, inputs.height)
    image = gather_image_torch(projected.owner, x, y, z, values[3] if intensity else None, projected.ranges)
    xyz = values[:3].T.to(torch.float32)
    return DeviceProjection(image, projected.rows, projected.cols, projected.owner, xyz, inputs.columns)


def _rows_on_device(inputs: ProjectionInputs, transfers: PinnedTransfers) -> DeviceRowRule:
    rule = inputs.rows
    if rule.kind == ROWS_GIVEN:
        return DeviceRowRule(ROWS_GIVEN, given_rows=transfers.upload("rows", [rule.given_rows], torch.int32)[0])
    if rule.kind == ROWS_TABLE:
        tan_elevations, beam_heights = _beam_table(inputs.sensor, transfers.device)
        return DeviceRowRule(ROWS_TABLE, tan_elevations=tan_elevations, beam_heights=beam_heights)
    return DeviceRowRule(rule.kind, top_rad=rule.top_rad, step_rad=rule.step_rad)


@functools.lru_cache(maxsize=32)
def _beam_table(sensor: SensorModel, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The sensor's beam table on ``device``, copied there once (not with every scan)."""
    rule = table_rule(sensor)
    return (
        torch.as_tensor(rule.tan_elevations.copy(), dtype=torch.float64, device=device),
        torch.as_tensor(rule.beam_heights.copy(), dtype=torch.float64, device=device),
    )
