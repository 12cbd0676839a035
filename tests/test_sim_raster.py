"""The raster sweep caster against Open3D and the torch BVH, and the batched sweeps built on it (CPU torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from perception_ws.calib.sensors import get_sensor
from perception_ws.errors import PerceptionError
from perception_ws.sim.realism.dropout_map import DropoutMap
from perception_ws.sim.sensor.gpu_sweeps import SweepRenderer
from perception_ws.sim.sensor.intensity import ReflectanceModel
from perception_ws.sim.sensor.lidar import Lidar, Mount
from perception_ws.sim.sensor.noise import NoDropout, PhysicalDropout, RangeNoise
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.sensor.raycast_raster import RasterCaster
from perception_ws.sim.sensor.returns import Returns
from perception_ws.sim.world.generator import SceneConfig, generate_scene
from perception_ws.sim.world.scene import EgoPose, Scene, TriangleSoup
from perception_ws.sweep_layout import RayPattern


@pytest.fixture(scope="module")
def street() -> Scene:
    return generate_scene(2, SceneConfig(half_length=40.0, y_extent=30.0, ego_poses=3))


def _world_rays(lidar: Lidar, pose: EgoPose) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rot, trans = lidar.pose_in_world(pose)
    p = lidar.pattern
    dirs = p.directions.reshape(-1, 3) @ rot.T.astype(np.float32)
    origins = np.repeat((p.origins.astype(np.float64) @ rot.T + trans).astype(np.float32), p.columns, axis=0)
    return origins, dirs, rot, trans


def _agreement(soup: TriangleSoup, lidar: Lidar, pose: EgoPose, backend: str = "open3d") -> dict[str, float]:
    """Raster hits against ``backend``'s over one sweep: shares of pixels that agree."""
    origins, dirs, rot, trans = _world_rays(lidar, pose)
    max_range = float(lidar.max_range or 0)
    ref = make_raycaster(soup, backend, device="cpu").cast(origins, dirs, max_range)
    hits = RasterCaster(soup, "cpu").first_hits(lidar.pattern, rot[None], trans[None], max_range)
    t, tri = hits.t[0].numpy(), hits.triangle[0].numpy()
    both = (tri >= 0) & (ref.triangle >= 0)
    return {
        "hit": float(((tri >= 0) == (ref.triangle >= 0)).mean()),
        "hits": float((tri >= 0).mean()),
        "label": float((_labels(soup, tri) == _labels(soup, ref.triangle)).mean()),
        "triangle": float((tri == ref.triangle).mean()),
        "range": float((np.abs(t[both] - ref.t[both]) <= 0.01).mean()),
    }


def _labels(soup: TriangleSoup, tri: np.ndarray) -> np.ndarray:
    return np.where(tri >= 0, soup.semantic[tri], 255)


def _assert_parity(agree: dict[str, float]) -> None:
    assert agree["hits"] > 0.3  # a real sweep, not an empty one
    for key in ("hit", "label", "range"):
        assert agree[key] >= 0.999, agree
    assert agree["triangle"] >= 0.998, agree  # ties between coplanar triangles may pick either


def test_full_hdl64e_sweep_matches_open3d() -> None:
    """The benchmark's scene and sensor: 64 x 2048 rays, from the default pose."""
    scene = generate_scene(0)
    _assert_parity(_agreement(scene.soup, Lidar("hdl64e", columns=2048), scene.ego_poses[0]))


@pytest.mark.parametrize(
    ("sensor", "columns", "mount", "pose_index"),
    [
        ("hdl64e", 512, Mount(), 1),
        ("hdl64e", 512, Mount(pitch_deg=4.0, roll_deg=-6.0), 2),
        ("hdl64e", 300, Mount(height=2.5, pitch_deg=-25.0, roll_deg=40.0), 0),
        ("vlp16", 900, Mount(pitch_deg=-3.0), 1),
    ],
)
def test_raster_matches_open3d(street: Scene, sensor: str, columns: int, mount: Mount, pose_index: int) -> None:
    lidar = Lidar(sensor, columns=columns, mount=mount)
    _assert_parity(_agreement(street.soup, lidar, street.ego_poses[pose_index]))


