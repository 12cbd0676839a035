"""The CARLA backend without a server: buffers in CARLA's documented binary layouts, frames, tags,
intrinsics, and the errors for a missing server and a missing client package.

Reference values come from outside the code under test: records are packed with ``struct`` in the
layout of CARLA's sensor reference, and rotations are checked against the real ``carla`` client's
own ``Transform.get_matrix`` (the client computes transforms locally, no server needed).
"""

from __future__ import annotations

import math
import socket
import struct
import subprocess
import sys
import time
import warnings

import carla
import numpy as np
import pytest

from perception_ws.calib.sensors import get_sensor
from perception_ws.camera_frame import kitti_calib
from perception_ws.errors import CalibrationError, CloudFormatError, PerceptionError, SimulatorError
from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.sim.carla import (
    ActorState,
    CameraSettings,
    CarlaConfig,
    CarlaSession,
    CarlaTag,
    LidarSettings,
    Pose,
    connect,
    import_carla,
    kitti3_from_tags,
    plain_scan,
    semantic_from_tags,
    semantic_scan,
)
from perception_ws.sim.carla.client import carla_transform, synchronous_settings
from perception_ws.sim.carla.convert import (
    bgra_to_rgb,
    camera_from_fov,
    carla_pose_from_ros,
    channels_from_counts,
    lidar_to_camera,
    parse_semantic_lidar,
    ros_pose_from_carla,
    ros_rotation_from_carla,
    tags_from_segmentation,
)
from perception_ws.sim.carla.tags import actor_base_type, check_tag_numbering, parse_version, thing_instances

S4 = np.diag([1.0, -1.0, 1.0, 1.0])
SK = SEMANTIC_KITTI.id_of
K3 = KITTI3.id_of


def semantic_record(x: float, y: float, z: float, cos: float, idx: int, tag: int) -> bytes:
    """One semantic LiDAR point as CARLA sends it: float32 x, y, z, cos_inc_angle, uint32 idx, uint32 tag."""
    return struct.pack("<4f2I", x, y, z, cos, idx, tag)


def bgra_image(pixels: list[list[tuple[int, int, int, int]]]) -> bytes:
    return b"".join(struct.pack("4B", *px) for row in pixels for px in row)


def carla_matrix(location: tuple[float, float, float], pitch: float, yaw: float, roll: float) -> np.ndarray:
    t = carla.Transform(carla.Location(*location), carla.Rotation(pitch=pitch, yaw=yaw, roll=roll))
    return np.array(t.get_matrix())


# -- buffers ---------------------------------------------------------------------------------------


def test_semantic_lidar_records_parse_and_points_flip_y() -> None:
    raw = semantic_record(1.0, 2.0, 3.0, 0.5, 42, CarlaTag.CAR) + semantic_record(-4.0, -5.0, 0.25, 1.0, 0, 1)
    assert len(raw) == 2 * 24
    scan = semantic_scan(raw, [1, 1])
    np.testing.assert_array_equal(scan.xyz, [[1.0, -2.0, 3.0], [-4.0, 5.0, 0.25]])
    assert scan.points["cos_inc_angle"].tolist() == [0.5, 1.0]
    assert scan.points["object_tag"].tolist() == [14, 1]
    assert scan.points["ring"].tolist() == [0, 1]
    assert scan.instances is not None
    assert scan.instances.tolist() == [42, 0]
    assert scan.semantic is not None
    assert scan.semantic.tolist() == [SK("car"), SK("road")]
    assert scan.labels is not None
    assert scan.labels.tolist() == [K3("car"), 0]


def test_semantic_lidar_parse_reads_uint32_fields_as_integers() -> None:
    records = parse_semantic_lidar(memoryview(semantic_record(0.0, 0.0, 0.0, -0.25, 2**32 - 1, 28)))
    assert records["object_idx"][0] == 2**32 - 1
    assert records["object_tag"][0] == 28
    assert records["cos_inc_angle"][0] == -0.25


