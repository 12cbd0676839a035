"""`perception sim generate` and `perception sim compare`: what they write, print, and refuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perception_ws.cli import main
from perception_ws.io import load, open_dataset
from perception_ws.io.simdata import load_camera


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err  # one clear line, no traceback
    return err[0]


def test_generate_writes_a_dataset_and_resuming_it_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim"
    args = ["sim", "generate", "--out", str(out), "--scenes", "1", "--frames", "2", "--columns", "128"]
    assert main([*args, "--seed", "4", "--dropout", "measured", "--intensity", "off", "--quiet"]) == 0
    assert "2 of 2 frames" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["dropout"] == "measured"
    assert manifest["config"]["intensity"] == "off"
    assert manifest["config"]["seed"] == 4
    assert manifest["complete"]
    dataset = open_dataset(out)
    scan = dataset[1]
    assert scan.range_image is not None
    assert scan.range_image.shape == (64, 128, 6)
    assert not scan.points["intensity"].any()  # --intensity off
    before = {p.name: p.stat().st_mtime_ns for p in (out / "frames").iterdir()}
    assert main([*args, "--seed", "4", "--dropout", "measured", "--intensity", "off"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "frames").iterdir()} == before  # nothing rendered again
    resumed = capsys.readouterr()
    assert "2 of 2 frames" in resumed.out
    assert "2/2" in resumed.err  # the progress bar
    # the same folder with other settings: one line naming them
    assert main([*args, "--seed", "5", "--dropout", "measured", "--intensity", "off"]) == 2
    line = _error_line(capsys)
    assert line.startswith("perception sim: error:")
    assert "other settings (seed)" in line


def test_generate_with_camera_stores_a_picture_whose_masks_match_the_lidar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cam"
    args = ["sim", "generate", "--out", str(out), "--scenes", "1", "--frames", "1", "--columns", "256", "--camera"]
    assert main([*args, "--quiet"]) == 0
    assert "1 of 1 frames" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["camera"] is True
    path = out / manifest["frames"][0]["file"]
    scan, frame = load(path), load_camera(path)
    assert frame is not None
    assert scan.image is not None
    assert scan.calib is not None
    height, width = frame.rgb.shape[:2]
    assert frame.rgb.dtype == np.uint8
    assert frame.label.shape == frame.instance.shape == (height, width)
    np.testing.assert_array_equal(scan.image, frame.rgb)
    # the objects the LiDAR sees ahead are in the picture under the same instance ids and classes
    uv, depth = scan.calib.velo_to_image(scan.xyz)
    uv = np.where(np.isfinite(uv), uv, -1.0)  # NaN behind the camera
    col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    seen = (depth > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height) & (scan.instances > 0)
    assert seen.sum() > 200  # a street scene: cars ahead of the ego car
    agree = frame.instance[row[seen], col[seen]] == scan.instances[seen]
    assert agree.mean() > 0.8, agree.mean()  # the camera sits beside the LiDAR: parallax hides a few
    assert np.array_equal(frame.label[row[seen], col[seen]][agree], scan.labels[seen][agree])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sensor", "hdl65"], "hdl65"),
        (["--sensor", "vlp16", "--dropout", "measured"], "measured on hdl64e"),
    ],
)
def test_generate_refuses_bad_input_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["sim", "generate", "--out", str(tmp_path / "x"), "--scenes", "1", "--frames", "1", "--columns", "64"]
    assert main([*args, "--quiet", *extra]) == 2
    line = _error_line(capsys)
    assert line.startswith("perception sim: error:")
    assert message in line


@pytest.mark.parametrize(
    "bad", [["--scenes", "0"], ["--scenes", "two"], ["--workers", "0"], ["--dropout", "often"], ["--seed", "-3"]]
)
def test_generate_rejects_malformed_arguments(
    bad: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"--out": str(tmp_path / "x"), "--scenes": "1"}
    args.update(dict(zip(bad[::2], bad[1::2], strict=True)))
    with pytest.raises(SystemExit) as exit_info:
        main(["sim", "generate", *[item for pair in args.items() for item in pair]])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {bad[0]}" in err
    assert "Traceback" not in err


@pytest.mark.real_data
def test_compare_prints_the_table_and_writes_the_picture(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "report.png"
    code = main(
        [
            "sim",
            "compare",
            "--real",
            str(real_data / "semantickitti"),
            "--scenes",
            "1",
            "--frames",
            "1",
            "--out",
            str(png),
        ]
    )
    out = capsys.readouterr().out
    assert code in (0, 1)  # 0 when every statistic is within a factor of 2
    for name in ("row occupancy", "range histogram", "points per car", "intensity histogram"):
        assert name in out
    assert "1 simulated vs 1 real frames" in out
    assert f"wrote {png}" in out
    assert np.asarray(Image.open(png)).shape[:2] == (950, 1400)


@pytest.mark.real_data
def test_compare_reads_a_generated_folder_and_prints_json(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = tmp_path / "sim"
    assert main(["sim", "generate", "--out", str(sim), "--scenes", "1", "--frames", "1", "--quiet"]) == 0
    capsys.readouterr()
    png = tmp_path / "r.png"
    code = main(
        [
            "sim",
            "compare",
            "--real",
            str(real_data / "kitti_odometry_00"),
            "--sim",
            str(sim),
            "--out",
            str(png),
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == (0 if data["passed"] else 1)
    assert data["sim"]["frames"] == 1
    assert data["real"]["frames"] == 4
    assert len(data["statistics"]) == 4
    assert png.is_file()


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--real", "/nonexistent/real", "--scenes", "1"], "/nonexistent/real: no such file or folder"),
        (["--real", "{real}/vlp16", "--scenes", "1"], "holds no hdl64e scans"),
        (["--real", "{real}/semantickitti", "--sim", "/nonexistent/sim"], "no such dataset folder"),
        (["--real", "{real}/semantickitti", "--scenes", "1", "--out", "{tmp}/report.txt"], "must name a .png file"),
    ],
)
def test_compare_refuses_bad_input_with_one_line(
    args: list[str], message: str, real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = [a.format(real=real_data, tmp=tmp_path) for a in args]
    assert main(["sim", "compare", *filled]) == 2
    line = _error_line(capsys)
    assert line.startswith("perception sim: error:")
    assert message in line
