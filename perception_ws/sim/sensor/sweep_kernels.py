"""Hot loops of a simulated sweep (numba): turning the rays, reading the hits, writing the points.

These are the memory-bound steps, which numpy does as many passes that each gather the same arrays
again: the rays of a sweep in Open3D's (N, 6) layout, the caster's answer as hits, the returns with
every lookup by triangle in one pass, a boolean compress, and the point records written field by
field in one pass. The arithmetic of the sensor models (exp, pow) stays in the models' numpy methods,
where it is SIMD. :func:`perception_ws.sim.sensor.sweep_points.points_reference` does the same in numpy;
tests (tests/test_sim_speed_kernels.py) check both give the same points on a generated street.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, error_model="numpy")
def standard_normals(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) float32 standard normal draws of ``rng``: float64 draws rounded, twice as fast as numpy's float32 ones."""
    out = np.empty(n, np.float32)
    for k in range(n):
        out[k] = rng.standard_normal()
    return out


@nb.njit(cache=True, error_model="numpy")
def turn_rays(directions: np.ndarray, row_origins: np.ndarray, rot: np.ndarray, columns: int) -> np.ndarray:
    """(N, 6) float32 rays in the world frame: origin (its beam's, ``row_origins[i // columns]``) and direction.

    ``directions`` (N, 3) float32 in the sensor frame, row-major pixels; ``rot`` sensor -> world. One
    array holds both halves, so the ray caster can take it as it is.
    """
    n = directions.shape[0]
    rays = np.empty((n, 6), np.float32)
    # the matrix in locals: the compiler cannot tell that writing the rays leaves it unchanged
    r00, r01, r02, r10, r11, r12 = rot[0, 0], rot[0, 1], rot[0, 2], rot[1, 0], rot[1, 1], rot[1, 2]
    r20, r21, r22 = rot[2, 0], rot[2, 1], rot[2, 2]
    for row in range(n // columns):  # rows and columns as loops: no division per ray
        ox, oy, oz = row_origins[row, 0], row_origins[row, 1], row_origins[row, 2]
        for i in range(row * columns, (row + 1) * columns):
            rays[i, 0] = ox
            rays[i, 1] = oy
            rays[i, 2] = oz
            dx, dy, dz = np.float64(directions[i, 0]), np.float64(directions[i, 1]), np.float64(directions[i, 2])
            rays[i, 3] = r00 * dx + r01 * dy + r02 * dz
            rays[i, 4] = r10 * dx + r11 * dy + r12 * dz
            rays[i, 5] = r20 * dx + r21 * dy + r22 * dz
    return rays


@nb.njit(cache=True, error_model="numpy")
def first_hits(t_hit: np.ndarray, ids: np.ndarray, max_range: float) -> tuple[np.ndarray, np.ndarray]:
    """A ray caster's raw answer as :class:`~perception_ws.sim.sensor.raycaster.Hits` arrays, in one pass.

    ``t_hit`` (float32, edited in place) and unsigned triangle ids: a hit counts when ``0 < t <= max_range``
    (inf and NaN do not); elsewhere t becomes inf and the triangle -1.
    """
    limit = np.float32(max_range)
    triangle = np.empty(t_hit.shape[0], np.int64)
    for i in range(t_hit.shape[0]):
        t = t_hit[i]
        if t <= limit and t > 0:
            triangle[i] = ids[i]
        else:
            t_hit[i] = np.inf
            triangle[i] = -1
    return t_hit, triangle


@nb.njit(cache=True, error_model="numpy")
def glass_hits(triangle: np.ndarray, glass: np.ndarray) -> np.ndarray:
    """Indices of the rays whose hit triangle is glass."""
    out = np.empty(triangle.shape[0], np.int64)
    m = 0
    for i in range(triangle.shape[0]):
        j = triangle[i]
        if j >= 0 and glass[j]:
            out[m] = i
            m += 1
    return out[:m].copy()


@nb.njit(cache=True, error_model="numpy")
def rays_beyond(rays: np.ndarray, which: np.ndarray, t: np.ndarray, offset: float) -> np.ndarray:
    """(M, 6) float32 rays ``which`` of ``rays`` restarted ``offset`` beyond their hit at ``t`` (same direction)."""
    out = np.empty((which.shape[0], 6), np.float32)
    step = np.float32(offset)
    for k in range(which.shape[0]):
        i = which[k]
        s = t[i] + step
        for a in range(3):
            out[k, a] = rays[i, a] + rays[i, 3 + a] * s
            out[k, 3 + a] = rays[i, 3 + a]
    return out


@nb.njit(cache=True, error_model="numpy")
def count_returns(t: np.ndarray, triangle: np.ndarray, max_range: float) -> int:
    """How many rays hit something within ``max_range`` (a return before dropout)."""
    limit = np.float32(max_range)
    n = 0
    for i in range(t.shape[0]):
        if triangle[i] >= 0 and t[i] <= limit:
            n += 1
    return n


@nb.njit(cache=True, error_model="numpy")
def returns_at(
    which: np.ndarray,
    t: np.ndarray,
    triangle: np.ndarray,
    rays: np.ndarray,
    columns: int,
    normals: np.ndarray,
    albedo: np.ndarray,
    retro: np.ndarray,
    glass: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The :class:`~perception_ws.sim.sensor.returns.Returns` arrays of the rays ``which`` (each must hit a triangle),
    as :func:`gather_returns` makes them: row, col, range, cos_incidence, albedo, retro, glass.
    """
    n = which.shape[0]
    row, col = np.empty(n, np.int64), np.empty(n, np.int64)
    ranges, cosines, albedos = np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.float32)
    retros, glasses = np.empty(n, np.bool_), np.empty(n, np.bool_)
    for k in range(n):
        i = which[k]
        j = triangle[i]
        row[k] = i // columns
        col[k] = i - row[k] * columns
        ranges[k] = t[i]
        cosines[k] = abs(normals[j, 0] * rays[i, 3] + normals[j, 1] * rays[i, 4] + normals[j, 2] * rays[i, 5])
        albedos[k] = albedo[j]
        retros[k] = retro[j]
        glasses[k] = glass[j]
    return row, col, ranges, cosines, albedos, retros, glasses


@nb.njit(cache=True, error_model="numpy")
def gather_returns(
    t: np.ndarray,
    triangle: np.ndarray,
    rays: np.ndarray,
    columns: int,
    max_range: float,
    count: int,
    normals: np.ndarray,
    albedo: np.ndarray,
    retro: np.ndarray,
    glass: np.ndarray,
    pixel_keep: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The :class:`~perception_ws.sim.sensor.returns.Returns` arrays of the ``count`` rays that hit within ``max_range``
    (ray order): row, col, range, cos_incidence, albedo, retro, glass; and each one's ``pixel_keep[ray]``.

    One pass with every lookup by triangle fused, where numpy gathers each table separately.
    """
    limit = np.float32(max_range)
    row, col = np.empty(count, np.int64), np.empty(count, np.int64)
    ranges, cosines, albedos = np.empty(count, np.float32), np.empty(count, np.float32), np.empty(count, np.float32)
    retros, glasses, keep = np.empty(count, np.bool_), np.empty(count, np.bool_), np.empty(count, np.float32)
    k = 0
    for r in range(t.shape[0] // columns):  # rows and columns as loops: no division per ray
        for c in range(columns):
            i = r * columns + c
            j = triangle[i]
            if j < 0 or not t[i] <= limit:
                continue
            row[k] = r
            col[k] = c
            ranges[k] = t[i]
            # |n . d| summed left to right in float32, as numpy's reference does
            cosines[k] = abs(normals[j, 0] * rays[i, 3] + normals[j, 1] * rays[i, 4] + normals[j, 2] * rays[i, 5])
            albedos[k] = albedo[j]
            retros[k] = retro[j]
            glasses[k] = glass[j]
            keep[k] = pixel_keep[i]
            k += 1
    return row, col, ranges, cosines, albedos, retros, glasses, keep


@nb.njit(cache=True, error_model="numpy")
def compress_returns(
    mask: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    ranges: np.ndarray,
    cosines: np.ndarray,
    albedo: np.ndarray,
    retro: np.ndarray,
    glass: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The :class:`~perception_ws.sim.sensor.returns.Returns` arrays where ``mask`` is set, all in one pass."""
    count = 0
    for i in range(mask.shape[0]):
        count += mask[i]
    out = (
        np.empty(count, row.dtype), np.empty(count, col.dtype), np.empty(count, ranges.dtype),
        np.empty(count, cosines.dtype), np.empty(count, albedo.dtype), np.empty(count, retro.dtype),
        np.empty(count, glass.dtype),
    )  # fmt: skip
    k = 0
    for i in range(mask.shape[0]):
        if mask[i]:
            out[0][k], out[1][k], out[2][k], out[3][k] = row[i], col[i], ranges[i], cosines[i]
            out[4][k], out[5][k], out[6][k] = albedo[i], retro[i], glass[i]
            k += 1
    return out


@nb.njit(cache=True, error_model="numpy")
def write_points(
    row: np.ndarray,
    col: np.ndarray,
    ranges: np.ndarray,
    intensity: np.ndarray,
    triangle: np.ndarray,
    columns: int,
    direction_columns: np.ndarray,
    origin_z: np.ndarray,
    ring_of_row: np.ndarray,
    soup_kitti3: np.ndarray,
    soup_semantic: np.ndarray,
    soup_instance: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    semantic: np.ndarray,
    instances: np.ndarray,
    pixels: np.ndarray,
) -> None:
    """Fill ``points`` (structured, sensor frame) and the label and pixel arrays of the returns at (row, col)."""
    for k in range(row.shape[0]):
        i = row[k] * columns + col[k]
        j = triangle[i]
        r = ranges[k]
        p = points[k]
        # beam origins lie on the z axis (x = y = 0): x and y are the direction times the range alone
        p.x = direction_columns[0, i] * r
        p.y = direction_columns[1, i] * r
        p.z = direction_columns[2, i] * r + origin_z[i]
        p.intensity = intensity[k]
        p.ring = ring_of_row[row[k]]
        labels[k] = soup_kitti3[j]
        semantic[k] = soup_semantic[j]
        instances[k] = soup_instance[j]
        p.label = labels[k]
        p.semantic = semantic[k]
        p.instance = instances[k]
        pixels[k, 0] = row[k]
        pixels[k, 1] = col[k]
