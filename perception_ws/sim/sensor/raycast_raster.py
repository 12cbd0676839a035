"""First hits of whole LiDAR sweeps by rasterising the scene in the sensor's (row, column) grid.

Every ray of a sweep starts on the sensor's z axis (at its beam's height) and points along a fixed
(elevation, azimuth) of the ray pattern. So instead of tracing each ray through a tree, each
triangle finds the pixels whose rays can hit it, all triangles at once:

1. move the triangles into the sensor frame of each sweep (a batch of poses at once);
2. bound each triangle's azimuths (a column range, taken modulo the width, so a triangle across
   +-180 deg wraps; a triangle that the z axis passes through or touches spans all columns) and
   elevations (a row range: the beam table is searched, rows need not be evenly spaced);
3. expand the (triangle, pixel) candidate pairs of all triangles, test each with the pixel's exact
   ray (Möller–Trumbore, :mod:`perception_ws.sim.sensor.raycast_kernels`), and keep per pixel the nearest
   hit with one ``scatter_reduce(amin)`` over (distance, triangle) packed into an int64.

Why it is exact, not approximate: the candidate set of a triangle contains every pixel whose ray
hits it. Seen from one origin, a triangle covers a spherical triangle of directions whose edges are
great-circle arcs; elevation has no extremum inside such a region unless it holds a pole (then the
z axis passes through the triangle, handled as the all-columns case), so its extremes lie on the
edges: at a vertex or where an arc is level (a long ground edge passing the sensor dips lower
between its ends than at them), both found in closed form. Elevations fall as the origin rises, so
the union over beam heights is [lowest seen from the highest origin, highest seen from the lowest
origin]. Azimuths of a triangle that does not surround the z axis lie within an arc of at most
180 deg between its vertices'. Both ranges are widened by :data:`_ANGLE_PAD` (far above float32
rounding) before they are turned into rows and columns, and the test itself is the same exact test
the other backends run.

Sweeps are processed in chunks of poses and the pairs in chunks of at most ``pair_chunk``, so the
memory stays bounded whatever the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from perception_ws.errors import PerceptionError
from perception_ws.sim.sensor.raycast_kernels import NO_HIT, hit_distance, hit_index, moller_trumbore, pack_hits
from perception_ws.sim.world.scene import TriangleSoup
from perception_ws.sweep_layout import RayPattern
from perception_ws.torch_device import resolve_device

_ANGLE_PAD = 1e-4  # radians added around every bound: covers float32 rounding of the angles (~1e-6)
_AXIS_GAP = 1e-6  # metres: a vertex this close to the z axis has no meaningful azimuth
_WIDE = math.pi - 1e-3  # an azimuth span this wide: the triangle (nearly) surrounds the axis, all columns


@dataclass
class RasterHits:
    """First hits of B sweeps, per pixel (row-major ``row * W + col``), as tensors on the caster's device."""

    t: torch.Tensor  # (B, H * W) float32 distance from the beam origin, inf on a miss
    triangle: torch.Tensor  # (B, H * W) int64 triangle index, -1 on a miss
    #: the nearest hit that is not glass (what a beam passing the panes meets), or None when not asked for
    t_opaque: torch.Tensor | None = None
    triangle_opaque: torch.Tensor | None = None
    #: candidate (triangle, pixel) pairs tested, over all B sweeps (for memory planning)
    pairs: int = 0


@dataclass
class _Grid:
    """A ray pattern's tables on the device; rows re-sorted by ascending elevation (``sorted row``)."""

    rows: int
    columns: int
    elevation: torch.Tensor  # (H,) float32 radians, ascending
    real_row: torch.Tensor  # (H,) int64: sorted row -> the pattern's row
    height: torch.Tensor  # (H,) float32 beam origin height of each sorted row
    directions: torch.Tensor  # (H * W, 3) float32 sensor-frame directions, by the pattern's pixel index
    low: float  # lowest and highest beam origin
    high: float


