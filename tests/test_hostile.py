"""The hostile probe's bad inputs, each through the real `perception` command in its own process.

Every row must end with exit status 2 and exactly one line on stderr naming the problem: no traceback,
whatever the input. Disk full is a real ENOSPC: the command runs in a private mount namespace
(``unshare -Urm``) on a tiny tmpfs, and what it had written is inspected afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perception_ws.io import open_dataset
from perception_ws.models.weights import DEFAULT_WEIGHTS, manifest_path
from tests.helpers.data import REPO

#: the command as a user runs it (``perception`` is this module's console script).
PERCEPTION = [sys.executable, "-m", "perception_ws.cli"]


def run_cli(
    argv: list[str], cwd: Path, prefix: tuple[str, ...] = (), tmpdir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    return subprocess.run([*prefix, *PERCEPTION, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_one_line(result: subprocess.CompletedProcess[str], command: str, expected: str) -> str:
    err = result.stderr.strip()
    assert "Traceback" not in err, err
    assert result.returncode == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"perception {command}: error:"), err
    assert expected in err, err
    return err


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of bad inputs (and one good scan to give bad options to)."""
    folder = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(14)
    good = rng.uniform(-20, 20, (2000, 4)).astype(np.float32)
    good[:, 2] = rng.uniform(-2, 1, 2000)
    good.tofile(folder / "good.bin")
    np.full((500, 4), np.nan, np.float32).tofile(folder / "all_nan.bin")
    np.full((500, 4), np.inf, np.float32).tofile(folder / "all_inf.bin")
    (folder / "odd_size.bin").write_bytes(bytes(4 * 4 * 10 + 3))  # not a whole number of x y z i records
    (folder / "empty.pcd").write_bytes(b"")
    (folder / "garbage.pcd").write_bytes(b"# .PCD v0.7\nFIELDS x y z\nSIZE 4 4\nDATA binary\n" + bytes(50))
    (folder / "garbage.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex -3\nend_header\n")
    (folder / "a_file").write_text("not a folder\n")
    (folder / "nothing").mkdir()
    (folder / "pickle.pt").write_bytes(b"\x80\x04K\x01.")  # a pickle without the manifest a weights file needs
    shutil.copy(DEFAULT_WEIGHTS, folder / "huge.pt")
    manifest = json.loads(manifest_path(DEFAULT_WEIGHTS).read_text())
    manifest["model"]["num_classes"] = 10**9  # 2.3 TB of classifier, if anything were built from it
    (folder / "huge.json").write_text(json.dumps(manifest))
    return folder


ROWS = [
    # (argv, the fragment the one line must hold)
    (["viz", "all_nan.bin", "--out", "x.png"], "no point with finite coordinates"),
    (["viz", "all_inf.bin", "--out", "x.png"], "no point with finite coordinates"),
    (["viz", "good.bin", "--out", "x.png", "--fov", "0"], "fov_deg 0.0"),
    (["viz", "good.bin", "--out", "x.png", "--fov", "nan"], "fov_deg nan"),
    (["viz", "good.bin", "--out", "x.png", "--sensor", "missing.yaml"], "missing.yaml"),
    (["viz", "nothing", "--out", "x.png"], "nothing"),
    (["viz", "good.bin", "--out", "x.png", "--frame", "3"], "frame 3 does not exist"),
    (["info", "odd_size.bin"], "odd_size.bin"),
    (["info", "empty.pcd"], "empty.pcd"),
    (["info", "garbage.pcd"], "garbage.pcd"),
    (["info", "garbage.ply"], "garbage.ply"),
    (["train", "--out", "run", "--device", "bogus"], "device 'bogus' is not a torch device"),
    (["train", "--out", "a_file"], "a_file exists and is not a folder"),
    (["train", "--out", "a_file/run"], "a_file exists and is not a folder"),
    (["train", "--out", "run", "--data", "no_such_folder"], "no_such_folder"),
    (["train", "--out", "run", "--model", "pointnet"], "unknown model 'pointnet'"),
    (["eval", "--weights", "huge.pt", "--data", "good.bin"], "num_classes must be in 2..256, got 1000000000"),
    (["eval", "--weights", "pickle.pt", "--data", "good.bin"], "no manifest"),
    (["eval", "--data", "good.bin", "--sensor", "bogus"], "unknown sensor 'bogus'"),
    (["eval", "--data", "good.bin", "--fov", "0"], "fov_deg 0.0"),
    (["sim", "generate", "--out", "a_file", "--scenes", "1"], "exists and is not a folder"),
    (["sim", "generate", "--out", "ds", "--scenes", "1", "--sensor", "bogus"], "unknown sensor 'bogus'"),
]


