"""`colcon build` of the whole package against the venv's ROS 2 wheels (issue 13 item 6): what a ROS 2 user
gets in the install folder, so the colcon build cannot rot where CI has no ROS 2 install.

The build is scripts/colcon_build.sh (-DBUILD_TESTING=OFF: the wheels lack ament_cmake_pytest, so the
`colcon test` registration is checked only as text, by tests/test_package_manifest.py). One build per module,
into a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from perception_ws.ros_env import local_dds_env
from tests.helpers.data import REPO

pytestmark = pytest.mark.build

_EXECUTABLES = ("perception", "perception_node", "fusion_node", "sim_node")


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `perception_ws` prefix of a fresh colcon install (install/perception_ws)."""
    out = tmp_path_factory.mktemp("colcon")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the build sees only the venv
    # colcon's default folders; a developer's own `colcon build` may have left some before this test
    before = {name for name in ("build", "install", "log") if (REPO / name).exists()}
    done = subprocess.run(
        [str(REPO / "scripts" / "colcon_build.sh"), sys.prefix, str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"colcon build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    written = {name for name in ("build", "install", "log") if (REPO / name).exists()} - before
    assert not written, f"the build wrote {sorted(written)} into the source tree {REPO}"
    return out / "install" / "perception_ws"


def _installed_python(install: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` with the venv's Python after sourcing the workspace's local_setup.bash, from outside the repo."""
    env = local_dds_env({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    script = f'source "{install.parent}/local_setup.bash" && python3 -c "$0"'
    return subprocess.run(["bash", "-c", script, code], env=env, cwd="/", capture_output=True, text=True, check=False)


def test_the_node_executables_are_installed_for_ros2_run(install: Path) -> None:
    for name in _EXECUTABLES:
        path = install / "lib" / "perception_ws" / name
        assert path.is_file(), f"{path} missing"
        assert os.access(path, os.X_OK), f"{path} not executable"


def test_share_holds_the_manifest_launch_file_params_and_rviz_config(install: Path) -> None:
    share = install / "share" / "perception_ws"
    assert (share / "package.xml").read_bytes() == (REPO / "package.xml").read_bytes()
    assert (share / "launch" / "perception.launch.py").is_file()
    assert (share / "launch" / "perception.rviz").is_file()
    installed = sorted(p.name for p in (share / "config").glob("*.yaml"))
    assert installed == sorted(p.name for p in (REPO / "config").glob("*.yaml"))
    assert installed  # the params files exist at all
    # `ros2 run` / `ros2 launch` find the package through the ament index
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "perception_ws").is_file()


def test_the_installed_package_and_generated_messages_import_from_the_install(install: Path) -> None:
    # What lib/perception_ws/perception_node runs, imported rather than started: starting it would
    # spin a node until killed (it takes no --help).
    code = (
        "import perception_ws, perception_ws.msg, perception_ws.nodes.perception_node as node\n"
        "from perception_ws.msg import Detection3DArray, TrackArray\n"
        "Detection3DArray(); TrackArray()\n"
        "assert callable(node.main)\n"
        "print(perception_ws.__file__); print(perception_ws.msg.__file__); print(node.__file__)\n"
    )
    done = _installed_python(install, code)
    assert done.returncode == 0, done.stderr[-4000:]
    files = done.stdout.split()
    assert len(files) == 3
    for file in files:
        assert Path(file).is_relative_to(install), f"{file} imported from outside the install {install}"
