"""The simulated LiDAR: output format, rings, labels inside boxes, determinism, mounting, and realism checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.calib.sensors import get_sensor
from perception_ws.labels import KITTI3, SEMANTIC_KITTI, semantickitti_learning_ids
from perception_ws.scan import Scan
from perception_ws.sim.sensor.lidar import Lidar, Mount
from perception_ws.sim.sensor.noise import NoDropout, PhysicalDropout, RangeNoise
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.world.generator import SceneConfig, generate_scene
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import box
from perception_ws.sim.world.scene import EgoPose, Part, Scene
from perception_ws.sweep_layout import POINT_DTYPE

SMALL = SceneConfig(half_length=40.0, y_extent=30.0, ego_poses=1)
#: SemanticKITTI classes each KITTI object type may carry
ALLOWED = {
    "Car": {"car"},
    "Van": {"car"},
    "Truck": {"truck"},
    "Pedestrian": {"person"},
    "Cyclist": {"bicyclist", "bicycle"},
    "Misc": {"bicycle"},  # a parked bicycle: no rider, no KITTI-3 class
}


def pixels_of(scan: Scan) -> np.ndarray:
    assert scan.pixels is not None, "a simulated scan carries the pixel of every point"
    return scan.pixels


@pytest.fixture(scope="module")
def street() -> tuple[Scene, Scan]:
    scene = generate_scene(4, SMALL)
    return scene, Lidar().scan(scene, make_raycaster(scene.soup, "open3d"), seed=3)


def test_scan_format(street: tuple[Scene, Scan]) -> None:
    _, scan = street
    assert scan.points.dtype == POINT_DTYPE
    assert scan.sensor == "hdl64e"
    assert len(scan) > 0.5 * 64 * 2048
    np.testing.assert_array_equal(scan.labels, scan.points["label"])
    np.testing.assert_array_equal(scan.semantic, scan.points["semantic"])
    np.testing.assert_array_equal(scan.instances, scan.points["instance"])
    assert pixels_of(scan)[:, 0].max() < 64
    assert pixels_of(scan)[:, 1].max() < 2048
    assert len(np.unique(pixels_of(scan)[:, 0] * 2048 + pixels_of(scan)[:, 1])) == len(scan)  # one return per pixel
    i = scan.points["intensity"]
    assert i.min() >= 0
    assert i.max() <= 1
    assert i.std() > 0.05
    assert set(np.unique(scan.points["label"])) <= set(KITTI3.ids)
    # the ground lies about 1.73 m below the sensor
    road = scan.points["semantic"] == SEMANTIC_KITTI.id_of("road")
    assert np.median(scan.points["z"][road]) == pytest.approx(-1.73, abs=0.15)


def test_rings_match_beam_elevations(street: tuple[Scene, Scan]) -> None:
    """A point's elevation seen from its beam's origin is its ring's elevation (range noise runs along the beam)."""
    _, scan = street
    sensor = get_sensor("hdl64e")
    row = sensor.ring_to_row[scan.points["ring"]]
    np.testing.assert_array_equal(row, pixels_of(scan)[:, 0])
    xyz = scan.xyz.astype(np.float64)
    xyz[:, 2] -= sensor.beam_heights_m[row]
    elevation = np.degrees(np.arcsin(xyz[:, 2] / np.linalg.norm(xyz, axis=1)))
    np.testing.assert_allclose(elevation, sensor.elevations_deg[row], atol=0.02)
    azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
    column = np.floor((np.pi - azimuth) / (2 * np.pi) * 2048).astype(int) % 2048
    assert (column == pixels_of(scan)[:, 1]).mean() > 0.999


def test_object_points_lie_in_their_boxes(street: tuple[Scene, Scan]) -> None:
    scene, scan = street
    xyz = scan.xyz
    assert len(scan.boxes) == len(scene.actors)
    seen = 0
    for b in scan.boxes:
        mine = scan.points["instance"] == b.track_id
        assert mine.sum() == b.num_points
        if not mine.any():
            continue
        seen += 1
        # range noise (2 cm, 1 sigma) may push a point just outside its box
        assert b.contains(xyz[mine], margin=0.1).all(), b.name
        assert np.all(scan.points["label"][mine] == b.label)
        assert {SEMANTIC_KITTI.names[s] for s in np.unique(scan.points["semantic"][mine])} <= ALLOWED[b.name]
    assert seen >= 5
    assert np.all(scan.points["label"][scan.points["instance"] == 0] == 0)


def test_same_seed_same_scan_other_seed_other_noise(street: tuple[Scene, Scan]) -> None:
    scene, scan = street
    caster = make_raycaster(scene.soup, "open3d")
    again = Lidar().scan(scene, caster, seed=3)
    np.testing.assert_array_equal(again.points, scan.points)
    other = Lidar().scan(scene, caster, seed=4)
    assert not np.array_equal(other.points["x"][:1000], scan.points["x"][:1000])