@pytest.mark.parametrize(("argv", "expected"), ROWS, ids=[" ".join(argv) for argv, _ in ROWS])
def test_bad_input_gives_one_line_and_exit_status_2(argv: list[str], expected: str, bad: Path) -> None:
    assert_one_line(run_cli(argv, bad), argv[0], expected)
    assert not (bad / "x.png").exists()


@pytest.mark.real_data
def test_eval_refuses_an_unknown_sensor_even_where_the_data_names_its_own(real_data: Path, tmp_path: Path) -> None:
    argv = ["eval", "--data", str(real_data / "kitti_squeezeseg"), "--sensor", "hdl65", "--frames", "1"]
    assert_one_line(run_cli(argv, tmp_path), "eval", "unknown sensor 'hdl65'")


def test_viz_accepts_a_sensor_yaml_file(bad: Path, tmp_path: Path) -> None:
    sensor = tmp_path / "my_vlp16.yaml"
    shutil.copy(REPO / "perception_ws" / "calib" / "data" / "vlp16.yaml", sensor)
    result = run_cli(["viz", str(bad / "good.bin"), "--out", str(tmp_path / "v.png"), "--sensor", str(sensor)], bad)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "v.png").stat().st_size > 10_000


@pytest.mark.dds
def test_record_leaves_no_ros_log_folder_behind(tmp_path: Path) -> None:
    temp = tmp_path / "temp"  # the command's temp folder (TMPDIR): where its ROS log folder is made
    temp.mkdir()
    result = run_cli(["record", "--out", str(tmp_path / "r.mcap"), "--duration", "1"], tmp_path, tmpdir=temp)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.mcap").is_file()
    assert not list(temp.glob("perception_ros_log_*"))
    refused = run_cli(["record", "--out", str(tmp_path / "r.mcap"), "--config", "missing.yaml"], tmp_path, tmpdir=temp)
    assert refused.returncode == 2, refused.stderr
    assert not list(temp.glob("perception_ros_log_*"))


# -- disk full: a real ENOSPC on a tmpfs of a few hundred KiB in a private mount namespace -------------


def _namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "-Urm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_namespaces = pytest.mark.skipif(
    not _namespaces_work(), reason="needs `unshare -Urm` (user and mount namespaces) to mount a tiny tmpfs"
)


def on_full_disk(argv: list[str], tmp_path: Path, size_kib: int) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``perception argv`` with ``{disk}`` on a fresh ``size_kib`` tmpfs; returns the result and a copy of
    what was on that tmpfs afterwards (the mount vanishes with the namespace)."""
    disk, saved = tmp_path / "disk", tmp_path / "saved"
    disk.mkdir()
    saved.mkdir()
    mount = f'mount -t tmpfs -o size={size_kib}k tmpfs "{disk}" || exit 99'
    script = f'{mount}; "$@"; code=$?; cp -a "{disk}/." "{saved}"; exit $code'
    argv = [a.format(disk=disk) for a in argv]
    result = run_cli(argv, tmp_path, prefix=("unshare", "-Urm", "sh", "-c", script, "sh"))
    assert result.returncode != 99, "could not mount the tmpfs"
    return result, saved


@needs_namespaces
def test_sim_generate_on_a_full_disk_says_so_and_keeps_the_frames_it_wrote(tmp_path: Path) -> None:
    # frames of about 28 KiB: the first scene's two and the manifest fit in 100 KiB, the second scene's do not
    argv = ["sim", "generate", "--out", "{disk}/ds", "--scenes", "2", "--frames", "2", "--sensor", "vlp16"]
    result, saved = on_full_disk([*argv, "--columns", "512", "--quiet"], tmp_path, size_kib=100)
    assert_one_line(result, "sim", f"no space left on device writing {tmp_path / 'disk' / 'ds'}")
    written = sorted(p.name for p in (saved / "ds").rglob("*") if p.is_file())
    assert not [name for name in written if name.endswith(".tmp")]  # nothing half-written
    dataset = open_dataset(saved / "ds")
    assert 0 < len(dataset) < 4  # the manifest lists the frames that fit, and each reads back whole
    assert all(len(scan) > 0 for scan in dataset)


@needs_namespaces
@pytest.mark.real_data
def test_train_on_a_full_disk_says_so(real_data: Path, tmp_path: Path) -> None:
    argv = ["train", "--out", "{disk}/run", "--data", str(real_data / "kitti_squeezeseg")]
    options = ["--steps", "2", "--batch-size", "1", "--workers", "0", "--device", "cpu", "--checkpoint-every", "1"]
    result, saved = on_full_disk([*argv, *options, "--quiet"], tmp_path, size_kib=64)
    assert_one_line(result, "train", "no space left on device writing")
    assert "run" in result.stderr
    assert not [p for p in saved.rglob("*") if p.name.endswith(".tmp")]
