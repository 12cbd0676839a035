"""Range noise, the dropout models and the reflectance model, on hand-made returns and on a street scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.errors import PerceptionError
from perception_ws.labels import SEMANTIC_KITTI, semantickitti_learning_ids
from perception_ws.sim.sensor.intensity import ReflectanceModel
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.noise import NoDropout, PhysicalDropout, PixelDropout, RangeNoise
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.sensor.returns import Returns
from perception_ws.sim.world.generator import SceneConfig, generate_scene


def _returns(n: int, range_m: float = 10.0, cos: float = 1.0, albedo: float = 0.3, retro: bool = False) -> Returns:
    rows = np.arange(n) % 64
    return Returns(
        row=rows,
        col=(np.arange(n) // 64) % 2048,
        height=64,
        width=2048,
        range=np.full(n, range_m, np.float32),
        cos_incidence=np.full(n, cos, np.float32),
        albedo=np.full(n, albedo, np.float32),
        retro=np.full(n, retro),
        glass=np.zeros(n, bool),
    )


def test_range_noise_has_the_configured_spread() -> None:
    rng = np.random.default_rng(0)
    r = np.full(100_000, 20.0, np.float32)
    noisy = RangeNoise(0.02).apply(r, rng)
    assert noisy.dtype == np.float32
    assert np.std(noisy - r) == pytest.approx(0.02, rel=0.03)
    assert abs(np.mean(noisy - r)) < 1e-3
    with pytest.raises(PerceptionError, match="sigma"):
        RangeNoise(-1.0)


def test_pixel_dropout_follows_the_map_and_checks_its_shape() -> None:
    rng = np.random.default_rng(1)
    prob = np.zeros((64, 512))
    prob[10] = 1.0  # ring 10 always empty
    prob[20, :256] = 0.5  # the left half of the front view of ring 20 half empty
    returns = _returns(64 * 2048 * 2)
    keep = PixelDropout(prob, fov_deg=90.0).keeps(returns, rng)
    assert not keep[returns.row == 10].any()
    # columns 768..1024 are the left half of the front 90 degrees; elsewhere the row mean (0.25) applies
    left = (returns.row == 20) & (returns.col >= 768) & (returns.col < 1024)
    right = (returns.row == 20) & (returns.col >= 1024) & (returns.col < 1280)
    behind = (returns.row == 20) & (returns.col < 768)
    assert keep[left].mean() == pytest.approx(0.5, abs=0.05)
    assert keep[right].all()
    assert keep[behind].mean() == pytest.approx(0.75, abs=0.05)
    assert keep[returns.row == 30].all()
    with pytest.raises(PerceptionError, match="64 beams"):
        PixelDropout(np.zeros((32, 512))).keeps(returns, rng)
    with pytest.raises(PerceptionError, match=r"0\.\.1"):
        PixelDropout(np.full((64, 512), 1.5))


def test_physical_dropout_detection_probability() -> None:
    rng = np.random.default_rng(2)
    model = PhysicalDropout()
    n = 50_000
    bright_near = model.keeps(_returns(n, 10.0, 0.8, 0.4), rng).mean()
    dark_far = model.keeps(_returns(n, 60.0, 0.8, 0.05), rng).mean()
    grazing = model.keeps(_returns(n, 30.0, 0.03, 0.25), rng).mean()
    assert bright_near > 0.99
    signal = 0.05 * 0.8 * (10 / 60) ** 2
    assert dark_far == pytest.approx(1 - np.exp(-signal / model.signal_scale), abs=0.01)
    assert grazing < 0.8
    assert dark_far < bright_near
    assert model.keeps(_returns(n, 60.0, 0.8, 0.05, retro=True), rng).mean() > dark_far
    assert not model.transmits(_returns(100), rng).any()  # only glass lets beams through
    assert NoDropout().keeps(_returns(10), rng).all()


def test_reflectance_model() -> None:
    rng = np.random.default_rng(3)
    model = ReflectanceModel(noise=0.0)
    near, far = model.render(_returns(10, 5.0), rng), model.render(_returns(10, 60.0), rng)
    assert np.all(near > far)
    assert np.all(far > 0)
    head_on, grazing = model.render(_returns(10, cos=1.0), rng), model.render(_returns(10, cos=0.05), rng)
    assert np.all(head_on > grazing)
    sign = model.render(_returns(10, 20.0, cos=0.1, albedo=0.8, retro=True), rng)
    assert np.all(sign > 0.6)
    assert np.all(model.render(_returns(10, 1.0, albedo=5.0), rng) <= 1.0)
    with pytest.raises(PerceptionError, match="falloff_range"):
        ReflectanceModel(falloff_range=0.0)


@pytest.mark.real_data
def test_simulated_intensities_resemble_a_real_scan(real_data: Path) -> None:
    """Per-class mean intensity of a simulated street vs the real SemanticKITTI scan: within 0.1 for
    the classes both have plenty of, and ordered alike (road darker than terrain and vegetation)."""
    raw = np.fromfile(real_data / "semantickitti" / "000000.bin", dtype=np.float32).reshape(-1, 4)
    sem = semantickitti_learning_ids(np.fromfile(real_data / "semantickitti" / "000000.label", dtype=np.uint32))
    scene = generate_scene(6, SceneConfig(half_length=40.0, y_extent=30.0, ego_poses=1))
    scan = Lidar().scan(scene, make_raycaster(scene.soup, "open3d"), seed=0)
    means = {}
    for name in ("road", "sidewalk", "building", "vegetation", "terrain", "pole"):
        c = SEMANTIC_KITTI.id_of(name)
        sim, real = scan.points["intensity"][scan.semantic == c], raw[sem == c, 3]
        assert len(sim) > 50, name
        assert len(real) > 50, name
        assert sim.mean() == pytest.approx(real.mean(), abs=0.1), name
        means[name] = sim.mean()
    assert means["road"] < means["terrain"]
    assert means["road"] < means["vegetation"]
