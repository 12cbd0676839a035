"""`perception train --data`: the SOURCE@WEIGHT list (checked in one line), samples mixed by weight from real
folders (the real SqueezeSeg frames and GTA-LiDAR-layout copies of them), intensity rendered by a learned renderer
for the frames that have none (GTA-LiDAR layout, a stand-in CARLA session) under --intensity lir:PATH, and a CARLA
source without a server."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from perception_ws.adapt.lir_model import load_lir
from perception_ws.errors import PerceptionError, SimulatorError
from perception_ws.training.config import TrainConfig
from perception_ws.training.data_spec import make_source, parse_data
from perception_ws.training.mixed_samples import CarlaSamples, MixedSource
from perception_ws.training.samples import FolderSource
from tests.helpers.carla import CAR_POINTS, ROAD_POINTS, StandInSession
from tests.helpers.training import tiny_lir_file


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


def _gta_copy(kitti: Path, folder: Path) -> Path:
    """GTA-LiDAR-layout copies (x, y, z, range, label: no intensity) of two real SqueezeSeg frames."""
    folder.mkdir()
    for path in sorted(kitti.glob("*.npy"))[:2]:
        np.save(folder / path.name, np.delete(np.load(path), 3, axis=2))
    return folder


@pytest.mark.real_data
def test_samples_are_drawn_by_weight_from_real_folders(real_data: Path, tmp_path: Path) -> None:
    kitti = real_data / "kitti_squeezeseg"
    gta = _gta_copy(kitti, tmp_path / "GTAV")
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


@pytest.mark.real_data
def test_lir_renders_the_intensity_of_frames_without_any(real_data: Path, tmp_path: Path) -> None:
    kitti = real_data / "kitti_squeezeseg"
    gta = _gta_copy(kitti, tmp_path / "GTAV")
    lir = tiny_lir_file(tmp_path / "lir.pt")
    rendered = make_source(f"{kitti}@0.5,{gta}@0.5", intensity=f"lir:{lir}", classes="kitti3", seed=1)
    as_stored = make_source(f"{kitti}@0.5,{gta}@0.5", intensity="model", classes="kitti3", seed=1)
    assert isinstance(rendered, MixedSource)
    assert isinstance(as_stored, MixedSource)
    assert rendered.describe()["sources"][1]["missing_intensity"] == f"rendered by lir:{lir}"
    network = load_lir(lir)
    assert {rendered.source_of(i) for i in range(8)} == {0, 1}
    for index in range(8):
        image, labels = rendered.sample(index)
        stored, stored_labels = as_stored.sample(index)
        np.testing.assert_array_equal(labels, stored_labels)
        np.testing.assert_array_equal(image[..., [0, 1, 2, 4, 5]], stored[..., [0, 1, 2, 4, 5]])
        mask = stored[..., 5] > 0
        if rendered.source_of(index) == 0:  # real KITTI frames keep their own intensity
            np.testing.assert_array_equal(image, stored)
            continue
        assert not stored[..., 3].any()  # --intensity model cannot render a GTA frame: it stays 0
        expected = network.render(stored[..., :3], mask)
        np.testing.assert_allclose(image[..., 3][mask], expected[mask], atol=1e-6)
        assert not image[..., 3][~mask].any()
        assert image[..., 3][mask].std() > 0


def test_lir_renders_a_carla_sweeps_intensity(tmp_path: Path) -> None:
    lir = tiny_lir_file(tmp_path / "lir.pt")
    plain = CarlaSamples("stand-in", 2000, columns=512, open_session=StandInSession)
    rendered = CarlaSamples("stand-in", 2000, columns=512, intensity=f"lir:{lir}", open_session=StandInSession)
    (image, labels), (stored, _) = rendered.sample(0), plain.sample(0)
    mask = stored[..., 5] > 0
    assert mask.sum() == CAR_POINTS + ROAD_POINTS
    assert not stored[..., 3].any()  # the semantic LiDAR has no intensity
    expected = load_lir(lir).render(stored[..., :3], mask)
    np.testing.assert_allclose(image[..., 3][mask], expected[mask], atol=1e-6)
    assert image[..., 3][mask].any()
    assert (labels[mask] == 1).sum() == CAR_POINTS


def test_a_carla_source_without_a_server_names_host_and_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = make_source(f"carla://127.0.0.1:{port}")
    with pytest.raises(SimulatorError, match=rf"no CARLA server answered at 127\.0\.0\.1:{port}"):
        source.sample(0)
