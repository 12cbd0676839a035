"""KITTI readers on the real data: object frames with boxes, SemanticKITTI, odometry .bin folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perception_ws.boxes import Box3D
from perception_ws.calib.kitti import KittiCalib
from perception_ws.errors import DatasetError
from perception_ws.io import load, open_dataset
from perception_ws.io.kitti_object import (
    DONT_CARE,
    KittiObject,
    label_points_in_boxes,
    object_to_box,
    read_kitti_labels,
)
from perception_ws.io.registry import find_reader
from perception_ws.labels import KITTI3, SEMANTIC_KITTI, kitti_object_class
from perception_ws.scan import Scan

pytestmark = pytest.mark.real_data

FRAMES = ["000000", "000001", "000002"]


@pytest.fixture(scope="module")
def object_scans(real_data: Path) -> list[Scan]:
    return list(open_dataset(real_data / "kitti_object"))


def _raw_bin(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


# -- KITTI object frames -------------------------------------------------------------------------------


def test_object_folder_opens_as_its_frames(real_data: Path, object_scans: list[Scan]) -> None:
    root = real_data / "kitti_object"
    assert find_reader(root).name == "kitti-object"
    assert find_reader(root / "velodyne").name == "kitti-object"
    assert [s.name for s in object_scans] == FRAMES
    for frame, scan in zip(FRAMES, object_scans, strict=True):
        raw = _raw_bin(root / "velodyne" / f"{frame}.bin")
        assert scan.points.dtype.names == ("x", "y", "z", "intensity")
        assert all(scan.points.dtype[f] == np.float32 for f in ("x", "y", "z", "intensity"))
        np.testing.assert_array_equal(scan.xyz, raw[:, :3])
        np.testing.assert_array_equal(scan.points["intensity"], raw[:, 3])
        assert scan.sensor == "hdl64e"
        assert isinstance(scan.calib, KittiCalib)
        with Image.open(root / "image_2" / f"{frame}.png") as png:
            assert scan.image is not None
            assert scan.image.shape == (png.height, png.width, 3)
        assert scan.image.dtype == np.uint8
        assert scan.image.std() > 10
        objects = [o for o in read_kitti_labels(root / "label_2" / f"{frame}.txt") if o.type != DONT_CARE]
        assert [b.name for b in scan.boxes] == [o.type for o in objects]
        assert [b.label for b in scan.boxes] == [kitti_object_class(o.type) for o in objects]
        for box, obj in zip(scan.boxes, objects, strict=True):
            np.testing.assert_allclose(box.size, [obj.dimensions[2], obj.dimensions[1], obj.dimensions[0]])


def test_every_box_holds_its_object(object_scans: list[Scan]) -> None:
    cars = 0
    for scan in object_scans:
        xyz = scan.xyz
        for box in scan.boxes:
            inside = box.contains(xyz)
            assert box.num_points == inside.sum() > 0, f"{scan.name} {box.name}"
            cars += box.name == "Car"
            length, width, height = box.size
            if length > 1.2 * width:
                # the heading is right: turned a quarter, an elongated box loses points
                turned = Box3D(box.center, box.size, box.yaw + np.pi / 2)
                assert turned.contains(xyz).sum() < inside.sum(), f"{scan.name} {box.name}"
            if inside.sum() >= 50:
                # the centre is lifted right: the object's points span the box's height
                z = xyz[inside, 2]
                assert z.max() - z.min() > 0.75 * height, f"{scan.name} {box.name}"
    assert cars == 2


def test_point_labels_follow_box_membership(object_scans: list[Scan]) -> None:
    for scan in object_scans:
        assert scan.labels is not None
        assert scan.instances is not None
        xyz = scan.xyz
        membership = np.stack([b.contains(xyz) for b in scan.boxes], axis=1)
        volumes = np.array([np.prod(b.size) for b in scan.boxes])
        in_none = ~membership.any(axis=1)
        assert np.all(scan.labels[in_none] == 0)
        assert np.all(scan.instances[in_none] == 0)
        # a point in several boxes belongs to the smallest one
        smallest = np.argmin(np.where(membership, volumes, np.inf), axis=1)
        expected_instance = np.where(in_none, 0, smallest + 1)
        np.testing.assert_array_equal(scan.instances, expected_instance)
        box_labels = np.array([b.label for b in scan.boxes])
        np.testing.assert_array_equal(scan.labels, np.where(in_none, 0, box_labels[smallest]))
        assert set(np.unique(scan.labels)) <= set(KITTI3.ids)


def test_single_object_scan_loads_with_its_frame_data(real_data: Path, object_scans: list[Scan]) -> None:
    path = real_data / "kitti_object" / "velodyne" / "000001.bin"
    assert find_reader(path).name == "kitti-object"
    scan = load(path)
    whole = object_scans[1]
    assert scan.name == "000001"
    assert scan.calib is not None
    assert scan.image is not None
    np.testing.assert_array_equal(scan.calib.P2, whole.calib.P2)  # type: ignore[union-attr]
    assert [(b.name, b.num_points) for b in scan.boxes] == [(b.name, b.num_points) for b in whole.boxes]
    np.testing.assert_array_equal(scan.labels, whole.labels)


def _copy_object_frame(real_data: Path, dest: Path, frame: str = "000000") -> Path:
    src = real_data / "kitti_object"
    for folder, suffix in (("velodyne", ".bin"), ("calib", ".txt"), ("label_2", ".txt")):
        (dest / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(src / folder / f"{frame}{suffix}", dest / folder / f"{frame}{suffix}")
    return dest


def test_object_frame_without_image_and_labels(real_data: Path, tmp_path: Path) -> None:
    root = _copy_object_frame(real_data, tmp_path / "testing")
    (root / "label_2" / "000000.txt").unlink()
    dataset = open_dataset(root)
    assert any("label_2" in n for n in dataset.notes)
    assert any("image_2" in n for n in dataset.notes)
    scan = dataset[0]
    assert scan.image is None
    assert scan.boxes == []
    assert scan.labels is None
    assert scan.calib is not None


def test_broken_object_folders(real_data: Path, tmp_path: Path) -> None:
    root = _copy_object_frame(real_data, tmp_path / "training")
    shutil.copy(root / "velodyne" / "000000.bin", root / "velodyne" / "000007.bin")
    with pytest.raises(DatasetError, match="000007"):
        open_dataset(root)
    (root / "velodyne" / "000007.bin").unlink()
    label = root / "label_2" / "000000.txt"
    label.write_text(label.read_text() + "Car 0.0 0 1.0 10 20 30\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(root)[0]
    assert "000000.txt" in str(info.value)
    assert "line 2" in str(info.value)
    assert "expected 15" in str(info.value)


# -- SemanticKITTI -------------------------------------------------------------------------------------


def test_semantickitti_scan_matches_the_raw_files(real_data: Path) -> None:
    folder = real_data / "semantickitti"
    assert find_reader(folder / "000000.bin").name == "semantickitti"
    scan = load(folder / "000000.bin")
    raw = np.fromfile(folder / "000000.label", dtype=np.uint32)
    semantic_raw, instance_raw = raw & 0xFFFF, raw >> 16
    assert scan.semantic is not None
    assert scan.labels is not None
    assert scan.instances is not None
    assert len(scan) == len(raw) == len(_raw_bin(folder / "000000.bin"))
    car, person = SEMANTIC_KITTI.id_of("car"), SEMANTIC_KITTI.id_of("person")
    # raw ids: 10 car, 252 moving-car; 30 person, 254 moving-person
    assert (scan.semantic == car).sum() == np.isin(semantic_raw, [10, 252]).sum() > 0
    assert (scan.semantic == person).sum() == np.isin(semantic_raw, [30, 254]).sum() > 0
    assert (scan.labels == KITTI3.id_of("car")).sum() == np.isin(semantic_raw, [10, 252]).sum()
    assert (scan.labels == KITTI3.id_of("pedestrian")).sum() == np.isin(semantic_raw, [30, 254]).sum()
    # instances: one id per (class, raw instance); moving-car 1 and moving-person 1 are two objects
    pairs = {(int(c), int(i)) for c, i in zip(scan.semantic, instance_raw, strict=True) if i > 0}
    assert len(set(np.unique(scan.instances)) - {0}) == len(pairs)
    assert np.all((scan.instances == 0) == (instance_raw == 0))
    moving_car_1 = scan.instances[(semantic_raw == 252) & (instance_raw == 1)]
    moving_person_1 = scan.instances[(semantic_raw == 254) & (instance_raw == 1)]
    assert len(np.unique(moving_car_1)) == len(np.unique(moving_person_1)) == 1
    assert moving_car_1[0] != moving_person_1[0]


def test_semantickitti_sequence_layout(real_data: Path, tmp_path: Path) -> None:
    sequence = tmp_path / "sequences" / "08"
    (sequence / "velodyne").mkdir(parents=True)
    (sequence / "labels").mkdir()
    shutil.copy(real_data / "semantickitti" / "000000.bin", sequence / "velodyne" / "000000.bin")
    shutil.copy(real_data / "semantickitti" / "000000.label", sequence / "labels" / "000000.label")
    calib = (real_data / "kitti_object" / "calib" / "000000.txt").read_text()
    (sequence / "calib.txt").write_text(calib.replace("Tr_velo_to_cam:", "Tr:").replace("R0_rect:", "Unused:"))
    for path in (sequence, sequence / "velodyne", sequence / "velodyne" / "000000.bin"):
        assert find_reader(path).name == "semantickitti"
        scan = load(path)
        assert scan.semantic is not None
        assert (scan.semantic > 0).mean() > 0.9
        assert scan.calib is not None
        assert np.array_equal(scan.calib.R0_rect, np.eye(3))


def test_label_length_must_match_the_scan(real_data: Path, tmp_path: Path) -> None:
    shutil.copy(real_data / "semantickitti" / "000000.bin", tmp_path / "000000.bin")
    raw = np.fromfile(real_data / "semantickitti" / "000000.label", dtype=np.uint32)
    raw[:-1].tofile(tmp_path / "000000.label")
    with pytest.raises(DatasetError, match=r"000000\.label.*labels but its scan has"):
        load(tmp_path / "000000.bin")
    (tmp_path / "000000.label").write_bytes(raw.tobytes()[:-2])
    with pytest.raises(DatasetError, match="not a whole number"):
        load(tmp_path / "000000.bin")


# -- plain .bin scans ----------------------------------------------------------------------------------


def test_odometry_folder_of_bins(real_data: Path) -> None:
    folder = real_data / "kitti_odometry_00"
    assert find_reader(folder).name == "kitti-bin"
    dataset = open_dataset(folder)
    assert [s.name for s in dataset] == ["000094", "000095", "000198", "000199"]
    scan = dataset[2]
    raw = _raw_bin(folder / "000198.bin")
    np.testing.assert_array_equal(scan.xyz, raw[:, :3])
    np.testing.assert_array_equal(scan.points["intensity"], raw[:, 3])
    assert scan.labels is None
    assert scan.semantic is None
    assert scan.calib is None
    assert scan.sensor == "hdl64e"
    assert len(load(folder / "000095.bin")) == len(_raw_bin(folder / "000095.bin"))


def test_bin_of_wrong_size_names_the_file(real_data: Path, tmp_path: Path) -> None:
    data = (real_data / "kitti_odometry_00" / "000094.bin").read_bytes()
    bad = tmp_path / "broken.bin"
    bad.write_bytes(data[:-3])
    with pytest.raises(DatasetError, match=r"broken\.bin.*16 bytes per point"):
        load(bad)
    bad.unlink()
    (tmp_path / "a.bin").write_bytes(data[:160])
    (tmp_path / "b.bin").write_bytes(data[:160])
    with pytest.raises(DatasetError, match="holds 2 frames"):
        load(tmp_path)
    assert [len(s) for s in open_dataset(tmp_path)] == [10, 10]


def test_overlapping_boxes_give_points_to_the_smaller_box(object_scans: list[Scan]) -> None:
    scan = object_scans[2]
    car = next(b for b in scan.boxes if b.name == "Car")
    inner = Box3D(car.center, car.size * np.array([0.5, 1.0, 1.0]), car.yaw, label=KITTI3.id_of("cyclist"))
    labels, instances = label_points_in_boxes(scan.xyz, [inner, car])  # the larger box listed last
    in_car, in_inner = car.contains(scan.xyz), inner.contains(scan.xyz)
    assert 0 < in_inner.sum() < in_car.sum()
    assert np.all(instances[in_inner] == 1)
    assert np.all(labels[in_inner] == KITTI3.id_of("cyclist"))
    assert np.all(instances[in_car & ~in_inner] == 2)
    assert np.all(labels[in_car & ~in_inner] == car.label)
    assert (inner.num_points, car.num_points) == (in_inner.sum(), in_car.sum())


def test_mirrored_heading_loses_points_on_a_turned_object(object_scans: list[Scan]) -> None:
    turned = [(s, b) for s in object_scans for b in s.boxes if abs(np.sin(2 * b.yaw)) > 0.1]
    assert turned  # frame 000002's Misc object stands ~6 degrees off the axes
    for scan, box in turned:
        mirrored = Box3D(box.center, box.size, -box.yaw)
        assert mirrored.contains(scan.xyz).sum() < 0.95 * box.num_points


@pytest.mark.parametrize("rotation_y", [0.0, np.pi / 4, -np.pi / 2, 2.5, -3.0])
def test_heading_follows_kittis_convention(object_scans: list[Scan], rotation_y: float) -> None:
    calib = object_scans[0].calib
    assert calib is not None
    obj = KittiObject("Car", 0.0, 0, 0.0, (0, 0, 10, 10), (1.5, 1.6, 4.0), (2.0, 1.6, 20.0), rotation_y)
    box = object_to_box(obj, calib)
    # camera x is LiDAR -y and camera z is LiDAR x: the LiDAR yaw is -rotation_y - pi/2, up to the
    # small rotation between the two frames
    error = np.angle(np.exp(1j * (box.yaw - (-rotation_y - np.pi / 2))))
    assert abs(error) < 0.02
    # the bottom centre sits h/2 below the box centre, on the ground ~1.7 m below the LiDAR
    bottom = calib.velo_to_cam(box.center[None, :] - [0.0, 0.0, box.size[2] / 2])[0]
    np.testing.assert_allclose(bottom, obj.location, atol=0.05)
