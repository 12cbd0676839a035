"""The two pieces every torch ray caster shares: the Möller–Trumbore test and the packed nearest-hit key.

A hit is kept per ray as one int64: the float32 distance's bits in the high half and an index
(triangle or sorted position) in the low half. Distances are positive, so their bits order like
the distances, and one ``scatter_reduce(amin)`` keeps the nearest hit of each ray (ties: the lower
index) no matter in which order the candidates arrive.
"""

from __future__ import annotations

import torch

T_MIN = 1e-4  # ignore hits closer than this (the ray's own origin surface)
_DET_MIN = 1e-12  # a ray (nearly) parallel to the triangle's plane does not hit it
NO_HIT = torch.iinfo(torch.int64).max  # the key of a ray that hit nothing

Scalar = torch.Tensor | float


def moller_trumbore(
    origin: tuple[Scalar, Scalar, Scalar],
    direction: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    v0: torch.Tensor,
    e1: torch.Tensor,
    e2: torch.Tensor,
    max_range: float,
) -> torch.Tensor:
    """Distance along each ray to its triangle, ``inf`` where it misses or lies outside (T_MIN, max_range].

    ``origin`` and ``direction`` are per-component tensors (or plain numbers) that broadcast against
    the triangles' first vertex ``v0`` and edges ``e1``, ``e2`` (``(..., 3)``).
    """
    ox, oy, oz = origin
    dx, dy, dz = direction
    ax, ay, az = e1[..., 0], e1[..., 1], e1[..., 2]
    bx, by, bz = e2[..., 0], e2[..., 1], e2[..., 2]
    # written out per component: cross and dot products over a 3-axis are slow as tensor reductions
    px, py, pz = dy * bz - dz * by, dz * bx - dx * bz, dx * by - dy * bx  # d x e2
    det = ax * px + ay * py + az * pz
    inv = 1.0 / torch.where(det.abs() < _DET_MIN, torch.ones_like(det), det)
    tx, ty, tz = ox - v0[..., 0], oy - v0[..., 1], oz - v0[..., 2]
    u = (tx * px + ty * py + tz * pz) * inv
    qx, qy, qz = ty * az - tz * ay, tz * ax - tx * az, tx * ay - ty * ax  # tvec x e1
    v = (dx * qx + dy * qy + dz * qz) * inv
    t = (bx * qx + by * qy + bz * qz) * inv
    ok = (det.abs() >= _DET_MIN) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > T_MIN) & (t <= max_range)
    return torch.where(ok, t, torch.full_like(t, float("inf")))


def pack_hits(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """int64 keys of hits at distance ``t`` (float32) on ``index`` (< 2**32); :data:`NO_HIT` where t is inf."""
    bits = t.contiguous().view(torch.int32).to(torch.int64)
    key = (bits << 32) | index
    return torch.where(torch.isfinite(t), key, torch.full_like(key, NO_HIT))


def hit_distance(key: torch.Tensor) -> torch.Tensor:
    """The float32 distance of packed keys; ``inf`` for :data:`NO_HIT`."""
    t = (key >> 32).to(torch.int32).view(torch.float32)
    return torch.where(key == NO_HIT, torch.full_like(t, float("inf")), t)


def hit_index(key: torch.Tensor) -> torch.Tensor:
    """The int64 index packed into keys; -1 for :data:`NO_HIT`."""
    return torch.where(key == NO_HIT, torch.full_like(key, -1), key & 0xFFFFFFFF)
