"""The sweep kernels against plain numpy on a generated street: same hits, same returns, the same points bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from perception_ws.sim.dataset import make_lidar
from perception_ws.sim.sensor.intensity import ReflectanceModel
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.noise import NoDropout, PhysicalDropout, RangeNoise
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.sensor.raycast_open3d import packed_rays
from perception_ws.sim.sensor.raycaster import Raycaster
from perception_ws.sim.sensor.returns import Returns
from perception_ws.sim.sensor.sweep_kernels import (
    count_returns,
    first_hits,
    gather_returns,
    glass_hits,
    rays_beyond,
    turn_rays,
)
from perception_ws.sim.sensor.sweep_points import SweepHits, SweepPoints, points_fast, points_reference
from perception_ws.sim.world.generator import SceneConfig, generate_scene
from perception_ws.sim.world.scene import Scene

SMALL = SceneConfig(half_length=40.0, y_extent=30.0, ego_poses=1)


@pytest.fixture(scope="module")
def street() -> tuple[Scene, Raycaster]:
    scene = generate_scene(5, SMALL)
    return scene, make_raycaster(scene.soup, "open3d")


def _hits(lidar: Lidar, street: tuple[Scene, Raycaster], seed: int) -> SweepHits:
    scene, caster = street
    rot, trans = lidar.pose_in_world(scene.ego_poses[0])
    return lidar.cast(scene.soup, caster, rot, trans, np.random.default_rng(seed))


def _assert_same(fast: SweepPoints, ref: SweepPoints) -> None:
    assert fast.points.dtype == ref.points.dtype
    for name in ("points", "labels", "semantic", "instances", "pixels"):
        a, b = getattr(fast, name), getattr(ref, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize(
    "lidar",
    [
        # what `perception sim generate` uses: physical dropout, the car's shadow and per-row dropout, intensity
        make_lidar("hdl64e", 2048, "physical", "model"),
        make_lidar("hdl64e", 1024, "measured", "off"),
        Lidar(columns=512, noise=RangeNoise(0.0), intensity=ReflectanceModel(noise=0.0), dropout=(NoDropout(),)),
    ],
    ids=["generate-default", "measured-no-intensity", "clean"],
)
def test_kernel_points_equal_the_numpy_reference(lidar: Lidar, street: tuple[Scene, Raycaster]) -> None:
    hits = _hits(lidar, street, seed=7)
    fast = points_fast(hits, lidar.dropout_plan(), lidar.noise, lidar.intensity, np.random.default_rng(11))
    ref = points_reference(hits, lidar.dropout, lidar.noise, lidar.intensity, np.random.default_rng(11))
    assert len(fast.points) > 0.3 * lidar.pattern.rows * lidar.pattern.columns
    _assert_same(fast, ref)
    if lidar.intensity is None:
        assert not fast.points["intensity"].any()
    # another seed draws other noise and drops other returns
    other = points_fast(hits, lidar.dropout_plan(), lidar.noise, lidar.intensity, np.random.default_rng(12))
    if isinstance(lidar.dropout[0], PhysicalDropout):
        assert not np.array_equal(other.pixels, fast.pixels)


def test_rays_hits_and_glass_equal_numpy(street: tuple[Scene, Raycaster]) -> None:
    scene, caster = street
    lidar = make_lidar("hdl64e", 2048, "physical", "model")
    p = lidar.pattern
    rot, trans = lidar.pose_in_world(scene.ego_poses[0])
    row_origins = (p.origins.astype(np.float64) @ rot.T + trans).astype(np.float32)
    rays = turn_rays(p.directions.reshape(-1, 3), row_origins, rot, p.columns)
    np.testing.assert_array_equal(rays[:, :3], np.repeat(row_origins, p.columns, axis=0))
    turned = (p.directions.reshape(-1, 3).astype(np.float64) @ rot.T).astype(np.float32)
    np.testing.assert_allclose(rays[:, 3:], turned, rtol=0, atol=1e-7)

    # the packed rays go to Open3D uncopied and hit what separate arrays hit
    assert packed_rays(rays[:, :3], rays[:, 3:]) is rays
    assert packed_rays(rays[:, 3:], rays[:, :3]) is None
    assert packed_rays(rays[:, :3].copy(), rays[:, 3:]) is None
    hits = caster.cast(rays[:, :3], rays[:, 3:], 120.0)
    again = caster.cast(np.ascontiguousarray(rays[:, :3]), np.ascontiguousarray(rays[:, 3:]), 120.0)
    np.testing.assert_array_equal(hits.triangle, again.triangle)
    np.testing.assert_array_equal(hits.t, again.t)

    # first_hits: the misses and the hits beyond range as the numpy rule marks them
    t_raw = np.array([1.0, np.inf, np.nan, 0.0, -1.0, 120.0, 120.5], np.float32)
    ids = np.array([5, 4294967295, 3, 2, 1, 0, 7], np.uint32)
    t, triangle = first_hits(t_raw.copy(), ids, 120.0)
    miss = ~(t_raw <= np.float32(120.0)) | (t_raw <= 0)
    np.testing.assert_array_equal(triangle, np.where(miss, -1, ids.astype(np.int64)))
    np.testing.assert_array_equal(t, np.where(miss, np.float32(np.inf), t_raw))

    soup = scene.soup
    on_glass = glass_hits(hits.triangle, soup.glass)
    np.testing.assert_array_equal(on_glass, np.flatnonzero((hits.triangle >= 0) & soup.glass[hits.triangle]))
    assert len(on_glass) > 0, "the street has windows"
    # the glass re-casts start just behind the pane, along the same direction
    again = rays_beyond(rays, on_glass, hits.t, 1e-3)
    behind = rays[on_glass, :3] + rays[on_glass, 3:] * (hits.t[on_glass, None] + np.float32(1e-3))
    np.testing.assert_array_equal(again[:, :3], behind)
    np.testing.assert_array_equal(again[:, 3:], rays[on_glass, 3:])
    near = hits.t <= np.float32(40.0)
    assert count_returns(hits.t, hits.triangle, 40.0) == np.count_nonzero((hits.triangle >= 0) & near)


def _numpy_returns(hits: SweepHits, which: np.ndarray) -> Returns:
    """The returns of the rays ``which`` with numpy gathers, one table at a time."""
    soup, tris = hits.soup, hits.triangle[which]
    normal, direction = np.take(soup.normals, tris, axis=0), np.take(hits.rays, which, axis=0)[:, 3:]
    cos = np.abs(normal[:, 0] * direction[:, 0] + normal[:, 1] * direction[:, 1] + normal[:, 2] * direction[:, 2])
    row, col = np.divmod(which, hits.pattern.columns)
    return Returns(
        row, col, hits.pattern.rows, hits.pattern.columns, hits.t[which], cos, soup.albedo[tris], soup.retro[tris],
        soup.glass[tris],
    )  # fmt: skip


def _assert_same_returns(a: Returns, b: Returns) -> None:
    assert (a.height, a.width) == (b.height, b.width)
    for name in ("row", "col", "range", "cos_incidence", "albedo", "retro", "glass"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_returns_kernels_equal_numpy_gathers(street: tuple[Scene, Raycaster]) -> None:
    lidar = make_lidar("hdl64e", 2048, "physical", "model")
    hits = _hits(lidar, street, seed=2)
    soup, plan = hits.soup, lidar.dropout_plan()
    hit = np.flatnonzero((hits.triangle >= 0) & (hits.t <= np.float32(hits.max_range)))
    assert count_returns(hits.t, hits.triangle, hits.max_range) == len(hit)
    expected = _numpy_returns(hits, hit)
    _assert_same_returns(hits.returns(hit), expected)
    *arrays, pixel_keep = gather_returns(
        hits.t, hits.triangle, hits.rays, hits.pattern.columns, hits.max_range, len(hit),
        soup.normals, soup.albedo, soup.retro, soup.glass, plan.pixel_keep,
    )  # fmt: skip
    _assert_same_returns(Returns(arrays[0], arrays[1], hits.pattern.rows, hits.pattern.columns, *arrays[2:]), expected)
    np.testing.assert_array_equal(pixel_keep, plan.pixel_keep[hit])
    # the pixel models (the recording car's shadow, per-row dropout) are in the table; the physical model is not
    assert pixel_keep.min() < 0.6
    assert len(plan.others) == 1


def test_returns_subset_by_mask_equals_by_index(street: tuple[Scene, Raycaster]) -> None:
    lidar = make_lidar("hdl64e", 1024, "physical", "model")
    hits = _hits(lidar, street, seed=1)
    returns = hits.returns(np.flatnonzero(hits.triangle >= 0))
    mask = np.random.default_rng(0).random(len(returns)) < 0.7
    _assert_same_returns(returns.subset(mask), returns.subset(np.flatnonzero(mask)))
    with pytest.raises(IndexError, match="mask"):
        returns.subset(mask[:-1])