def test_plain_lidar_records_keep_intensity_and_flip_y() -> None:
    raw = struct.pack("<4f", 1.0, 2.0, 3.0, 0.75) + struct.pack("<4f", 0.0, -1.0, 0.0, 0.1)
    scan = plain_scan(raw, [0, 2])
    np.testing.assert_array_equal(scan.xyz, [[1.0, -2.0, 3.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(scan.points["intensity"], [0.75, 0.1])
    assert scan.points["ring"].tolist() == [1, 1]


def test_rings_follow_the_points_per_channel_top_laser_first() -> None:
    assert channels_from_counts([2, 0, 3], 5).tolist() == [0, 0, 2, 2, 2]


@pytest.mark.parametrize(
    ("raw", "counts", "match"),
    [
        (semantic_record(1, 2, 3, 1, 0, 1)[:-4], [1], "20 bytes, not a multiple of the 24-byte"),
        (semantic_record(1, 2, 3, 1, 0, 1), [2], "sum to 2, expected the 1 points"),
        (semantic_record(1, 2, 3, 1, 0, 1), [-1, 2], "sum to 1"),
    ],
)
def test_malformed_buffers_give_one_clear_error(raw: bytes, counts: list[int], match: str) -> None:
    with pytest.raises(CloudFormatError, match=match):
        semantic_scan(raw, counts)


def test_ego_points_are_dropped() -> None:
    raw = semantic_record(0.5, 0.0, -0.2, 1.0, 7, CarlaTag.CAR) + semantic_record(9.0, 0.0, -1.7, 1.0, 0, 1)
    scan = semantic_scan(raw, [1, 1], ego_id=7)
    assert len(scan) == 1
    assert scan.points["ring"].tolist() == [1]
    assert scan.semantic is not None
    assert scan.semantic.tolist() == [SK("road")]


def test_bgra_image_becomes_rgb() -> None:
    raw = bgra_image([[(1, 2, 3, 255), (10, 20, 30, 0), (0, 0, 255, 9)], [(255, 0, 0, 1), (7, 8, 9, 10), (4, 5, 6, 7)]])
    rgb = bgra_to_rgb(raw, width=3, height=2)
    assert rgb.shape == (2, 3, 3)
    assert rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [3, 2, 1]
    assert rgb[0, 2].tolist() == [255, 0, 0]
    assert rgb[1, 0].tolist() == [0, 0, 255]
    with pytest.raises(CloudFormatError, match="expected 3x3 BGRA = 36"):
        bgra_to_rgb(raw, width=3, height=3)


def test_segmentation_tags_are_the_red_byte() -> None:
    raw = bgra_image([[(0, 0, CarlaTag.CAR, 255), (0, 0, CarlaTag.PEDESTRIAN, 255)]])
    tags = tags_from_segmentation(raw, width=2, height=1)
    assert tags.tolist() == [[14, 12]]
    assert semantic_from_tags(tags).tolist() == [[SK("car"), SK("person")]]


# -- tags --------------------------------------------------------------------------------------------


def _normalised(name: str) -> str:
    return name.upper().replace("_", "").rstrip("S")


def test_tag_table_matches_the_installed_carla_client() -> None:
    client_labels = {int(v): _normalised(m.name) for v, m in carla.CityObjectLabel.values.items() if int(v) < 255}
    ours = {int(t): "NONE" if t == CarlaTag.UNLABELED else _normalised(t.name) for t in CarlaTag}
    assert ours == client_labels


@pytest.mark.parametrize(
    ("tag", "semantic", "kitti3"),
    [
        (CarlaTag.CAR, "car", "car"),
        (CarlaTag.PEDESTRIAN, "person", "pedestrian"),
        (CarlaTag.TRUCK, "truck", "unknown"),
        (CarlaTag.BUS, "other-vehicle", "unknown"),
        (CarlaTag.ROAD, "road", "unknown"),
        (CarlaTag.ROAD_LINE, "road", "unknown"),
        (CarlaTag.SIDEWALK, "sidewalk", "unknown"),
        (CarlaTag.BUILDING, "building", "unknown"),
        (CarlaTag.VEGETATION, "vegetation", "unknown"),
        (CarlaTag.TERRAIN, "terrain", "unknown"),
        (CarlaTag.POLE, "pole", "unknown"),
        (CarlaTag.TRAFFIC_SIGN, "traffic-sign", "unknown"),
        (CarlaTag.SKY, "unlabeled", "unknown"),
    ],
)
def test_tags_map_to_project_classes(tag: int, semantic: str, kitti3: str) -> None:
    tags = np.array([tag])
    inst = np.array([5])
    assert semantic_from_tags(tags, inst).tolist() == [SK(semantic)]
    assert kitti3_from_tags(tags, inst).tolist() == [K3(kitti3)]


def test_unknown_tags_are_unlabelled() -> None:
    assert semantic_from_tags(np.array([29, 200, 255, 70000])).tolist() == [0, 0, 0, 0]


def test_riders_and_their_bicycles_are_one_cyclist() -> None:
    R, B, M, C = CarlaTag.RIDER, CarlaTag.BICYCLE, CarlaTag.MOTORCYCLE, CarlaTag.CAR
    tags = np.array([R, B, B, B, M, R, R, C])
    # actor 7: ridden bicycle; 8: parked bicycle; 9: motorcycle with rider; 0: a rider with no actor
    idx = np.array([7, 7, 7, 8, 9, 9, 0, 3])
    inst = thing_instances(tags, idx)
    semantic = semantic_from_tags(tags, inst)
    assert semantic.tolist() == [
        SK("bicyclist"),
        SK("bicycle"),
        SK("bicycle"),
        SK("bicycle"),
        SK("motorcycle"),
        SK("motorcyclist"),
        SK("bicyclist"),
        SK("car"),
    ]
    labels = kitti3_from_tags(tags, inst, semantic)
    cyclist, car = K3("cyclist"), K3("car")
    assert labels.tolist() == [cyclist, cyclist, cyclist, 0, 0, 0, cyclist, car]


def test_a_rider_on_a_known_motorcycle_is_a_motorcyclist_even_without_motorcycle_points() -> None:
    tags = np.array([CarlaTag.RIDER])
    assert semantic_from_tags(tags, np.array([9]), motorcycle_instances=[9]).tolist() == [SK("motorcyclist")]


def test_instance_classes_from_actors_override_the_tags() -> None:
    tags = np.array([CarlaTag.CAR, CarlaTag.CAR, CarlaTag.CAR])
    inst = np.array([5, 6, 0])
    labels = kitti3_from_tags(tags, inst, instance_classes={5: 0, 99: 2})  # actor 5 is a van
    assert labels.tolist() == [0, K3("car"), K3("car")]


def test_stuff_points_carry_no_instance() -> None:
    tags = np.array([CarlaTag.ROAD, CarlaTag.BUILDING, CarlaTag.CAR, CarlaTag.PEDESTRIAN, CarlaTag.TRAFFIC_LIGHT])
    assert thing_instances(tags, np.array([3, 4, 5, 6, 7], dtype=np.uint32)).tolist() == [0, 0, 5, 6, 0]


@pytest.mark.parametrize(
    ("version", "parsed"), [("0.9.16", (0, 9, 16)), ("0.9.15.2", (0, 9, 15)), ("0.10", (0, 10, 0))]
)
def test_versions_parse(version: str, parsed: tuple[int, ...]) -> None:
    assert parse_version(version) == parsed
    check_tag_numbering(version)


def test_old_tag_numbering_is_refused() -> None:
    with pytest.raises(SimulatorError, match=r"0\.9\.13 numbers its semantic tags the pre-0\.9\.14 way"):
        check_tag_numbering("0.9.13")


def test_actor_kinds() -> None:
    assert actor_base_type("walker.pedestrian.0001") == "pedestrian"
    assert actor_base_type("vehicle.ford.transit", "Van") == "van"
    assert actor_base_type("vehicle.custom.bike", "", [CarlaTag.RIDER, CarlaTag.BICYCLE]) == "bicycle"
    assert actor_base_type("vehicle.custom.thing", "", []) == "other"


# -- frames and rotations --------------------------------------------------------------------------


def test_a_right_turn_in_carla_is_a_negative_yaw_in_ros() -> None:
    R = ros_rotation_from_carla(pitch_deg=0.0, yaw_deg=90.0, roll_deg=0.0)
    np.testing.assert_allclose(R, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12)  # Rz(-90 deg)
    np.testing.assert_allclose(R @ [1.0, 0.0, 0.0], [0.0, -1.0, 0.0], atol=1e-12)  # forward turns to the right
    # nose up in CARLA (positive pitch) lifts the forward axis, a negative REP-103 pitch
    np.testing.assert_allclose(ros_rotation_from_carla(30.0, 0.0, 0.0) @ [1.0, 0, 0], [0.866025, 0, 0.5], atol=1e-6)


def test_rotations_match_the_carla_clients_own_matrices() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        location = tuple(rng.uniform(-50, 50, 3).tolist())
        pitch, yaw, roll = rng.uniform(-89, 89), rng.uniform(-180, 180), rng.uniform(-180, 180)
        expected = S4 @ carla_matrix(location, pitch, yaw, roll) @ S4  # flip y on both sides
        pose = ros_pose_from_carla(location, (pitch, yaw, roll))
        np.testing.assert_allclose(pose, expected, atol=1e-5)
        (x, y, z), (p2, y2, r2) = carla_pose_from_ros(pose)
        np.testing.assert_allclose([x, y, z, p2, y2, r2], [*location, pitch, yaw, roll], atol=1e-6)
        built = np.array(carla_transform(carla, pose).get_matrix())
        np.testing.assert_allclose(S4 @ built @ S4, pose, atol=1e-4)


def test_pose_matrix_is_rep103_roll_pitch_yaw() -> None:
    m = Pose(x=1.0, y=2.0, z=3.0, yaw_deg=90.0).matrix()
    np.testing.assert_allclose(m[:3, :3] @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)  # +yaw turns left
    np.testing.assert_allclose(m[:3, 3], [1.0, 2.0, 3.0])


# -- camera ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height", "fov"), [(800, 600, 90.0), (1242, 375, 81.43), (64, 48, 30.0)])
def test_intrinsics_follow_the_pinhole_formula(width: int, height: int, fov: float) -> None:
    camera = camera_from_fov(width, height, fov)
    f = width / (2.0 * math.tan(math.radians(fov) / 2.0))
    assert camera.fx == pytest.approx(f)
    assert camera.fy == pytest.approx(f)
    assert (camera.cx, camera.cy) == ((width - 1) / 2.0, (height - 1) / 2.0)
    info = camera.to_camera_info_dict()
    assert (info["width"], info["height"]) == (width, height)
    assert info["k"][0] == pytest.approx(f)


def test_bad_camera_settings_are_refused() -> None:
    with pytest.raises(CalibrationError, match="fov 180"):
        camera_from_fov(640, 480, 180.0)
    with pytest.raises(SimulatorError, match="fov_deg must lie in"):
        CameraSettings(fov_deg=0.0)


def test_camera_extrinsic_projects_lidar_points_where_carla_images_them() -> None:
    """A world point seen by a CARLA LiDAR and a CARLA camera (poses and local coordinates from the
    carla client) lands on the pixel CARLA's camera model gives it: u right along CARLA's +y, v down."""
    lidar_t = carla.Transform(carla.Location(10, 20, 1.7), carla.Rotation(pitch=2, yaw=75, roll=-1))
    camera_t = carla.Transform(carla.Location(10.3, 20.4, 1.6), carla.Rotation(pitch=-5, yaw=80, roll=3))
    world = [(10 + 20 * math.cos(a), 20 + 20 * math.sin(a), z) for a in (1.2, 1.4, 1.5) for z in (0.0, 2.0)]

    def local(t: carla.Transform) -> np.ndarray:  # inverse_transform overwrites its argument: a fresh one each
        return np.array([[p.x, p.y, p.z] for p in (t.inverse_transform(carla.Location(*w)) for w in world)])

    in_lidar, in_camera = local(lidar_t), local(camera_t)
    camera = camera_from_fov(800, 600, 90.0)
    f = 400.0
    expected_uv = np.stack(
        [f * in_camera[:, 1] / in_camera[:, 0] + 399.5, -f * in_camera[:, 2] / in_camera[:, 0] + 299.5], 1
    )

    def pose_of(t: carla.Transform) -> np.ndarray:
        return ros_pose_from_carla(
            (t.location.x, t.location.y, t.location.z), (t.rotation.pitch, t.rotation.yaw, t.rotation.roll)
        )

    camera_in_lidar = np.linalg.inv(pose_of(lidar_t)) @ pose_of(camera_t)
    extrinsic = lidar_to_camera(camera_in_lidar)
    points_ros = in_lidar * [1.0, -1.0, 1.0]
    uv, depth, visible = camera.project(extrinsic.apply(points_ros))
    np.testing.assert_allclose(uv, expected_uv, atol=1e-3)
    np.testing.assert_allclose(depth, in_camera[:, 0], atol=1e-4)
    assert visible.all()
    calib_uv, _ = kitti_calib(camera, extrinsic).velo_to_image(points_ros, cam=2)
    np.testing.assert_allclose(calib_uv, expected_uv, atol=1e-3)


# -- a whole sweep with an actor -------------------------------------------------------------------


def test_semantic_scan_boxes_hold_their_points() -> None:
    # the LiDAR looks along CARLA's +y (yaw 90); a car 10 m ahead of it, parked along the same axis
    lidar_pose = ros_pose_from_carla((10.0, 20.0, 1.73), (0.0, 90.0, 0.0))
    car = ActorState(
        id=31,
        base_type="car",
        pose=ros_pose_from_carla((10.0, 30.0, 0.0), (0.0, 90.0, 0.0)),
        box_pose=ros_pose_from_carla((0.0, 0.0, 0.75), (0.0, 0.0, 0.0)),
        extent=np.array([2.4, 1.0, 0.75]),
        velocity=np.array([0.0, -3.0, 0.0]),  # world ROS axes: moving along CARLA's +y
    )
    van = ActorState(31 + 1, "van", ros_pose_from_carla((40.0, 20.0, 0.0), (0.0, 0.0, 0.0)), np.eye(4), np.ones(3))
    far = ActorState(99, "pedestrian", ros_pose_from_carla((500.0, 20.0, 0.0), (0.0, 0.0, 0.0)), np.eye(4), np.ones(3))
    raw = (
        semantic_record(9.0, 0.5, -1.0, 0.9, 31, CarlaTag.CAR)
        + semantic_record(11.0, -0.6, -1.5, 0.8, 31, CarlaTag.CAR)
        + semantic_record(0.0, -30.0, -1.0, 0.8, 32, CarlaTag.CAR)
        + semantic_record(5.0, 0.0, -1.73, 1.0, 0, CarlaTag.ROAD)
    )
    scan = semantic_scan(raw, [2, 2], [car, van, far], lidar_pose, sensor="carla-hdl64e", max_box_range=120.0)
    boxes = {b.track_id: b for b in scan.boxes}
    assert set(boxes) == {31, 32}  # the pedestrian 480 m away, without points, has no box
    box = boxes[31]
    np.testing.assert_allclose(box.center, [10.0, 0.0, 0.75 - 1.73], atol=1e-6)
    np.testing.assert_allclose(box.size, [4.8, 2.0, 1.5])
    assert box.yaw == pytest.approx(0.0, abs=1e-9)
    assert (box.label, box.name, box.num_points) == (K3("car"), "Car", 2)
    np.testing.assert_allclose(box.velocity, [3.0, 0.0, 0.0], atol=1e-9)  # moving away along the LiDAR's x
    assert box.contains(scan.xyz[:2]).all()
    assert not box.contains(scan.xyz[2:]).any()
    assert scan.labels is not None
    assert scan.labels.tolist() == [K3("car"), K3("car"), 0, 0]  # a van is no KITTI car
    assert scan.semantic is not None
    assert scan.semantic.tolist() == [SK("car")] * 3 + [SK("road")]
    assert boxes[32].name == "Van"
    assert boxes[32].label == 0


# -- configuration ---------------------------------------------------------------------------------


def test_default_lidar_is_an_hdl64e_with_one_turn_per_tick() -> None:
    cfg = CarlaConfig()
    hdl = get_sensor("hdl64e")
    top, bottom = hdl.vertical_fov_deg
    lidar = cfg.lidar
    assert (lidar.channels, lidar.upper_fov_deg, lidar.lower_fov_deg) == (64, top, bottom)
    assert (lidar.rotation_hz, lidar.range_m) == (hdl.rate_hz, hdl.max_range_m)
    assert cfg.tick_s == pytest.approx(1.0 / hdl.rate_hz)
    # CARLA casts round(points_per_second * delta / channels) rays per laser and tick: 2048 columns
    assert round(lidar.points_per_second * cfg.tick_s / lidar.channels) == 2048
    attrs = lidar.attributes()
    assert attrs["channels"] == "64"
    assert float(attrs["upper_fov"]) == pytest.approx(top)
    assert float(attrs["range"]) == hdl.max_range_m


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LidarSettings(64, -30.0, 10.0, 1000, 10.0, 100.0), "expected -90 < lower_fov < upper_fov"),
        (lambda: LidarSettings(0, 2.0, -24.0, 1000, 10.0, 100.0), "channels must be a positive number"),
        (lambda: CarlaConfig(port=0), "port must be a positive number"),
        (lambda: CarlaConfig(npc_vehicles=-1), "npc_vehicles and warmup_ticks must be >= 0"),
    ],
)
def test_bad_configuration_is_refused(make: object, match: str) -> None:
    with pytest.raises(SimulatorError, match=match):
        make()  # type: ignore[operator]


