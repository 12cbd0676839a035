"""Training the point-voxel networks (``perception train --model spvcnn|spvnas``) at tiny width on CPU: the super-
network's per-step sub-networks (one random, or the sandwich), exact resume, DDP over two processes, the weights file
and its manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from perception_ws.cli import main
from perception_ws.errors import PerceptionError, WeightsError
from perception_ws.models.spvnas.supernet import largest_subnet, smallest_subnet
from perception_ws.models.weights import load_any_weights, read_manifest, save_weights
from perception_ws.training import train
from perception_ws.training.checkpoint import CHECKPOINT, load_checkpoint, parameter_digest
from perception_ws.training.config import TrainConfig
from perception_ws.training.loop import build_training_model
from tests.helpers.training import small_config

REPO = Path(__file__).resolve().parents[1]
#: an eighth of SPVCNN's widths and 0.2 m voxels: seconds per step on 2 cores
TINY = {"width_ratio": 0.125, "voxel_size": 0.2}


@pytest.fixture(scope="module")
def frames(real_data: Path) -> Path:
    return real_data / "kitti_squeezeseg"


def tiny_config(frames: Path, model: str = "spvnas", **changes: object) -> TrainConfig:
    return small_config(frames, **{"model": model, "steps": 3, **TINY, **changes})


def test_the_super_network_draws_its_sub_network_from_seed_step_and_rank() -> None:
    model = build_training_model(TrainConfig(model="spvnas", crf=False, **TINY))  # type: ignore[arg-type]
    draws = {(step, rank): model.step_subnets(0, step, rank) for step in range(3) for rank in range(2)}
    assert all(len(subnets) == 1 for subnets in draws.values())  # sandwich 0: one random sub-network a step
    assert model.step_subnets(0, 1, 1) == draws[(1, 1)]  # the same (seed, step, rank): the same one
    assert len({subnets[0] for subnets in draws.values()}) == len(draws)  # every step and rank its own
    assert model.step_subnets(1, 1, 1) != draws[(1, 1)]  # and every seed
    fixed = build_training_model(TrainConfig(model="spvcnn", crf=False, **TINY))  # type: ignore[arg-type]
    assert fixed.step_subnets(0, 0, 0, 2) == []  # a fixed network trains as it is


def test_a_sandwich_step_trains_the_largest_the_smallest_then_n_random_sub_networks() -> None:
    model = build_training_model(TrainConfig(model="spvnas", crf=False, **TINY))  # type: ignore[arg-type]
    space = model.net.space
    sandwich = model.step_subnets(0, 5, 1, 2)
    assert sandwich[:2] == [largest_subnet(space), smallest_subnet(space)]
    assert len(sandwich) == 4
    assert sandwich[2] == model.step_subnets(0, 5, 1)[0]  # the first random one is the one sandwich 0 trains
    assert sandwich[3] not in sandwich[:3]
    assert model.step_subnets(0, 5, 1, 2) == sandwich  # deterministic: a resumed run trains the same ones
    assert model.step_subnets(0, 6, 1, 2)[2:] != sandwich[2:]  # the random ones are the step's own
    assert model.step_subnets(0, 5, 0, 2)[2:] != sandwich[2:]  # and the rank's


@pytest.mark.real_data
@pytest.mark.parametrize(("sandwich", "steps"), [(0, 3), (1, 2)])
def test_a_resumed_super_network_run_ends_with_the_uninterrupted_runs_weights(
    frames: Path, tmp_path: Path, sandwich: int, steps: int
) -> None:
    config = tiny_config(frames, sandwich=sandwich, steps=steps)
    assert train(config, tmp_path / "whole", progress=False).finished
    assert train(config, tmp_path / "split", stop_after=1, progress=False).step == 1
    assert train(config, tmp_path / "split", progress=False).step == steps
    whole, split = (load_checkpoint(tmp_path / run / CHECKPOINT)["model"] for run in ("whole", "split"))
    assert whole.keys() == split.keys()
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    torch.manual_seed(config.seed)  # the run's initial weights, as train() builds them
    unmoved = [int((p == whole[k]).sum()) for k, p in build_training_model(config).named_parameters()]
    assert 0 in unmoved  # it trained
    if sandwich:  # the largest sub-network, trained every step, reaches every weight: each one has moved
        assert sum(unmoved) == 0


def test_sandwich_is_refused_in_one_line_where_there_is_no_super_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet"]
    assert main([*args, "--model", "spvcnn", "--sandwich", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "perception train: error: train: --sandwich trains sub-networks of a super-network; spvcnn has none"
    )
    with pytest.raises(PerceptionError, match="sandwich must be >= 0"):
        TrainConfig(model="spvnas", crf=False, sandwich=-1)
    assert not (tmp_path / "run").exists()


@pytest.mark.real_data
def test_spvcnn_weights_round_trip_with_a_manifest_naming_family_classes_voxels_and_widths(
    frames: Path, tmp_path: Path
) -> None:
    config = tiny_config(frames, model="spvcnn", steps=2)
    train(config, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    model = build_training_model(config)
    model.load_state_dict(state["model"])
    path = save_weights(model.eval(), tmp_path / "spvcnn.pt", training={"data": config.data, "steps": 2}, scores={})
    manifest = read_manifest(path)["model"]
    assert manifest["name"] == "spvcnn"
    assert manifest["family"] == "point_voxel"
    assert manifest["num_classes"] == 4
    assert manifest["voxel_size"] == 0.2
    assert manifest["width_ratio"] == 0.125
    loaded = load_any_weights(path)
    xyz = torch.rand(300, 3) * 20.0
    feats = torch.cat([xyz, torch.rand(300, 1)], 1)
    with torch.no_grad():
        assert torch.equal(loaded.forward_points(xyz, feats), model.forward_points(xyz, feats))  # type: ignore[operator]


def test_point_models_refuse_what_only_range_images_have_in_one_line() -> None:
    with pytest.raises(PerceptionError, match="--crf is a range-image layer"):
        TrainConfig(model="spvcnn", crf=True)
    with pytest.raises(PerceptionError, match="voxel_size must be a finite number > 0"):
        TrainConfig(model="spvnas", crf=False, voxel_size=0.0)


@pytest.mark.real_data
def test_a_file_that_is_not_its_manifests_model_is_refused(frames: Path, tmp_path: Path) -> None:
    model = build_training_model(TrainConfig(model="spvcnn", crf=False, **TINY))  # type: ignore[arg-type]
    path = save_weights(model, tmp_path / "w.pt", training={"data": "none", "steps": 0}, scores={})
    manifest = json.loads(path.with_suffix(".json").read_text())
    manifest["model"]["width_ratio"] = 0.25  # the file's tensors are an eighth's
    path.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="does not match the model config"):
        load_any_weights(path)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.real_data
@pytest.mark.parametrize("sandwich", [0, 1])  # 1: each rank sums three passes' gradients before the one sync
def test_two_cpu_processes_train_the_super_network_in_step_under_torchrun(
    frames: Path, tmp_path: Path, sandwich: int
) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "perception_ws.cli", "train", "--model", "spvnas", "--width-ratio", "0.125", "--voxel-size", "0.2",
        "--data", str(frames), "--steps", "2", "--batch-size", "1", "--workers", "0", "--device", "cpu",
        "--sandwich", str(sandwich), "--out", str(out), "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(out / CHECKPOINT)
    run = json.loads((out / "run.json").read_text())
    assert state["step"] == run["step"] == 2
    assert run["world_size"] == 2
    assert TrainConfig.from_json(state["config"]).sandwich == sandwich
    digests = run["parameter_sha256_by_rank"]
    assert digests[0] == digests[1]  # each rank ran its own sub-network, and the gradients were averaged
    model = build_training_model(TrainConfig.from_json(state["config"]))
    model.load_state_dict(state["model"])
    assert parameter_digest(model) == digests[0]