def test_raster_matches_torch_bvh(street: Scene) -> None:
    lidar = Lidar("hdl64e", columns=256, mount=Mount(pitch_deg=2.0))
    _assert_parity(_agreement(street.soup, lidar, street.ego_poses[1], backend="torch"))


def _soup(vertices: Sequence[Sequence[float]], triangles: Sequence[Sequence[int]]) -> TriangleSoup:
    v = np.asarray(vertices, dtype=np.float32)
    tri = np.asarray(triangles, dtype=np.int32)
    n = len(tri)
    normal = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    return TriangleSoup(
        vertices=v,
        triangles=tri,
        normals=(normal / np.linalg.norm(normal, axis=1, keepdims=True)).astype(np.float32),
        semantic=np.arange(n, dtype=np.uint8),
        kitti3=np.zeros(n, np.uint8),
        instance=np.zeros(n, np.uint32),
        material=np.zeros(n, np.uint8),
        albedo=np.full(n, 0.5, np.float32),
        glass=np.zeros(n, bool),
        retro=np.zeros(n, bool),
    )


def _every_pixel_equal(soup: TriangleSoup, lidar: Lidar, pose: EgoPose) -> np.ndarray:
    origins, dirs, rot, trans = _world_rays(lidar, pose)
    ref = make_raycaster(soup, "open3d").cast(origins, dirs, 120.0)
    hits = RasterCaster(soup, "cpu").first_hits(lidar.pattern, rot[None], trans[None], 120.0)
    np.testing.assert_array_equal(hits.triangle[0].numpy(), ref.triangle)
    np.testing.assert_allclose(hits.t[0].numpy(), ref.t, atol=1e-3)
    return hits.triangle[0].numpy().reshape(lidar.pattern.rows, lidar.pattern.columns)


def test_wall_behind_the_sensor_wraps_around_the_columns() -> None:
    """A wall across +-180 deg azimuth: its pixels are the first and the last columns of the image."""
    wall = _soup([[-5, -3, -2], [-5, 3, -2], [-5, 3, 3], [-5, -3, 3]], [[0, 1, 2], [0, 2, 3]])
    lidar = Lidar("hdl64e", columns=720)
    tri = _every_pixel_equal(wall, lidar, EgoPose(yaw=0.3))
    hit_cols = np.flatnonzero((tri >= 0).any(axis=0))
    assert 0 in hit_cols
    assert 719 in hit_cols
    assert 360 not in hit_cols


