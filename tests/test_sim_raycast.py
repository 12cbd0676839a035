"""Ray-casting backends: the torch BVH against brute force, and parity of both backends on a street scene."""

from __future__ import annotations

import numpy as np
import pytest

from perception_ws.errors import PerceptionError
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.noise import NoDropout, RangeNoise
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.sensor.raycast_torch import TorchRaycaster
from perception_ws.sim.world.generator import SceneConfig, generate_scene


def _brute_force(
    vertices: np.ndarray, triangles: np.ndarray, o: np.ndarray, d: np.ndarray, max_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of every ray against every triangle (float64 Möller–Trumbore), for reference."""
    v = vertices[triangles].astype(np.float64)
    v0, e1, e2 = v[:, 0], v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    best_t, best_tri = np.full(len(o), np.inf), np.full(len(o), -1)
    for i, (oo, dd) in enumerate(zip(o.astype(np.float64), d.astype(np.float64), strict=True)):
        p = np.cross(dd, e2)
        det = (e1 * p).sum(-1)
        inv = 1.0 / np.where(np.abs(det) < 1e-12, 1.0, det)
        tv = oo - v0
        u = (tv * p).sum(-1) * inv
        q = np.cross(tv, e1)
        w = (q @ dd) * inv
        t = (e2 * q).sum(-1) * inv
        ok = (np.abs(det) > 1e-12) & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 1e-4) & (t <= max_range)
        if ok.any():
            best_tri[i] = int(np.argmin(np.where(ok, t, np.inf)))
            best_t[i] = t[best_tri[i]]
    return best_t, best_tri


def test_torch_bvh_matches_brute_force() -> None:
    scene = generate_scene(11, SceneConfig(half_length=30.0, y_extent=20.0, ego_poses=1))
    soup = scene.soup
    rng = np.random.default_rng(0)
    n = 160
    d = rng.normal(size=(n, 3)).astype(np.float32)
    d[: n // 4, 2] = 0.0  # horizontal rays
    d[n // 4 : n // 2, :2] = 0.0  # straight down: zero x and y components
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.tile(np.array([0.0, 0.0, 1.8], np.float32), (n, 1)) + rng.uniform(-3, 3, (n, 3)).astype(np.float32)
    o[:, 2] = np.abs(o[:, 2]) + 0.5
    t_ref, tri_ref = _brute_force(soup.vertices, soup.triangles, o, d, 60.0)
    hits = TorchRaycaster(soup, device="cpu", leaf_size=4).cast(o, d, 60.0)
    np.testing.assert_array_equal(np.isfinite(hits.t), np.isfinite(t_ref))
    hit = np.isfinite(t_ref)
    assert hit.mean() > 0.5
    np.testing.assert_allclose(hits.t[hit], t_ref[hit], atol=2e-3)
    assert (hits.triangle == tri_ref).mean() > 0.98  # ties on shared edges may pick either triangle
    assert np.all(hits.triangle[~hit] == -1)


def test_backends_agree_on_a_street_scan() -> None:
    """Parity (docs/algorithms.md §6): both backends, same scene and rays: >= 99 % same labels, ranges within 1 cm."""
    scene = generate_scene(2, SceneConfig(half_length=40.0, y_extent=30.0, ego_poses=1))
    lidar = Lidar(columns=512, noise=RangeNoise(0.0), intensity=None, dropout=(NoDropout(),))
    a = lidar.scan(scene, make_raycaster(scene.soup, "open3d"))
    b = lidar.scan(scene, make_raycaster(scene.soup, "torch", device="cpu"))
    assert a.pixels is not None
    assert b.pixels is not None
    flat_a, flat_b = (p[:, 0] * 512 + p[:, 1] for p in (a.pixels, b.pixels))
    _, ia, ib = np.intersect1d(flat_a, flat_b, return_indices=True)
    assert len(ia) >= 0.99 * max(len(a), len(b))
    assert (a.points["semantic"][ia] == b.points["semantic"][ib]).mean() >= 0.99
    assert (a.points["label"][ia] == b.points["label"][ib]).mean() >= 0.99
    assert (a.points["instance"][ia] == b.points["instance"][ib]).mean() >= 0.99
    ra, rb = np.linalg.norm(a.xyz[ia], axis=1), np.linalg.norm(b.xyz[ib], axis=1)
    assert np.quantile(np.abs(ra - rb), 0.99) < 0.01


def test_bad_backend_and_rays_raise_clear_errors() -> None:
    soup = generate_scene(0, SceneConfig(half_length=30.0, y_extent=20.0, ego_poses=1)).soup
    with pytest.raises(PerceptionError, match="unknown ray-casting backend"):
        make_raycaster(soup, "optix")
    with pytest.raises(PerceptionError, match=r"\(N, 3\)"):
        make_raycaster(soup, "open3d").cast(np.zeros((4, 2)), np.zeros((4, 2)), 10.0)
