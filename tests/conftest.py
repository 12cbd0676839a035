"""Shared test fixtures: where the real data lives, and a local-DDS environment with an rclpy context.

Tests that read the real data take the ``real_data`` fixture and carry the ``real_data`` marker (a module's
``pytestmark`` where all its tests need it). Where the folder is absent they are skipped with one reason;
a test that takes the fixture without the marker fails, so a new one cannot error or skip unnoticed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.data import REPO

#: the real sensor data (../shared/data/real beside the repository; override with PERCEPTION_REAL_DATA).
REAL_DATA = Path(os.environ.get("PERCEPTION_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
MISSING_REAL_DATA = f"real data not found at {REAL_DATA}; set PERCEPTION_REAL_DATA to the shared/data/real folder"


def pytest_configure(config: pytest.Config) -> None:
    """Every `perception replay/record/run` a test starts is loopback-only unless the test removes the switch:
    those verbs otherwise use the caller's ROS environment, and no test's DDS traffic may leave this machine.
    And torch gets one thread by default (see below)."""
    from perception_ws.ros_env import LOCAL_DDS_SWITCH

    os.environ[LOCAL_DDS_SWITCH] = "1"
    # torch on one thread unless the caller says otherwise (read when torch is first imported, here and in
    # the processes tests start): with the cores busy (pytest -n 2, other jobs) two threads each spin-wait for
    # the other and run a network forward pass several times slower than one thread does
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads_restored() -> Iterator[None]:
    """Each test leaves torch's intra-op thread count as it found it. A segmenter with ``segmenter.threads`` set
    (the CPU presets: 2) sets it process-wide, as the node wants; in a test worker that setting would outlive the
    test, and every later forward pass in that worker would run on two spin-waiting threads beside the other
    worker (several times slower on 2 loaded cores; see pytest_configure)."""
    import torch  # imported by nearly every test worker anyway

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


@pytest.hookimpl(tryfirst=True)  # before the fixtures are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    marked = item.get_closest_marker("real_data") is not None
    if not marked and "real_data" in getattr(item, "fixturenames", ()):
        pytest.fail(f"{item.nodeid} uses the real_data fixture without @pytest.mark.real_data", pytrace=False)
    if marked and not REAL_DATA.is_dir():
        pytest.skip(MISSING_REAL_DATA)


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():  # only reached through request.getfixturevalue, which the hook above cannot see
        raise FileNotFoundError(MISSING_REAL_DATA)
    return REAL_DATA


@pytest.fixture(scope="session")
def front_onnx(real_data: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The shipped weights exported to ONNX at the node's front preset (64 x 512, 90 deg), once per test session
    (about 20 s on 2 loaded cores): shared by the onnxruntime, OpenVINO and int8 tests. Under pytest-xdist the
    workers share one export (the first to need it writes it into the run's common temporary folder under a
    lock; the other waits for it, then each copies it), as the xdist documentation does for session data. The
    `onnx` extra, which `make venv` installs, is imported first: missing, the run fails here instead of skipping."""
    import fcntl
    import importlib

    from perception_ws.models.onnx_export import PACKAGES, ExportShape, export_onnx
    from perception_ws.models.onnx_format import manifest_path

    for name in PACKAGES:
        importlib.import_module(name)
    base = tmp_path_factory.getbasetemp()
    folder = (base if worker_id == "master" else base.parent) / "front_onnx"
    folder.mkdir(exist_ok=True)
    out = folder / "front.onnx"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not manifest_path(out).is_file():  # written last (write_onnx): its presence means a complete export
            export_onnx(None, out, ExportShape(64, 512), real_data / "kitti_squeezeseg", fov_deg=90.0, frames=1)
    # each worker reads its own copy: onnxruntime's quantize_static writes a shape-inferred model beside its
    # input, so two workers quantising one shared file at once would overwrite each other's
    mine = tmp_path_factory.mktemp("onnx") / out.name
    shutil.copyfile(out, mine)
    shutil.copyfile(manifest_path(out), manifest_path(mine))
    return mine


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process (and the children it starts) on a fresh local-DDS domain: loopback only, a random
    domain id that children keep, ROS_LOG_DIR in a temporary folder. rclpy reads it at init."""
    from perception_ws.ros_env import DOMAIN_ID_OVERRIDE, local_dds_env

    env = local_dds_env()
    env[DOMAIN_ID_OVERRIDE] = env["ROS_DOMAIN_ID"]
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    shutil.rmtree(env["ROS_LOG_DIR"], ignore_errors=True)


@pytest.fixture
def ros_context(local_env: dict[str, str]) -> Iterator[Any]:
    """A fresh rclpy context inside :func:`local_env`, shut down after the test."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)