def test_ground_under_the_car_and_a_long_edge_beside_it() -> None:
    """Ground the z axis passes through (all columns), and a strip whose edge dips lowest beside the sensor."""
    ground = [[-30, -30, 0], [30, -30, 0], [30, 30, 0], [-30, 30, 0]]
    strip = [[-60, 0.4, 1.0], [60, 0.4, 1.0], [60, 0.6, 1.0]]  # 0.73 m under the sensor, 0.4 m beside it
    soup = _soup([*ground, *strip], [[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    lidar = Lidar("hdl64e", columns=512)
    tri = _every_pixel_equal(soup, lidar, EgoPose(x=1.0, y=-2.0))
    assert (tri[-1] >= 0).all()  # the bottom row sees the ground all the way round
    assert (tri == 2).sum() > 10  # the strip is hit, mostly between its ends' directions


def test_batched_equals_one_by_one_and_opaque_hits(street: Scene) -> None:
    lidar = Lidar("hdl64e", columns=256, mount=Mount(pitch_deg=-2.0, roll_deg=3.0))
    poses = [lidar.pose_in_world(p) for p in street.ego_poses]
    rot = np.stack([r for r, _ in poses])
    trans = np.stack([t for _, t in poses])
    caster = RasterCaster(street.soup, "cpu", pair_chunk=50_000, triangle_chunk=100_000)  # several chunks
    batch = caster.first_hits(lidar.pattern, rot, trans, 80.0, opaque=True)
    assert batch.t_opaque is not None
    assert batch.triangle_opaque is not None
    for i in range(len(poses)):
        one = RasterCaster(street.soup, "cpu").first_hits(lidar.pattern, rot[i : i + 1], trans[i : i + 1], 80.0)
        assert torch.equal(one.triangle[0], batch.triangle[i])
        assert torch.equal(one.t[0], batch.t[i])
    glass = torch.from_numpy(street.soup.glass)
    first, behind = batch.triangle, batch.triangle_opaque
    assert not glass[behind[behind >= 0]].any()
    opaque_first = (first >= 0) & ~glass[first.clamp(min=0)]
    assert torch.equal(behind[opaque_first], first[opaque_first])
    on_glass = (first >= 0) & glass[first.clamp(min=0)]
    assert on_glass.any()
    assert (batch.t_opaque[on_glass] >= batch.t[on_glass]).all()
    assert (batch.t[batch.triangle >= 0] <= 80.0).all()


def test_sweep_batch_matches_lidar_scan(street: Scene) -> None:
    """Without random models the batched sweep is Lidar.scan's sweep: same pixels, labels, points, intensity."""
    lidar = Lidar(
        "hdl64e", columns=512, noise=RangeNoise(0.0), intensity=ReflectanceModel(noise=0.0), dropout=(NoDropout(),)
    )
    batch = SweepRenderer(street, lidar, "cpu").render(street.ego_poses[:2])
    soup = street.soup
    for i in range(2):
        scan = lidar.scan(street, make_raycaster(soup, "open3d"), street.ego_poses[i])
        assert scan.pixels is not None
        row, col = scan.pixels[:, 0], scan.pixels[:, 1]
        mask = batch.mask[i].numpy()
        assert mask.sum() == len(scan)
        assert mask[row, col].all()
        tri = batch.triangle[i].numpy()
        assert (batch.label[i].numpy()[mask] == soup.kitti3[tri[mask]]).all()
        assert (batch.semantic[i].numpy()[mask] == soup.semantic[tri[mask]]).all()
        assert (batch.instance[i].numpy()[mask] == soup.instance[tri[mask]]).all()
        assert (batch.semantic[i].numpy()[row, col] == scan.points["semantic"]).mean() >= 0.999
        assert (batch.instance[i].numpy()[row, col] == scan.points["instance"]).mean() >= 0.999
        xyz = np.stack([scan.points[k] for k in "xyz"], axis=1)
        assert np.quantile(np.abs(batch.xyz[i].numpy()[row, col] - xyz).max(axis=1), 0.999) < 1e-3
        same = np.abs(batch.intensity[i].numpy()[row, col] - scan.points["intensity"]) < 1e-4
        assert same.mean() >= 0.999  # coplanar sign faces (retro front, plain back) may tie
        assert (batch.range[i].numpy()[~mask] == 0).all()
        assert (batch.label[i].numpy()[~mask] == 0).all()


def test_sweep_models_are_seeded_and_like_the_cpu_scan(street: Scene) -> None:
    lidar = Lidar("hdl64e", columns=512, dropout=(PhysicalDropout(),))
    renderer = SweepRenderer(street, lidar, "cpu")
    a, b = renderer.render(street.ego_poses[:1], seed=5), renderer.render(street.ego_poses[:1], seed=5)
    assert torch.equal(a.range, b.range)
    assert torch.equal(a.mask, b.mask)
    assert torch.equal(a.intensity, b.intensity)
    c = renderer.render(street.ego_poses[:1], seed=6)
    assert not torch.equal(a.range, c.range)
    scan = lidar.scan(street, make_raycaster(street.soup, "open3d"), street.ego_poses[0], seed=5)
    # the same models draw other numbers: the returns kept and their mean intensity agree closely, not exactly
    assert abs(int(a.mask.sum()) - len(scan)) < 0.02 * len(scan)
    assert abs(float(a.intensity[a.mask].mean()) - float(scan.points["intensity"].mean())) < 0.01
    # points lie on their rays: x y z minus the beam origin is as long as the (noisy) range
    origin = torch.zeros(lidar.pattern.rows, 1, 3)
    origin[:, 0, 2] = torch.from_numpy(lidar.pattern.origins[:, 2])
    length = torch.linalg.vector_norm(a.xyz[0] - origin, dim=-1)
    assert torch.allclose(length[a.mask[0]], a.range[0][a.mask[0]], atol=1e-4)


def test_model_formulas_run_on_tensors_and_arrays(street: Scene) -> None:
    """One formula, two array kinds: a model's numbers on torch tensors equal those on numpy arrays."""
    rng = np.random.default_rng(0)
    n = 1000
    arrays = Returns(
        row=rng.integers(0, 64, n),
        col=rng.integers(0, 2048, n),
        height=64,
        width=2048,
        range=rng.uniform(1, 80, n).astype(np.float32),
        cos_incidence=rng.uniform(0, 1, n).astype(np.float32),
        albedo=rng.uniform(0, 1, n).astype(np.float32),
        retro=rng.random(n) < 0.1,
        glass=rng.random(n) < 0.1,
    )
    fields: dict[str, Any] = {
        k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in vars(arrays).items()
    }
    tensors = Returns(**fields)
    measured = DropoutMap.load().measured_dropout(get_sensor("hdl64e").elevations_deg)
    for model in (PhysicalDropout(), measured, NoDropout()):
        want = model.keep_probability(arrays)
        got = model.keep_probability(tensors)
        assert isinstance(got, torch.Tensor)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)  # exp differs by an ulp
    reflect = ReflectanceModel(noise=0.0)
    got = reflect.render(tensors, np.random.default_rng(1))
    assert isinstance(got, torch.Tensor)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), reflect.render(arrays, np.random.default_rng(1)), rtol=1e-6)


