"""Procedural scenes: seeded determinism, labelled parts, object sizes, and the meshes they are built from."""

from __future__ import annotations

import numpy as np
import pytest

from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.sim.world.generator import SceneConfig, generate_scene
from perception_ws.sim.world.materials import IS_GLASS
from perception_ws.sim.world.mesh import Mesh, box, ellipsoid, tube
from perception_ws.sim.world.people import cyclist, pedestrian
from perception_ws.sim.world.vehicles import BODY_TYPES, car

SMALL = SceneConfig(half_length=40.0, y_extent=30.0, ego_poses=2)


def _closed_volume(mesh: Mesh) -> float:
    """Signed volume by the divergence theorem: positive for a closed mesh with outward normals."""
    v = mesh.vertices[mesh.triangles]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def test_same_seed_same_scene_other_seed_other_scene() -> None:
    a, b, c = generate_scene(7, SMALL).soup, generate_scene(7, SMALL).soup, generate_scene(8, SMALL).soup
    for name in ("vertices", "triangles", "semantic", "kitti3", "instance", "material", "albedo"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert len(a) != len(c) or not np.array_equal(a.vertices, c.vertices)


def test_scene_has_the_street_classes_and_labelled_actors() -> None:
    scene = generate_scene(3, SMALL)
    soup = scene.soup
    present = {SEMANTIC_KITTI.names[i] for i in np.unique(soup.semantic)}
    assert {"road", "sidewalk", "building", "vegetation", "trunk", "pole", "car", "person"} <= present
    instances = [a.instance for a in scene.actors]
    assert len(set(instances)) == len(instances)
    assert min(instances) >= 1
    for actor in scene.actors:
        tri = soup.instance == actor.instance
        assert tri.any()
        # every triangle of an actor carries its KITTI-3 class; stuff carries neither
        assert set(np.unique(soup.kitti3[tri])) == {actor.box.label}
        assert actor.box.track_id == actor.instance
    assert np.all(soup.kitti3[soup.instance == 0] == 0)
    # boxes are tight: every vertex of an actor lies in its box
    for actor in scene.actors:
        verts = soup.vertices[soup.triangles[soup.instance == actor.instance]].reshape(-1, 3)
        assert actor.box.contains(verts, margin=1e-3).all()


def test_ego_poses_are_on_free_road() -> None:
    scene = generate_scene(5, SMALL)
    assert len(scene.ego_poses) == 2
    for pose in scene.ego_poses:
        for actor in scene.actors:  # nothing stands on the sensor car
            assert np.hypot(actor.box.center[0] - pose.x, actor.box.center[1] - pose.y) > 2.0


@pytest.mark.parametrize("kind", [*BODY_TYPES, "truck"])
def test_vehicle_sizes_and_glass(kind: str) -> None:
    rng = np.random.default_rng(0)
    asset = car(kind, rng)
    lo, hi = asset.local_extent()
    length, width, height = hi - lo
    assert lo[2] == pytest.approx(0.0, abs=0.01)  # wheels on the ground
    if asset.name == "Car":
        assert 3.3 < length < 5.0
        assert 1.45 < width < 1.95
        assert 1.35 < height < 1.85
        assert asset.kitti3 == KITTI3.id_of("car")
    else:
        assert asset.kitti3 == 0
        assert length > 4.7
    mesh = asset.parts[0].mesh
    assert 200 < len(mesh) < 3000
    assert IS_GLASS[mesh.materials].mean() > 0.03  # windows exist


def test_kitti_like_mean_car_size() -> None:
    rng = np.random.default_rng(1)
    sizes = []
    for kind in ("hatchback", "sedan", "wagon", "suv"):
        for _ in range(10):
            lo, hi = car(kind, rng).local_extent()
            sizes.append(hi - lo)
    mean = np.mean(sizes, axis=0)
    # KITTI's mean car box is about 3.9 x 1.6 x 1.5 m
    assert 3.7 < mean[0] < 4.6
    assert 1.55 < mean[1] < 1.85
    assert 1.4 < mean[2] < 1.65


def test_people_sizes() -> None:
    rng = np.random.default_rng(2)
    heights, cyc = [], []
    for _ in range(20):
        lo, hi = pedestrian(rng).local_extent()
        heights.append(hi[2] - lo[2])
        assert lo[2] == pytest.approx(0.0, abs=0.02)
        c = cyclist(rng)
        cyc.append(np.subtract(*reversed(c.local_extent())))
        assert [SEMANTIC_KITTI.names[p.semantic] for p in c.parts] == ["bicyclist", "bicycle"]
    assert 1.55 < np.median(heights) < 1.9
    length, width, height = np.median(cyc, axis=0)
    assert 1.6 < length < 1.95
    assert 0.5 < width < 0.8
    assert 1.5 < height < 1.95


def test_primitives_are_closed_and_outward() -> None:
    assert _closed_volume(box((2, 3, 4))) == pytest.approx(24.0)
    cyl = tube((0, 0, 0), (0, 0, 2), 1.0, segments=64)
    assert _closed_volume(cyl) == pytest.approx(2 * np.pi, rel=0.01)
    sphere = ellipsoid((1, 2, 3), (1, 1, 1), subdivisions=3)
    assert _closed_volume(sphere) == pytest.approx(4 / 3 * np.pi, rel=0.02)


def test_bad_inputs_raise_one_clear_error() -> None:
    with pytest.raises(PerceptionError, match="half_length"):
        SceneConfig(half_length=5)
    with pytest.raises(PerceptionError, match="pedestrians"):
        SceneConfig(pedestrians=(5, 2))
    with pytest.raises(PerceptionError, match="unknown vehicle type"):
        car("tank", np.random.default_rng(0))
    with pytest.raises(PerceptionError, match="triangle indices"):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]), 0)
