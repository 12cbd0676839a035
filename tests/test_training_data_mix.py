"""`perception train --data`: the SOURCE@WEIGHT list (checked in one line), samples mixed by weight from real
folders (the real SqueezeSeg frames and GTA-LiDAR-layout copies of them), and a CARLA source without a server."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from perception_ws.errors import PerceptionError, SimulatorError
from perception_ws.training.config import TrainConfig
from perception_ws.training.data_spec import make_source, parse_data
from perception_ws.training.mixed_samples import MixedSource
from perception_ws.training.samples import FolderSource


def test_data_lists_parse_with_weights() -> None:
    assert parse_data("sim") == [("sim", 1.0)]
    assert parse_data("sim@0.7, /data/GTAV@0.3") == [("sim", 0.7), ("/data/GTAV", 0.3)]
    assert parse_data("carla://localhost:2000@2") == [("carla://localhost:2000", 2.0)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sim@0", r"--data entry 'sim@0': expected SOURCE or SOURCE@WEIGHT with a weight > 0"),
        ("sim@x", r"--data entry 'sim@x'"),
        ("@1", r"--data entry '@1'"),
        ("carla://localhost", r"--data entry 'carla://localhost': expected carla://HOST:PORT"),
        ("sim-gpu,sim", r"sim-gpu renders whole batches on the device; it cannot be mixed"),
        (" , ", r"--data is empty"),
    ],
)
def test_bad_data_lists_fail_in_one_line(spec: str, message: str) -> None:
    with pytest.raises(PerceptionError, match=message):
        TrainConfig(data=spec)


def test_a_carla_source_trains_without_data_workers() -> None:
    with pytest.raises(PerceptionError, match="use --workers 0"):
        TrainConfig(data="carla://localhost:2000", workers=2)


@pytest.mark.real_data
def test_samples_are_drawn_by_weight_from_real_folders(real_data: Path, tmp_path: Path) -> None:
    kitti = real_data / "kitti_squeezeseg"
    gta = tmp_path / "GTAV"
    gta.mkdir()
    for path in sorted(kitti.glob("*.npy"))[:2]:
        np.save(gta / path.name, np.delete(np.load(path), 3, axis=2))
    mixed = make_source(f"{kitti}@0.7,{gta}@0.3", seed=3)
    assert isinstance(mixed, MixedSource)
    assert [s.describe()["path"] for s in mixed.sources] == [str(kitti), str(gta)]
    picks = np.array([mixed.source_of(i) for i in range(4000)])
    assert abs((picks == 0).mean() - 0.7) < 0.03
    assert [mixed.source_of(i) for i in range(50)] == [mixed.source_of(i) for i in range(50)]  # by index
    for index in range(12):
        chosen = mixed.sources[mixed.source_of(index)]
        assert isinstance(chosen, FolderSource)
        assert chosen.size is not None
        image, labels = mixed.sample(index)
        expected_image, expected_labels = chosen.sample(index % chosen.size)
        np.testing.assert_array_equal(image, expected_image)
        np.testing.assert_array_equal(labels, expected_labels)
        # a GTA-layout frame has no intensity; the KITTI frame has
        assert bool(image[..., 3].any()) == (chosen.path == kitti)


def test_a_carla_source_without_a_server_names_host_and_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = make_source(f"carla://127.0.0.1:{port}")
    with pytest.raises(SimulatorError, match=rf"no CARLA server answered at 127\.0\.0\.1:{port}"):
        source.sample(0)