def test_synchronous_settings_on_real_world_settings() -> None:
    settings = synchronous_settings(carla.WorldSettings(), 0.1)
    assert settings.synchronous_mode is True
    assert settings.fixed_delta_seconds == pytest.approx(0.1)


# -- errors without a server or a client -----------------------------------------------------------


def _free_port() -> int:
    """A local TCP port nobody listens on (bound, read, released: never listened on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_server_gives_one_clear_error_quickly() -> None:
    port = _free_port()
    start = time.monotonic()
    with pytest.raises(SimulatorError, match=f"no CARLA server answered at 127.0.0.1:{port} within 0.5 s") as err:
        connect("127.0.0.1", port, timeout_s=0.5)
    assert time.monotonic() - start < 5.0
    assert "CarlaUE4.sh" in str(err.value)
    assert isinstance(err.value, PerceptionError)


def test_a_session_without_server_fails_cleanly() -> None:
    session = CarlaSession(CarlaConfig(host="127.0.0.1", port=_free_port(), connect_timeout_s=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing was spawned, so clean-up has nothing to complain about
        with pytest.raises(SimulatorError, match="no CARLA server answered"):
            session.open()
    assert session.ego is None
    assert session.world is None
    with pytest.raises(SimulatorError, match="not open"):
        next(session.frames(1))


def test_missing_carla_package_says_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "carla", None)  # `import carla` now raises ImportError
    with pytest.raises(SimulatorError, match="pip install carla"):
        import_carla()
    with pytest.raises(SimulatorError, match="pip install carla"):
        connect("127.0.0.1", _free_port(), timeout_s=0.5)


def test_the_backend_imports_and_converts_without_the_carla_package() -> None:
    code = (
        "import sys; sys.modules['carla'] = None\n"
        "import struct\n"
        "from perception_ws.sim.carla import semantic_scan\n"
        "scan = semantic_scan(struct.pack('<4f2I', 1, 2, 3, 1, 5, 14), [1])\n"
        "print(scan.xyz.tolist(), scan.labels.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[[1.0, -2.0, 3.0]] [1]"
