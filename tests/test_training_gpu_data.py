"""``perception train --data sim-gpu`` on CPU torch: the images mean what the CPU path's mean, augmentation on
tensors equals the numpy augmentation, exact resume, the scene workers do not change the batches, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.cli import main
from perception_ws.sim.sensor.gpu_sweeps import SweepRenderer
from perception_ws.sim.sensor.intensity import ReflectanceModel
from perception_ws.sim.sensor.lidar import Lidar
from perception_ws.sim.sensor.noise import NoDropout, RangeNoise
from perception_ws.sim.sensor.raycast import make_raycaster
from perception_ws.sim.world.generator import SceneConfig, generate_scene
from perception_ws.sim.world.scene import Scene
from perception_ws.training import TrainConfig, train
from perception_ws.training.augment import augment
from perception_ws.training.checkpoint import CHECKPOINT, load_checkpoint
from perception_ws.training.curves import LOG, read_log
from perception_ws.training.gpu_data import SweepBatches, sweep_images
from perception_ws.training.samples import sweep_pair
from perception_ws.training.scenes import build_scene
from tests.helpers.training import small_config

CPU = torch.device("cpu")
MASK = 5


def tiny_config(**changes: object) -> TrainConfig:
    """VLP-16 sweeps of 512 columns, one ego pose per scene, cut into four 128-column crops: two steps of
    batch 2 per scene, so 4 steps cross a scene boundary. Otherwise the small CPU run of test_training."""
    settings: dict[str, object] = {"sensor": "vlp16", "columns": 512, "frames_per_scene": 1, "dropout": "physical"}
    return small_config("sim-gpu", **{**settings, **changes})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """4 steps in one go with a scene-building worker process, and stopped after 3 (inside the second scene)
    then resumed, building scenes in-process: the batches must not depend on either."""
    root = tmp_path_factory.mktemp("gpu_runs")
    whole = train(tiny_config(workers=1), root / "whole", progress=False)
    assert whole.finished
    assert whole.step == 4
    first = train(tiny_config(), root / "split", stop_after=3, progress=False)
    assert not first.finished
    assert load_checkpoint(root / "split" / CHECKPOINT)["step"] == 3
    second = train(tiny_config(), root / "split", progress=False)
    assert second.finished
    assert second.step == 4
    return {"whole": root / "whole", "split": root / "split"}


def test_a_tiny_sim_gpu_run_trains_and_writes_its_checkpoint(runs: dict[str, Path]) -> None:
    state = load_checkpoint(runs["whole"] / CHECKPOINT)
    assert state["step"] == 4
    assert state["config"]["data"] == "sim-gpu"
    rows = read_log(runs["whole"] / LOG)
    assert [r["step"] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert all(np.isfinite(r["loss"]) and r["samples_per_s"] > 0 for r in rows)
    # the normaliser was fitted on simulated crops: a range mean of metres, not the untouched 0
    assert 1.0 < float(state["model"]["normalizer.mean"][4]) < 80.0


def test_a_resumed_sim_gpu_run_equals_an_uninterrupted_one_bit_for_bit(runs: dict[str, Path]) -> None:
    whole, split = (load_checkpoint(runs[k] / CHECKPOINT) for k in ("whole", "split"))
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, split["model"][name]), name
    moments = [(whole["optimizer"]["state"][i], split["optimizer"]["state"][i]) for i in whole["optimizer"]["state"]]
    assert moments
    assert all(torch.equal(a["exp_avg_sq"], b["exp_avg_sq"]) for a, b in moments)
    rows = [[(r["step"], r["loss"]) for r in read_log(runs[k] / LOG)] for k in ("whole", "split")]
    assert rows[0] == rows[1]


def test_the_batches_follow_the_step_and_rank_only() -> None:
    sweeps = SweepBatches(tiny_config(steps=6))
    assert sweeps.steps_per_scene == 2
    all_steps = list(sweeps.batches(0, 6, CPU, workers=0))
    later = list(sweeps.batches(3, 6, CPU, workers=0))
    for (images, labels), (again, again_labels) in zip(all_steps[3:], later, strict=True):
        assert torch.equal(images, again)
        assert torch.equal(labels, again_labels)
    images, labels = all_steps[0]
    assert images.shape == (2, 6, 16, 128)
    assert labels.shape == (2, 16, 128)
    assert labels.dtype == torch.int64
    assert not torch.equal(all_steps[0][0], all_steps[1][0])  # two steps of one scene take different crops
    # two ranks read different scenes at the same step
    rank0, rank1 = (next(sweeps.batches(0, 1, CPU, 0, rank, 2)) for rank in (0, 1))
    assert not torch.equal(rank0[0], rank1[0])


# --- the images mean what the CPU path's mean ----------------------------------------------------------------


@pytest.fixture(scope="module")
def street() -> Scene:
    return generate_scene(4, SceneConfig(half_length=40.0, y_extent=30.0, ego_poses=2))


@pytest.mark.parametrize("classes", ["kitti3", "semantic"])
def test_sweep_images_equal_the_cpu_paths_images(street: Scene, classes: str) -> None:
    """The same scene and poses through Lidar.scan + the CPU image, and through the renderer + the device
    image, with noise and dropout off: the same pixels, channels and labels."""
    lidar = Lidar(
        "hdl64e", columns=512, noise=RangeNoise(0.0), intensity=ReflectanceModel(noise=0.0), dropout=(NoDropout(),)
    )
    images, labels = sweep_images(SweepRenderer(street.soup, lidar, "cpu").render(street.ego_poses), classes)
    caster = make_raycaster(street.soup, "open3d")
    for i, pose in enumerate(street.ego_poses):
        want, want_labels = sweep_pair(lidar.scan(street, caster, pose), 64, 512, classes)
        got, got_labels = images[i].numpy(), labels[i].numpy()
        assert got.shape == want.shape
        assert got.dtype == want.dtype == np.float32
        valid = want[..., MASK] > 0
        assert valid.sum() > 10000
        assert np.array_equal(got[..., MASK] > 0, valid)
        assert (got[~valid] == 0).all()
        assert (got_labels[~valid] == 0).all()
        assert (got_labels[valid] == want_labels[valid]).mean() >= 0.999  # coplanar faces may tie
        assert len(np.unique(want_labels[valid])) >= 3
        close = np.abs(got[valid][:, :5] - want[valid][:, :5]).max(axis=1)  # x y z intensity range
        assert np.quantile(close, 0.999) < 1e-3


def test_device_augmentation_equals_the_numpy_augmentation_of_the_same_crops() -> None:
    """A sim-gpu batch is its scene's crops put through augment() with the draws of their sample indices."""
    config = tiny_config(seed=3)
    sweeps = SweepBatches(config)
    images, labels = sweeps.render(build_scene(config.seed, sweeps.scene_of(1), sweeps.scene_config), CPU)
    batch, batch_labels = sweeps.batch(1, images, labels)
    order = np.random.default_rng((config.seed, sweeps.scene_of(1), 13)).permutation(sweeps.crops)[2:4]
    crops, crop_labels = sweeps.crops_of(sweeps.scene_of(1), images, labels, order)
    changed = 0
    for b in range(2):
        rng = np.random.default_rng((config.seed, 2 + b, 11))  # sample index (step 1 * batch 2) + b
        want, want_labels = augment(crops[b].numpy(), crop_labels[b].numpy(), sweeps.augmentation, rng)
        assert np.array_equal(batch[b].permute(1, 2, 0).numpy(), want)
        assert np.array_equal(batch_labels[b].numpy(), want_labels)
        changed += not np.array_equal(want, crops[b].numpy())
    assert changed == 2  # the augmentation did something to both


# --- clear errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--sensor", "hdl32x"], "unknown sensor 'hdl32x'; known sensors:"),
        (["--sensor", "vlp16"], "dropout 'measured': the map was measured on"),
        (["--batch-size", "64", "--frames-per-scene", "8"], "8 sweeps x 4 crops = 32 crops, fewer than the batch"),
    ],
)
def test_bad_sim_gpu_arguments_are_one_line_and_exit_status_2(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", "sim-gpu", "--device", "cpu", "--out", str(tmp_path / "out"), "--quiet", *argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("perception train: error:")
    assert expected in err
    assert not (tmp_path / "out").exists()