class RasterCaster:
    """First hits of whole sweeps (a :class:`RayPattern` at B poses) over one scene's triangles."""

    name = "raster"

    def __init__(
        self,
        soup: TriangleSoup,
        device: str | torch.device | None = None,
        pair_chunk: int | None = None,
        triangle_chunk: int | None = None,
        compile_pairs: bool | None = None,
    ) -> None:
        if len(soup) == 0:
            raise PerceptionError("raster caster: the triangle soup is empty; there is nothing to cast rays against")
        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        # pairs tested per step (each costs ~150 bytes of temporaries), and (sweep, triangle) rows bounded
        # per step: a GPU takes big steps (fewer launches), a CPU small ones (its caches)
        self.pair_chunk = pair_chunk or (1 << 25 if cuda else 1 << 20)
        self.triangle_chunk = triangle_chunk or (1 << 23 if cuda else 1 << 19)
        self._vertices = torch.from_numpy(np.ascontiguousarray(soup.vertices, dtype=np.float32)).to(self.device)
        self._triangles = torch.from_numpy(soup.triangles.astype(np.int64)).to(self.device)
        self._glass = torch.from_numpy(np.asarray(soup.glass, dtype=bool)).to(self.device)
        self._grids: dict[int, tuple[RayPattern, _Grid]] = {}
        # the pair test is a dozen element-wise steps over millions of pairs: fused by torch.compile on a GPU
        # (None: compiled on CUDA only; a CPU would spend longer compiling than it saves)
        compiled = cuda if compile_pairs is None else compile_pairs
        self._test_pairs = torch.compile(pair_hits, dynamic=True) if compiled else pair_hits

    def __len__(self) -> int:
        return len(self._triangles)

    def grid(self, pattern: RayPattern) -> _Grid:
        """The pattern's tables on this device (made once per pattern)."""
        cached = self._grids.get(id(pattern))
        if cached is not None and cached[0] is pattern:
            return cached[1]
        elevation = np.radians(np.asarray(pattern.sensor.elevations_deg, dtype=np.float64))
        order = np.argsort(elevation, kind="stable")
        heights = np.asarray(pattern.origins[:, 2], dtype=np.float32)
        dev = self.device
        grid = _Grid(
            rows=pattern.rows,
            columns=pattern.columns,
            elevation=torch.from_numpy(elevation[order].astype(np.float32)).to(dev),
            real_row=torch.from_numpy(order.astype(np.int64)).to(dev),
            height=torch.from_numpy(heights[order]).to(dev),
            directions=torch.from_numpy(np.ascontiguousarray(pattern.directions.reshape(-1, 3))).to(dev),
            low=float(heights.min()),
            high=float(heights.max()),
        )
        self._grids[id(pattern)] = (pattern, grid)
        return grid

    @torch.no_grad()
    def first_hits(
        self,
        pattern: RayPattern,
        rotations: torch.Tensor | np.ndarray,
        translations: torch.Tensor | np.ndarray,
        max_range: float,
        opaque: bool = False,
    ) -> RasterHits:
        """First hits of ``pattern`` from B sensor poses (sensor -> world: ``x_w = R x_s + t``).

        ``rotations`` (B, 3, 3), ``translations`` (B, 3). With ``opaque``, also the nearest hit of
        each pixel that is not glass (``soup.glass``), so glass transmission can be decided per pixel.
        """
        rot, trans = self.check_poses(rotations, translations)
        if not max_range > 0:
            raise PerceptionError(f"raster caster: max_range must be > 0 metres; got {max_range}")
        grid = self.grid(pattern)
        sweeps, pixels, count = len(rot), grid.rows * grid.columns, len(self._triangles)
        best = torch.full((sweeps * pixels,), NO_HIT, dtype=torch.int64, device=self.device)
        best_opaque = torch.full_like(best, NO_HIT) if opaque else None
        pairs = 0
        per_step = max(1, self.triangle_chunk // count)  # sweeps whose triangles are bounded in one step
        for first in range(0, sweeps, per_step):
            last = min(first + per_step, sweeps)
            # triangles in each sweep's sensor frame: x_s = (x_w - t) R
            local = torch.matmul(self._vertices[None] - trans[first:last, None], rot[first:last])
            tri = local[:, self._triangles].reshape(-1, 3, 3)  # ((sweep, triangle), vertex, xyz)
            for flat, pixel, t in self._hits(tri, grid, float(max_range)):
                pairs += len(flat)
                target = (flat // count + first) * pixels + pixel
                triangle = flat % count
                key = pack_hits(t, triangle)
                best.scatter_reduce_(0, target, key, reduce="amin")
                if best_opaque is not None:
                    key = torch.where(self._glass[triangle], torch.full_like(key, NO_HIT), key)
                    best_opaque.scatter_reduce_(0, target, key, reduce="amin")
        shape = (sweeps, pixels)
        return RasterHits(
            t=hit_distance(best).view(shape),
            triangle=hit_index(best).view(shape),
            t_opaque=None if best_opaque is None else hit_distance(best_opaque).view(shape),
            triangle_opaque=None if best_opaque is None else hit_index(best_opaque).view(shape),
            pairs=pairs,
        )

    def check_poses(
        self, rotations: torch.Tensor | np.ndarray, translations: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sensor poses as float32 tensors on the device, or a clear error naming the shapes expected."""
        rot = torch.as_tensor(rotations, dtype=torch.float32).to(self.device)
        trans = torch.as_tensor(translations, dtype=torch.float32).to(self.device)
        if rot.ndim != 3 or rot.shape[1:] != (3, 3) or trans.shape != (len(rot), 3) or len(rot) == 0:
            raise PerceptionError(
                "raster caster: rotations must be (B, 3, 3) and translations (B, 3) with the same B >= 1; "
                f"got {tuple(rot.shape)} and {tuple(trans.shape)}"
            )
        if not (torch.isfinite(rot).all() and torch.isfinite(trans).all()):
            raise PerceptionError("raster caster: rotations and translations must be finite")
        return rot, trans

    def _hits(
        self, tri: torch.Tensor, grid: _Grid, max_range: float
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per chunk of candidate pairs: (flat (sweep, triangle) index, pixel, distance or inf)."""
        row0, rows, col0, cols = candidate_window(tri, grid, max_range)
        count = rows * cols
        live = count.nonzero()[:, 0]
        if len(live) == 0:
            return
        count, row0, rows, col0, cols = count[live], row0[live], rows[live], col0[live], cols[live]
        live_tri = tri[live].reshape(-1, 9)
        end = torch.cumsum(count, 0)
        start = end - count
        total = int(end[-1])
        # chunk boundaries on whole triangles, each chunk about pair_chunk pairs (at least one triangle)
        cuts = torch.arange(1, -(-total // self.pair_chunk), device=end.device) * self.pair_chunk
        inner = sorted(set(torch.searchsorted(end, cuts, right=True).tolist()) - {0, len(live)})
        bounds = [0, *inner, len(live)]
        stops = end[torch.tensor(bounds[1:], device=end.device) - 1].tolist()
        begin = 0
        for lo, hi, stop in zip(bounds[:-1], bounds[1:], stops, strict=True):
            owner = torch.repeat_interleave(
                torch.arange(lo, hi, device=end.device), count[lo:hi], output_size=stop - begin
            )
            pair = torch.arange(begin, stop, device=end.device)
            begin = stop
            pixel, t = self._test_pairs(
                owner, pair, start, row0, col0, cols, live_tri, grid.real_row, grid.height, grid.directions,
                grid.columns, max_range,
            )  # fmt: skip
            yield live[owner], pixel, t


def pair_hits(
    owner: torch.Tensor,
    pair: torch.Tensor,
    start: torch.Tensor,
    row0: torch.Tensor,
    col0: torch.Tensor,
    cols: torch.Tensor,
    live_tri: torch.Tensor,
    real_row: torch.Tensor,
    height: torch.Tensor,
    directions: torch.Tensor,
    columns: int,
    max_range: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel, distance or inf) of candidate pairs ``pair`` (running numbers) of triangles ``owner``.

    A pair's place in its triangle's window (``pair - start[owner]``) gives its sorted row and its
    column (modulo the width); the pixel's exact ray is tested against the triangle. One element-wise
    pass over the pairs: on a GPU it runs compiled (fused into a few kernels, see ``RasterCaster``).
    """
    k = pair - start[owner]
    width = cols[owner]
    srow = row0[owner] + torch.div(k, width, rounding_mode="floor")
    col = torch.remainder(col0[owner] + torch.remainder(k, width), columns)
    pixel = real_row[srow] * columns + col
    v = live_tri[owner]
    d = directions[pixel]
    v0 = v[:, 0:3]
    origin = (0.0, 0.0, height[srow])  # beam origins lie on the sensor's z axis
    t = moller_trumbore(origin, (d[:, 0], d[:, 1], d[:, 2]), v0, v[:, 3:6] - v0, v[:, 6:9] - v0, max_range)
    return pixel, t


def candidate_window(
    tri: torch.Tensor, grid: _Grid, max_range: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per triangle (N, 3 vertices, xyz in the sensor frame): first sorted row, rows, first column, columns.

    The window holds every pixel whose ray can hit the triangle (see the module doc); rows or
    columns are 0 where none can (also for triangles wholly beyond ``max_range``). The first column
    may be negative or the window may run past the last column: columns are taken modulo the width.
    """
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]  # (N, 3) each
    rho = torch.hypot(x, y)
    az = torch.atan2(y, x)
    rel = torch.remainder(az - az[:, :1] + math.pi, 2 * math.pi) - math.pi  # azimuths relative to vertex 0
    rel_lo, rel_hi = rel.amin(dim=1), rel.amax(dim=1)
    full = (rel_hi - rel_lo > _WIDE) | (rho.amin(dim=1) < _AXIS_GAP)
    # columns: azimuth pi - (c + 0.5) * 2 pi / W, falling with c
    scale = grid.columns / (2 * math.pi)
    top_az, bottom_az = az[:, 0] + rel_hi + _ANGLE_PAD, az[:, 0] + rel_lo - _ANGLE_PAD
    col0 = torch.ceil((math.pi - top_az) * scale - 0.5)
    col1 = torch.floor((math.pi - bottom_az) * scale - 0.5)
    cols = (col1 - col0 + 1).clamp(0, grid.columns)
    col0 = torch.where(full, torch.zeros_like(col0), col0)
    cols = torch.where(full, torch.full_like(cols, grid.columns), cols)
    # rows: elevations from the lowest origin bound the top, from the highest the bottom
    top = _elevation_bound(x, y, z - grid.low, rho, upper=True)
    bottom = _elevation_bound(x, y, z - grid.high, rho, upper=False)
    # a triangle the z axis passes through also holds the straight-up or straight-down direction
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    nx, ny = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1], e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
    nz = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    steep = nz.abs() <= 1e-9 * (nx.abs() + ny.abs() + 1e-30)  # (nearly) vertical: the axis may lie in it
    axis_z = z[:, 0] + (nx * x[:, 0] + ny * y[:, 0]) / torch.where(steep, torch.ones_like(nz), nz)
    margin = 1e-3 + 1e-5 * rho.amax(dim=1)
    below = full & (steep | (axis_z <= grid.high + margin))
    above = full & (steep | (axis_z >= grid.low - margin))
    top = torch.where(above, torch.full_like(top, math.pi / 2), top)
    bottom = torch.where(below, torch.full_like(bottom, -math.pi / 2), bottom)
    row0 = torch.searchsorted(grid.elevation, (bottom - _ANGLE_PAD).contiguous())
    row1 = torch.searchsorted(grid.elevation, (top + _ANGLE_PAD).contiguous(), right=True)
    rows = (row1 - row0).clamp(min=0)
    # cull what lies wholly beyond max_range: the distance from the beam-origin segment to the box bounds it
    gap_x = torch.maximum(x.amin(dim=1), -x.amax(dim=1)).clamp(min=0)
    gap_y = torch.maximum(y.amin(dim=1), -y.amax(dim=1)).clamp(min=0)
    gap_z = torch.maximum(z.amin(dim=1) - grid.high, grid.low - z.amax(dim=1)).clamp(min=0)
    near = gap_x * gap_x + gap_y * gap_y + gap_z * gap_z <= max_range * max_range
    rows = torch.where(near, rows, torch.zeros_like(rows))
    return row0, rows, col0.to(torch.int64), cols.to(torch.int64)


def _elevation_bound(
    x: torch.Tensor, y: torch.Tensor, zz: torch.Tensor, rho: torch.Tensor, upper: bool
) -> torch.Tensor:
    """Highest (``upper``) or lowest elevation of a triangle's edges seen from the origin; (N,) radians.

    ``zz`` is the vertices' height above the origin. Along an edge A->B (a great-circle arc) the
    extreme is at an end, or at the arc's level point when that lies between them: the great
    circle with normal n = A x B peaks at elevation atan2(|n_xy|, |n_z|), in the direction
    z - n_z n / |n|^2, which lies on the arc iff (n x A)_z >= 0 and (B x n)_z >= 0 (<= 0 for
    the lowest point, in the opposite direction).
    """
    vertex = torch.atan2(zz, rho)
    best = vertex.amax(dim=1) if upper else vertex.amin(dim=1)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        ax, ay, az = x[:, a], y[:, a], zz[:, a]
        bx, by, bz = x[:, b], y[:, b], zz[:, b]
        nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
        side_a, side_b = nx * ay - ny * ax, bx * ny - by * nx
        level = torch.atan2(torch.hypot(nx, ny), nz.abs())
        if upper:
            inside = (side_a >= 0) & (side_b >= 0)
            best = torch.where(inside, torch.maximum(best, level), best)
        else:
            inside = (side_a <= 0) & (side_b <= 0)
            best = torch.where(inside, torch.minimum(best, -level), best)
    return best
