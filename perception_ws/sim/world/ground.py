"""Ground surfaces of a street layout: road, parking strips, sidewalks with curbs, yards, lane markings.

The ground is a rectilinear grid whose lines include every zone boundary, so each cell lies in
one zone. Cells do not share vertices: each takes its corner heights from its own zone's surface,
and wherever two neighbouring cells disagree (a curb) a vertical quad closes the step. Cells are
finer across the street near the road (the camber and the curb need it) and coarser far away.
"""

from __future__ import annotations

import numpy as np

from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim.world.assets import stuff
from perception_ws.sim.world.layout import StreetLayout, Zone
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import quads
from perception_ws.sim.world.scene import Part

_ROAD = SEMANTIC_KITTI.id_of("road")

#: ground zone -> (SemanticKITTI class, material) for grass yards; paved yards are other-ground concrete
_ZONE_CLASS = {
    Zone.ROAD: ("road", Mat.ASPHALT),
    Zone.PARKING: ("parking", Mat.ASPHALT),
    Zone.SIDEWALK: ("sidewalk", Mat.CONCRETE),
    Zone.YARD: ("terrain", Mat.GRASS),
}


def _grid_lines(lo: float, hi: float, breaks: list[float], steps: list[tuple[float, float]]) -> np.ndarray:
    """Sorted grid coordinates over [lo, hi]: every break, and a step of ``s`` within ``|v| < limit``."""
    lines = [lo, hi, *[b for b in breaks if lo < b < hi]]
    for limit, step in steps:
        lines += list(np.arange(max(lo, -limit), min(hi, limit) + 1e-9, step))
    v = np.unique(np.round(np.asarray(lines), 3))
    return v[(v >= lo) & (v <= hi)]


def ground(layout: StreetLayout, y_extent: float) -> list[Part]:
    """The ground parts of ``layout`` over x_min..x_max and |y| <= ``y_extent``."""
    hr = layout.half_road
    y_breaks = [s * v for s in (-1, 1) for v in (hr, hr - layout.parking_width)]
    y_breaks += [-(hr + layout.sidewalk[0]), hr + layout.sidewalk[1]]
    x_breaks: list[float] = []
    if layout.cross_x is not None:
        half = layout.cross_half_width
        for w in (half, half + layout.sidewalk[0], half + layout.sidewalk[1], half + max(layout.sidewalk) + 3.0):
            x_breaks += [layout.cross_x - w, layout.cross_x + w]
    xs = _grid_lines(layout.x_min, layout.x_max, x_breaks, [(1e9, 2.0)])
    ys = _grid_lines(-y_extent, y_extent, y_breaks, [(hr + 6.0, 0.75), (40.0, 2.0), (1e9, 4.0)])
    cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    zone = layout.zone(cx[:, None], cy[None, :])  # (nx-1, ny-1)
    # corner heights per cell from the cell's own zone: (nx-1, ny-1, 2, 2) indexed [i, j, di, dj]
    X = np.stack([xs[:-1], xs[1:]], -1)[:, None, :, None]
    Y = np.stack([ys[:-1], ys[1:]], -1)[None, :, None, :]
    Z = layout.height(zone[:, :, None, None], X, Y)
    X, Y = np.broadcast_to(X, Z.shape), np.broadcast_to(Y, Z.shape)
    corners = np.stack([X, Y, Z], -1)  # (nx-1, ny-1, 2, 2, 3)
    cells = np.stack([corners[:, :, 0, 0], corners[:, :, 1, 0], corners[:, :, 1, 1], corners[:, :, 0, 1]], axis=2)
    # curb faces between neighbours whose surfaces disagree, owned by the higher cell's zone
    steps_x = _steps(corners[:-1, :, 1, :], corners[1:, :, 0, :], zone[:-1], zone[1:])
    steps_y = _steps(corners[:, :-1, :, 1], corners[:, 1:, :, 0], zone[:, :-1], zone[:, 1:])
    parts = []
    for z, (name, mat) in _ZONE_CLASS.items():
        faces = np.concatenate([cells[zone == z], steps_x[0][steps_x[1] == z], steps_y[0][steps_y[1] == z]])
        if z != Zone.YARD:
            parts.append(stuff(quads(faces, mat), SEMANTIC_KITTI.id_of(name)))
            continue
        right = faces[:, :, 1].mean(axis=1) < 0
        for side, paved in ((right, layout.paved_yard[0]), (~right, layout.paved_yard[1])):
            cls, m = ("other-ground", Mat.CONCRETE) if paved else (name, mat)
            parts.append(stuff(quads(faces[side], m), SEMANTIC_KITTI.id_of(cls)))
    parts.append(lane_markings(layout))
    return parts


def _steps(a: np.ndarray, b: np.ndarray, za: np.ndarray, zb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertical quads closing the gap between edge ``a`` (…, 2, 3) of one cell and the same edge ``b`` of the next.

    Returns the quads (N, 4, 3) and the zone owning each (the higher side).
    """
    gap = np.abs(a[..., 2] - b[..., 2]).max(axis=-1) > 1e-3
    lo_a = a[..., 0, 2] + a[..., 1, 2] < b[..., 0, 2] + b[..., 1, 2]
    a, b, za, zb, lo_a = a[gap], b[gap], za[gap], zb[gap], lo_a[gap]
    faces = np.stack([a[:, 0], a[:, 1], b[:, 1], b[:, 0]], axis=1)
    return faces, np.where(lo_a, zb, za)


def lane_markings(layout: StreetLayout) -> Part:
    """Dashed lane lines and solid edge lines, 1 cm above the road, following its surface."""
    lift, width = 0.01, 0.12
    pieces: list[tuple[float, float, float]] = []  # (x0, x1, y) of straight pieces at most 2 m long
    dash_x = np.arange(layout.x_min, layout.x_max - 3.0, 9.0)
    lane_lines = [0.0] + [s * k * layout.lane_width for s in (-1, 1) for k in range(1, layout.lanes)]
    for y in lane_lines:
        pieces += [(x, x + 1.5, y) for x0 in dash_x for x in (x0, x0 + 1.5)]
    edge = layout.half_road - layout.parking_width - 0.1
    solid = np.arange(layout.x_min, layout.x_max - 2.0, 2.0)
    for y in (-edge, edge):
        pieces += [(x, x + 2.0, y) for x in solid]
    p = np.asarray(pieces)
    keep = ~layout.in_cross_street(p[:, 0]) & ~layout.in_cross_street(p[:, 1])
    x0, x1, y = p[keep, 0], p[keep, 1], p[keep, 2]
    ya, yb = y - width / 2, y + width / 2
    xy = np.stack([np.stack([x0, ya], -1), np.stack([x1, ya], -1), np.stack([x1, yb], -1), np.stack([x0, yb], -1)], 1)
    z = layout.surface_height(xy[..., 0], xy[..., 1]) + lift
    corners = np.concatenate([xy, z[..., None]], axis=-1)
    return stuff(quads(corners, Mat.LANE_PAINT), _ROAD)
