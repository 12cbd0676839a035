"""The `perception` command line on the real data: info, sensors, viz, demo, and its error contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perception_ws.cli import main


@pytest.mark.real_data
def test_info_describes_a_raw_packet_bag_as_decoded_scans(real_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = next(p for p in (real_data / "vlp16").iterdir() if p.is_dir())
    assert main(["info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "bag, 4 frame(s)" in out
    assert "topic /velodyne_packets holds raw Velodyne packets (velodyne_msgs/msg/VelodyneScan): decoded" in out
    assert "fields: x, y, z, intensity, ring, time" in out
    assert "sensor: vlp16" in out


@pytest.mark.real_data
def test_info_describes_a_kitti_object_frame(real_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(real_data / "kitti_object")]) == 0
    out = capsys.readouterr().out
    assert "kitti-object, 3 frame(s)" in out
    assert "x, y, z, intensity" in out
    assert "calib" in out
    assert "image" in out


def test_sensors_lists_every_builtin_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensors"]) == 0
    out = capsys.readouterr().out
    for name in ("hdl64e", "hdl32e", "vlp16", "vlp32c", "vls128", "os1-64", "os1-128"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name


@pytest.mark.real_data
def test_viz_writes_a_picture_with_the_camera_overlay(real_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "frame.png"
    assert main(["viz", str(real_data / "kitti_object"), "--frame", "1", "--out", str(out)]) == 0
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape[0] > 400
    assert picture.shape[1] > 800
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50  # a real drawing, not a blank canvas


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["info", "/nonexistent/scan.bin"], "no such file or folder"),
        (["viz", "{data}/kitti_object", "--frame", "7", "--out", "{tmp}/x.png"], "frame 7 does not exist"),
        (["viz", "{data}/kitti_squeezeseg", "--sensor", "hdl65", "--out", "{tmp}/x.png"], "hdl65"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_status_2(
    argv: list[str], expected: str, real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = [a.format(data=real_data, tmp=tmp_path) for a in argv]
    assert main(filled) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"perception {argv[0]}: error:")
    assert expected in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.real_data
def test_demo_summarises_every_source_and_draws_them(real_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("kitti_squeezeseg", "vlp16"):
        (data / name).symlink_to(real_data / name)
    out = tmp_path / "out"
    assert main(["demo", "--data", str(data), "--out", str(out), "--frames", "1"]) == 0
    summary = (out / "summary.txt").read_text()
    squeezeseg = next(line for line in summary.splitlines() if line.startswith("kitti_squeezeseg"))
    # the fitted HDL-64E model reproduces the released pixels of the frame
    assert float(squeezeseg.split()[5]) >= 99.5
    assert "vlp16" in summary
    bag_row = next(line.split() for line in summary.splitlines() if line.startswith("vlp16/") and " bag " in line)
    assert bag_row[2:5] == ["4", "14885", "vlp16"]  # frames, points of the first, sensor: the packets decoded
    assert (out / "kitti_squeezeseg.png").stat().st_size > 10_000
    assert any(p.name.startswith("vlp16_") and p.suffix == ".png" for p in out.iterdir())
