"""SqueezeSeg .npy range images (the 4 real KITTI frames) and GTA-LiDAR-style scans made from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.errors import DatasetError
from perception_ws.io import load, open_dataset
from perception_ws.io.registry import find_reader
from perception_ws.io.squeezeseg import open_gta

FRAME = "2011_09_26_0001_0000000040.npy"


@pytest.fixture(scope="module")
def frames(real_data: Path) -> Path:
    return real_data / "kitti_squeezeseg"


@pytest.mark.real_data
def test_real_frames_become_their_valid_pixels(frames: Path) -> None:
    assert find_reader(frames).name == "squeezeseg"
    dataset = open_dataset(frames)
    files = sorted(frames.glob("*.npy"))
    assert len(dataset) == len(files) == 4
    for path, scan in zip(files, dataset, strict=True):
        array = np.load(path)
        valid = array[:, :, 4] > 0
        assert scan.name == path.stem
        assert scan.sensor == "hdl64e"
        assert len(scan) == valid.sum() > 20000
        assert scan.points.dtype.names == ("x", "y", "z", "intensity", "range", "ring")
        assert scan.pixels is not None
        assert scan.labels is not None
        assert scan.range_image is not None
        rows, cols = scan.pixels[:, 0], scan.pixels[:, 1]
        assert np.all(valid[rows, cols])
        assert len(np.unique(rows * 512 + cols)) == len(scan)
        for channel, field in enumerate(("x", "y", "z", "intensity", "range")):
            np.testing.assert_array_equal(scan.points[field], array[rows, cols, channel])
            assert scan.points[field].dtype == np.float32
        np.testing.assert_array_equal(scan.points["ring"], rows)
        assert scan.points["ring"].dtype == np.uint16
        np.testing.assert_array_equal(scan.labels, array[rows, cols, 5].astype(np.int32))
        assert (scan.labels == 1).sum() == (array[:, :, 5] == 1).sum() > 500  # every car pixel is a valid one
        np.testing.assert_array_equal(scan.range_image, array)
        # the range channel is the points' distance from the sensor
        np.testing.assert_allclose(np.linalg.norm(scan.xyz, axis=1), scan.points["range"], rtol=1e-3, atol=0.02)


@pytest.mark.real_data
def test_ring_is_the_laser_row_top_first(frames: Path) -> None:
    scan = load(frames / FRAME)
    elevation = np.degrees(np.arcsin(scan.points["z"] / scan.points["range"]))
    ring = scan.points["ring"]
    # the HDL-64E's top laser looks ~2 degrees up, its bottom one ~25 degrees down
    mean_by_ring = np.array([elevation[ring == r].mean() for r in (2, 30, 60)])
    assert np.all(np.diff(mean_by_ring) < 0)


def _gta_copies(frames: Path, folder: Path) -> tuple[Path, Path]:
    array = np.load(frames / FRAME)
    five = folder / "five.npy"
    np.save(five, np.delete(array, 3, axis=2))  # x, y, z, range, label: GTA-LiDAR's layout
    zeroed = array.copy()
    zeroed[:, :, 3] = 0.0
    six = folder / "six_zero_intensity.npy"
    np.save(six, zeroed)
    return five, six


@pytest.mark.real_data
def test_gta_like_files_have_no_intensity(frames: Path, tmp_path: Path) -> None:
    five, six = _gta_copies(frames, tmp_path)
    real = load(frames / FRAME)
    for path in (five, six):
        assert find_reader(path).name == "squeezeseg"
        scan = load(path)
        assert scan.field("intensity") is None
        assert scan.sensor is None
        assert scan.points.dtype.names == ("x", "y", "z", "range", "ring")
        np.testing.assert_array_equal(scan.xyz, real.xyz)
        np.testing.assert_array_equal(scan.points["range"], real.points["range"])
        np.testing.assert_array_equal(scan.labels, real.labels)
        np.testing.assert_array_equal(scan.pixels, real.pixels)


@pytest.mark.real_data
def test_gta_release_layout_is_recognised(frames: Path, tmp_path: Path) -> None:
    root = tmp_path / "GTAV"
    for sequence in ("1", "2"):
        (root / sequence).mkdir(parents=True)
        _gta_copies(frames, root / sequence)
    assert find_reader(root).name == "gta-lidar"
    dataset = open_dataset(root)
    assert [s.name for s in dataset] == ["1/five", "1/six_zero_intensity", "2/five", "2/six_zero_intensity"]
    assert all(s.field("intensity") is None and s.sensor is None for s in dataset)


@pytest.mark.real_data
def test_open_gta_keeps_a_rendered_intensity(frames: Path) -> None:
    scan = open_gta(frames / FRAME)[0]
    assert scan.sensor is None
    np.testing.assert_array_equal(scan.points["intensity"], load(frames / FRAME).points["intensity"])


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((64, 512, 4), np.float32), "expected H x W x 6"),
        (np.zeros((64, 512), np.float32), "expected H x W x 6"),
        (np.zeros((64, 512, 6), np.int32), "expected float32"),
        (np.full((64, 512, 6), 7.0, np.float32), "KITTI-3 ids"),
    ],
)
def test_bad_arrays_are_rejected(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DatasetError, match=message) as info:
        load(path)
    assert "bad.npy" in str(info.value)


def test_not_a_npy_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.npy"
    path.write_bytes(b"not numpy at all")
    with pytest.raises(DatasetError, match=r"corrupt\.npy"):
        load(path)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DatasetError, match=r"objects\.npy"):
        load(tmp_path / "objects.npy")