def test_clear_errors(street: Scene) -> None:
    empty = _soup([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])
    empty.triangles = empty.triangles[:0]
    with pytest.raises(PerceptionError, match="empty"):
        RasterCaster(empty, "cpu")
    for device in ("nonsense", "meta"):
        with pytest.raises(PerceptionError, match="device"):
            RasterCaster(street.soup, device)
    caster = RasterCaster(street.soup, "cpu")
    pattern = RayPattern(Lidar("vlp16").model, 64)
    with pytest.raises(PerceptionError, match=r"\(B, 3, 3\)"):
        caster.first_hits(pattern, np.eye(3), np.zeros(3), 50.0)
    with pytest.raises(PerceptionError, match=r"\(B, 3\)"):
        caster.first_hits(pattern, np.eye(3)[None], np.zeros((2, 3)), 50.0)
    with pytest.raises(PerceptionError, match="max_range"):
        caster.first_hits(pattern, np.eye(3)[None], np.zeros((1, 3)), 0.0)
    with pytest.raises(PerceptionError, match="no poses"):
        SweepRenderer(street, Lidar("vlp16", columns=64), "cpu").render([])


def test_the_compiled_pair_test_gives_the_same_hits(street: Scene) -> None:
    """What a GPU runs (the pair test under torch.compile, with chunks of varying size: dynamic shapes)
    equals the eager pair test bit for bit; compiled here on the CPU, as CI has no GPU."""
    lidar = Lidar("vlp16", columns=360)
    rot, trans = lidar.pose_in_world(street.ego_poses[1])
    eager = RasterCaster(street.soup, "cpu", pair_chunk=30_000, compile_pairs=False)
    compiled = RasterCaster(street.soup, "cpu", pair_chunk=30_000, compile_pairs=True)
    a = eager.first_hits(lidar.pattern, rot[None], trans[None], 100.0)
    b = compiled.first_hits(lidar.pattern, rot[None], trans[None], 100.0)
    assert a.pairs == b.pairs > 30_000  # several chunks of different sizes
    assert (a.triangle >= 0).float().mean() > 0.3
    assert torch.equal(a.triangle, b.triangle)
    torch.testing.assert_close(a.t, b.t, rtol=1e-6, atol=1e-5)