def _flat_world(*extra: Part) -> Scene:
    ground = Part(box((400, 400, 1), (0, 0, -0.5), Mat.ASPHALT), SEMANTIC_KITTI.id_of("road"))
    return Scene(seed=0, parts=[ground, *extra])


def test_mount_height_and_pitch() -> None:
    scene = _flat_world()

    def clean(mount: Mount) -> Lidar:
        return Lidar(columns=256, mount=mount, noise=RangeNoise(0.0), intensity=None, dropout=(NoDropout(),))

    level = clean(Mount(height=2.0)).scan(scene, make_raycaster(scene.soup, "open3d"))
    np.testing.assert_allclose(level.points["z"], -2.0, atol=1e-3)
    pitched_lidar = clean(Mount(height=2.0, pitch_deg=5.0))
    pitched = pitched_lidar.scan(scene, make_raycaster(scene.soup, "open3d"))
    rot, trans = pitched_lidar.pose_in_world(EgoPose())
    world = pitched.xyz.astype(np.float64) @ rot.T + trans
    np.testing.assert_allclose(world[:, 2], 0.0, atol=1e-3)
    # nose down: the ground ahead comes closer than behind
    ahead = np.abs(pitched.points["y"]) < 1
    assert pitched.points["x"][ahead & (pitched.points["x"] > 0)].max() < -pitched.points["x"][ahead].min()


def test_glass_pane_in_front_of_a_wall() -> None:
    pane = Part(box((0.01, 40, 20), (10, 0, 5), Mat.WINDOW), SEMANTIC_KITTI.id_of("building"))
    wall = Part(box((1, 40, 20), (20.5, 0, 5), Mat.BRICK), SEMANTIC_KITTI.id_of("fence"))
    scene = _flat_world(pane, wall)

    def front(glass_return: float) -> np.ndarray:
        """x of the returns of beams that meet the pane and, behind it, the wall (not the ground)."""
        lidar = Lidar(columns=512, noise=RangeNoise(0.0), dropout=(PhysicalDropout(glass_return=glass_return),))
        scan = lidar.scan(scene, make_raycaster(scene.soup, "open3d"))
        elevation = lidar.model.elevations_deg[pixels_of(scan)[:, 0]]
        ahead = (np.abs(np.arctan2(scan.points["y"], scan.points["x"])) < np.radians(30)) & (elevation > -2.0)
        return scan.points["x"][ahead]

    np.testing.assert_allclose(front(1.0), 9.995, atol=0.01)  # every beam returns from the pane's face
    np.testing.assert_allclose(front(0.0), 20.0, atol=0.01)  # every beam passes through to the wall
    # each of the pane's two faces returns 30 %: 30 % + 70 % * 30 % = 51 % come back from the glass
    mixed = front(0.3)
    assert (np.abs(mixed - 9.995) < 0.002).mean() == pytest.approx(0.3, abs=0.04)
    assert (mixed < 15).mean() == pytest.approx(0.51, abs=0.04)


def test_small_scene_gives_a_full_sweep() -> None:
    # speed is benchmarks/bench_sim.py's job; here: a small scene still fills most of the 64 x 2048 grid
    scan = Lidar().scan(generate_scene(9, SMALL), seed=1)
    assert len(scan) > 50_000


@pytest.mark.real_data
def test_simulated_rings_meet_the_road_where_real_ones_do(real_data: Path) -> None:
    """Fidelity: per ring, the median distance at which the HDL-64E's lower beams meet the road in a
    simulated KITTI-mounted scan matches the real SemanticKITTI scan within 12 %."""
    raw = np.fromfile(real_data / "semantickitti" / "000000.bin", dtype=np.float32).reshape(-1, 4)
    sem = semantickitti_learning_ids(np.fromfile(real_data / "semantickitti" / "000000.label", dtype=np.uint32))
    sensor = get_sensor("hdl64e")
    road = sem == SEMANTIC_KITTI.id_of("road")
    xyz = raw[road, :3].astype(np.float64)
    rho = np.hypot(xyz[:, 0], xyz[:, 1])
    elevation = np.degrees(np.arctan2(xyz[:, 2] - 0.16, rho))
    real_row = np.abs(elevation[:, None] - sensor.elevations_deg[None, :]).argmin(axis=1)
    scene = generate_scene(1, SMALL)
    sim = Lidar().scan(scene, seed=0)
    sim_road = sim.points["semantic"] == SEMANTIC_KITTI.id_of("road")
    sim_rho = np.hypot(sim.points["x"], sim.points["y"])[sim_road]
    sim_row = pixels_of(sim)[sim_road, 0]
    checked = 0
    for row in range(40, 64, 3):  # beams steep enough to meet the road near the car
        real_med = np.median(rho[real_row == row])
        sim_med = np.median(sim_rho[sim_row == row])
        assert sim_med == pytest.approx(real_med, rel=0.12), row
        checked += 1
    assert checked == 8
