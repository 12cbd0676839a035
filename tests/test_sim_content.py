"""The street content added for hard negatives and people (sim/world/content.py and its builders).

Each new builder: the right SemanticKITTI and KITTI-3 classes, an instance only where the class sets give one
(a parked bicycle is an instance but never a KITTI-3 cyclist; a pushed stroller is no part of its pusher);
the densities switch the content off (the v1 preset is the former street, draw for draw), a seed gives the
same scene, and in a rendered scene the new objects get LiDAR returns with those labels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from perception_ws.cli import main
from perception_ws.cli.args import DEFAULT_SCENE_CONTENT, SCENE_CONTENT_CHOICES
from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3, SEMANTIC_KITTI, SEMANTIC_KITTI_TO_KITTI3
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.world import scene_config
from perception_ws.sim.world.carrying import CARRIED_ITEMS, pedestrian_carrying
from perception_ws.sim.world.furniture import (
    bollard,
    bus_shelter,
    fire_hydrant,
    parking_meter,
    post_box,
    traffic_light,
)
from perception_ws.sim.world.generator import generate_scene
from perception_ws.sim.world.materials import IS_GLASS
from perception_ws.sim.world.nature import young_tree
from perception_ws.sim.world.people import parked_bicycle
from perception_ws.sim.world.scene import Part
from perception_ws.sim.world.scene_config import SCENE_CONTENT, SceneConfig, scene_config_for
from perception_ws.sim.world.vehicles import VEHICLE_MIX_V1, car
from perception_ws.training.config import TrainConfig

SMALL: dict[str, object] = {"half_length": 40.0, "y_extent": 30.0, "ego_poses": 1}
#: the kinds only the added content has (parts of v1 scenes never carry them)
NEW_FURNITURE = {"bollard", "post box", "fire hydrant", "parking meter", "traffic light", "bus shelter"}
NEW_FURNITURE |= {"young tree", "short sign post", "garden wall"}
OTHER, POLE, SIGN = (SEMANTIC_KITTI.id_of(n) for n in ("unlabeled", "pole", "traffic-sign"))

Builder = Callable[[np.random.Generator, float, float, float, float], list[Part]]


@pytest.mark.parametrize(
    ("build", "classes", "top"),
    [
        (bollard, {OTHER}, (0.7, 1.25)),
        (post_box, {OTHER}, (1.1, 1.75)),
        (fire_hydrant, {OTHER}, (0.6, 1.05)),
        (parking_meter, {POLE, OTHER}, (1.3, 2.1)),
        (traffic_light, {POLE, SIGN}, (3.0, 4.7)),
        (bus_shelter, {OTHER}, (2.3, 2.75)),
    ],
)
def test_furniture_is_stuff_of_its_class_at_peoples_height(
    build: Builder, classes: set[int], top: tuple[float, float]
) -> None:
    for seed in range(4):
        parts = build(np.random.default_rng(seed), 5.0, -2.0, 0.3, 0.5)
        assert {p.semantic for p in parts} == classes
        assert all(p.instance == 0 and p.kitti3 == 0 and p.kind for p in parts)
        verts = np.concatenate([p.mesh.vertices for p in parts])
        assert top[0] <= verts[:, 2].max() - 0.3 <= top[1]  # standing on z = 0.3
        assert verts[:, 2].min() == pytest.approx(0.3, abs=0.01)
        assert np.hypot(*(verts[:, :2].mean(axis=0) - [5.0, -2.0])) < 0.5  # where it was put
    if build is bus_shelter:
        assert IS_GLASS[parts[0].mesh.materials].any()  # its panels


def test_young_tree_is_a_thin_trunk_with_little_crown() -> None:
    trunk = SEMANTIC_KITTI.id_of("trunk")
    for seed in range(6):
        parts = young_tree(np.random.default_rng(seed), 0.0, 0.0, 0.0)
        assert parts[0].semantic == trunk
        assert {p.semantic for p in parts[1:]} <= {SEMANTIC_KITTI.id_of("vegetation")}
        low = parts[0].mesh.vertices
        low = low[low[:, 2] < 1.5]
        assert np.ptp(low[:, 0]) < 0.4  # below the twigs: a trunk and its stake, no wider than 0.4 m


def test_parked_bicycle_is_a_bicycle_instance_but_no_kitti3_cyclist() -> None:
    assert "bicycle" not in SEMANTIC_KITTI_TO_KITTI3  # labels.py: a bicycle without rider is no KITTI-3 object
    asset = parked_bicycle(np.random.default_rng(3))
    assert asset.kitti3 == 0
    assert asset.name == "Misc"
    assert [p.semantic for p in asset.parts] == [SEMANTIC_KITTI.id_of("bicycle")]
    lo, hi = asset.local_extent()
    assert lo[2] == pytest.approx(0.0, abs=1e-6)
    assert 0.9 < hi[2] < 1.3
    assert 1.5 < hi[0] - lo[0] < 2.1
    actor = asset.place(1.0, 2.0, 0.0, 0.3, instance=7)
    assert actor.box.label == 0
    assert all(p.instance == 7 and p.kitti3 == 0 for p in actor.parts)


@pytest.mark.parametrize("item", list(CARRIED_ITEMS))
def test_carried_things_follow_the_class_rules(item: str) -> None:
    person_id, pedestrian = SEMANTIC_KITTI.id_of("person"), KITTI3.id_of("pedestrian")
    asset = pedestrian_carrying(np.random.default_rng(5), item, child_probability=0.0)  # adults: 1.5-1.98 m
    actor = asset.place(0.0, 0.0, 0.0, 0.0, instance=4, velocity=(1.0, 0.0, 0.0))
    person, *carried = actor.parts
    assert (person.semantic, person.kitti3, person.instance) == (person_id, pedestrian, 4)
    body_top = person.mesh.vertices[:, 2].max()
    if item in ("stroller", "trolley"):  # on its own wheels: other-object, outside the person's instance and box
        assert [(p.semantic, p.kitti3, p.instance, p.kind) for p in carried] == [(OTHER, 0, 0, item)]
        assert carried[0].mesh.vertices[:, 0].max() > actor.box.center[0] + actor.box.size[0] / 2 + 0.3
        assert actor.box.size[0] < 1.0
    else:  # worn or held: part of the person
        assert carried == []
    if item == "umbrella":
        assert body_top > 1.5 + 0.2  # the canopy over an adult's head


def test_pickups_are_trucks_not_kitti3_cars() -> None:
    asset = car("pickup", np.random.default_rng(1))
    assert (asset.name, asset.kitti3, asset.parts[0].semantic) == ("Truck", 0, SEMANTIC_KITTI.id_of("truck"))
    lo, hi = asset.local_extent()
    assert 4.9 < hi[0] - lo[0] < 5.7


def test_v1_content_is_the_v2_street_without_the_additions() -> None:
    kinds = NEW_FURNITURE | {"parked bicycle"}
    v1 = generate_scene(12, scene_config_for("v1", **SMALL))
    assert not {p.kind for p in v1.all_parts()} & kinds
    assert all(a.box.name != "Misc" for a in v1.actors)
    # the same densities, the v1 vehicle mix: the additions come after the v1 street and leave it as it was
    v2 = generate_scene(12, scene_config_for("v2", vehicle_mix=dict(VEHICLE_MIX_V1), **SMALL))
    assert len(v2.parts) > len(v1.parts)
    assert len(v2.actors) > len(v1.actors)
    for old, new in zip(v1.parts, v2.parts, strict=False):
        assert np.array_equal(old.mesh.vertices, new.mesh.vertices)
        assert old.semantic == new.semantic
    assert {p.kind for p in v2.all_parts()} & kinds


def test_a_seed_gives_the_same_scene() -> None:
    config = scene_config_for("v2", **SMALL)
    a, b = generate_scene(3, config).soup, generate_scene(3, config).soup
    assert np.array_equal(a.vertices, b.vertices)
    assert np.array_equal(a.semantic, b.semantic)
    assert np.array_equal(a.instance, b.instance)


def test_new_objects_get_lidar_returns_with_their_labels() -> None:
    dense = scene_config_for("v2", street_furniture=3.0, parked_bicycles=3.0, extra_people=3.0, **SMALL)
    scene = generate_scene(5, dense)
    lidar = Lidar("hdl64e", columns=1024)
    pose = scene.ego_poses[0]
    rot, trans = lidar.pose_in_world(pose)
    caster = make_raycaster(scene.soup)
    hits = lidar.cast(scene.soup, caster, rot, trans, np.random.default_rng(0))
    hit = hits.triangle[hits.triangle >= 0]
    kinds = np.array([p.kind for p in scene.meshed_parts()])[scene.part_of_triangles()[hit]]
    seen = set(kinds.tolist())
    assert len(seen & NEW_FURNITURE) >= 4, seen
    assert "parked bicycle" in seen
    assert any(k.endswith("in a group") for k in seen)
    assert any(k.startswith("person with") for k in seen)
    # the sweep's labels: parked bicycles are SemanticKITTI bicycle and KITTI-3 unknown
    scan = lidar.scan(scene, caster, pose, seed=1)
    bikes = [a.instance for a in scene.actors if a.box.name == "Misc"]
    on_bikes = np.isin(scan.instances, bikes)
    assert on_bikes.sum() >= 5
    assert set(scan.semantic[on_bikes].tolist()) == {SEMANTIC_KITTI.id_of("bicycle")}
    assert not scan.labels[on_bikes].any()


def test_bad_densities_and_presets_are_refused_in_one_line() -> None:
    for bad in (-0.5, 3.5, float("nan")):
        with pytest.raises(PerceptionError, match=r"extra_people must lie in 0\.\.3"):
            SceneConfig(extra_people=bad)
    with pytest.raises(PerceptionError, match="scene content 'v3': expected one of v1, v2"):
        scene_config_for("v3")
    with pytest.raises(PerceptionError, match="scene content 'v9'"):
        TrainConfig(scene_content="v9")


def test_the_cli_and_the_training_config_know_the_presets() -> None:
    assert tuple(SCENE_CONTENT) == SCENE_CONTENT_CHOICES
    assert DEFAULT_SCENE_CONTENT == scene_config.DEFAULT_SCENE_CONTENT
    assert TrainConfig().scene_content == "v2"
    # a run stored before the presets existed was trained on the v1 streets and resumes on them
    stored = TrainConfig().to_json()
    stored.pop("scene_content")
    assert TrainConfig.from_json(stored).scene_content == "v1"
    assert TrainConfig.from_json(TrainConfig(scene_content="v2").to_json()).scene_content == "v2"


def test_sim_generate_records_the_scene_content(tmp_path: Path) -> None:
    out = tmp_path / "v1"
    args = ["sim", "generate", "--out", str(out), "--scenes", "1", "--frames", "1", "--columns", "128", "--quiet"]
    assert main([*args, "--scene-content", "v1", "--dropout", "none", "--intensity", "off"]) == 0
    scene = json.loads((out / "manifest.json").read_text())["config"]["scene"]
    assert (scene["street_furniture"], scene["parked_bicycles"], scene["extra_people"]) == (0.0, 0.0, 0.0)
    assert "pickup" not in scene["vehicle_mix"]
