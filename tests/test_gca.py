"""Geodesic correlation alignment (perception_ws.adapt.gca, training/alignment.py): the covariance and the two
geodesic distances against scipy's matrix logarithm, their gradients (gradcheck, repeated eigenvalues), and a
3-step training run with unlabelled real scans as the target that logs the term and resumes exactly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from perception_ws.adapt.gca import (
    affine_invariant_distance,
    correlation_distance,
    feature_covariance,
    geodesic_distance,
    log_euclidean_distance,
    spd_inv_sqrt,
    spd_log,
)
from perception_ws.cli import main
from perception_ws.errors import PerceptionError
from perception_ws.training import train
from perception_ws.training.checkpoint import CHECKPOINT, load_checkpoint
from perception_ws.training.curves import LOG, read_log
from tests.helpers.training import small_config


def _spd(seed: int, size: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 2 * size, generator=generator, dtype=torch.float64)
    return x @ x.T / (2 * size) + 0.1 * torch.eye(size, dtype=torch.float64)


def _scipy_log(matrix: torch.Tensor) -> np.ndarray:
    return np.real(scipy.linalg.logm(matrix.numpy()))


# --- the maths against a plain reference ---------------------------------------------------------------------


def test_the_covariance_is_that_of_the_valid_pixels_only_plus_eps() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 4, 5, generator=generator)
    valid = torch.rand(2, 4, 5, generator=generator) > 0.4
    features[~valid.unsqueeze(1).expand_as(features)] = 1e6  # would dominate if an invalid pixel counted
    vectors = features.permute(0, 2, 3, 1)[valid].double().numpy()
    expected = np.cov(vectors, rowvar=False) + 1e-3 * np.eye(3)
    assert np.allclose(feature_covariance(features, valid, eps=1e-3).numpy(), expected, atol=1e-12)


def test_the_covariance_is_float64_under_bf16_autocast() -> None:
    features = torch.randn(1, 4, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = torch.nn.functional.conv2d(features, torch.eye(4).view(4, 4, 1, 1))  # bf16 inside autocast
        covariance = feature_covariance(half, torch.ones(1, 8, 16, dtype=torch.bool))
    assert half.dtype == torch.bfloat16
    assert covariance.dtype == torch.float64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_matrix_functions_match_scipy(seed: int) -> None:
    a = _spd(seed)
    assert np.allclose(spd_log(a).numpy(), _scipy_log(a), atol=1e-10)
    expected = np.linalg.inv(np.real(scipy.linalg.sqrtm(a.numpy())))
    assert np.allclose(spd_inv_sqrt(a).numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_both_distances_match_a_scipy_reference(seed: int) -> None:
    a, b = _spd(seed), _spd(seed + 10)
    log_euclidean = np.sum((_scipy_log(a) - _scipy_log(b)) ** 2)
    assert float(log_euclidean_distance(a, b)) == pytest.approx(log_euclidean, rel=1e-9)
    root = np.linalg.inv(np.real(scipy.linalg.sqrtm(a.numpy())))
    affine = np.sum(np.real(scipy.linalg.logm(root @ b.numpy() @ root)) ** 2)
    assert float(affine_invariant_distance(a, b)) == pytest.approx(affine, rel=1e-9)


@pytest.mark.parametrize("distance", ["log_euclidean", "affine_invariant"])
def test_a_distance_is_zero_for_equal_matrices_symmetric_and_positive_otherwise(distance: str) -> None:
    a, b = _spd(3), _spd(4)
    assert float(geodesic_distance(a, a.clone(), distance)) == pytest.approx(0.0, abs=1e-20)
    ab, ba = float(geodesic_distance(a, b, distance)), float(geodesic_distance(b, a, distance))
    assert ab > 0.01
    assert ab == pytest.approx(ba, rel=1e-9)


def test_the_affine_invariant_distance_ignores_a_common_congruence() -> None:
    a, b = _spd(5), _spd(6)
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64) + 2 * torch.eye(4)
    moved = float(affine_invariant_distance(x @ a @ x.T, x @ b @ x.T))
    assert moved == pytest.approx(float(affine_invariant_distance(a, b)), rel=1e-7)
    assert float(log_euclidean_distance(x @ a @ x.T, x @ b @ x.T)) != pytest.approx(moved, rel=1e-3)


@pytest.mark.parametrize("distance", ["log_euclidean", "affine_invariant"])
def test_the_gradients_pass_gradcheck(distance: str) -> None:
    # inputs are general matrices made SPD inside, so every perturbation gradcheck makes stays symmetric
    def through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(3, dtype=torch.float64)
        return geodesic_distance(x @ x.T + 0.1 * eye, y @ y.T + 0.1 * eye, distance)

    generator = torch.Generator().manual_seed(8)
    x = torch.randn(3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(through, (x, y))


def test_repeated_eigenvalues_give_finite_correct_gradients() -> None:
    # 2 I has one eigenvalue three times: autograd's eigh backward divides by the zero gaps there
    a = (2.0 * torch.eye(3, dtype=torch.float64)).requires_grad_()
    b = torch.diag(torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))
    log_euclidean_distance(a, b).backward()
    assert a.grad is not None
    # d/dA ||log A - log B||² at A = 2 I is 2 (log A - log B) / 2 (the derivative of log at 2 is 1/2)
    expected = math.log(2.0) - torch.log(torch.diag(b))
    assert torch.allclose(a.grad, torch.diag(expected), atol=1e-12)
    same = _spd(9).requires_grad_()
    log_euclidean_distance(same, same.detach().clone()).backward()
    assert same.grad is not None
    assert float(same.grad.abs().max()) < 1e-10  # NaN fails this too


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(PerceptionError, match="at least 2 valid pixels"):
        feature_covariance(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool))
    with pytest.raises(PerceptionError, match="expected one of log_euclidean, affine_invariant"):
        geodesic_distance(_spd(0), _spd(1), "euclid")
    with pytest.raises(PerceptionError, match="not positive definite"):
        spd_log(-torch.eye(2, dtype=torch.float64))


def test_the_term_is_zero_for_one_batch_twice_and_grows_with_a_domain_shift() -> None:
    generator = torch.Generator().manual_seed(11)
    features = torch.randn(2, 4, 8, 32, generator=generator)
    valid = torch.ones(2, 8, 32, dtype=torch.bool)
    assert float(correlation_distance(features, valid, features, valid)) == pytest.approx(0.0, abs=1e-18)
    near = float(correlation_distance(features, valid, features * 1.1, valid))
    far = float(correlation_distance(features, valid, features * 3.0, valid))
    assert 0 < near < far


# --- training with a real target -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gca_runs(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """3 steps with kitti_sequence_pcd as the unlabelled target: in one go, and stopped after step 1 then resumed."""
    root = tmp_path_factory.mktemp("gca")
    config = small_config(
        real_data / "kitti_squeezeseg",
        target=str(real_data / "kitti_sequence_pcd"),
        steps=3,
        batch_size=1,
        crop_width=64,
    )
    assert train(config, root / "whole", progress=False).finished
    assert not train(config, root / "split", stop_after=1, progress=False).finished
    assert train(config, root / "split", progress=False).step == 3
    return {"whole": root / "whole", "split": root / "split"}


@pytest.mark.real_data
def test_a_run_with_a_target_logs_a_finite_positive_gca_term_inside_the_loss(gca_runs: dict[str, Path]) -> None:
    rows = read_log(gca_runs["whole"] / LOG)
    assert [r["step"] for r in rows] == [1.0, 2.0, 3.0]
    for row in rows:
        assert math.isfinite(row["gca"])
        assert row["gca"] > 0
        assert row["loss"] > row["gca"]  # the focal loss is the rest
    state = load_checkpoint(gca_runs["whole"] / CHECKPOINT)
    assert state["data"]["gca"]["target"].endswith("kitti_sequence_pcd")
    assert state["data"]["gca"]["weight"] == 10.0


@pytest.mark.real_data
def test_a_resumed_run_with_a_target_equals_an_uninterrupted_one(gca_runs: dict[str, Path]) -> None:
    whole, split = (load_checkpoint(gca_runs[k] / CHECKPOINT) for k in ("whole", "split"))
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, split["model"][name]), name
    columns = ("step", "loss", "gca")
    assert [[r[c] for c in columns] for r in read_log(gca_runs["split"] / LOG)] == [
        [r[c] for c in columns] for r in read_log(gca_runs["whole"] / LOG)
    ]


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--gca-weight", "nan"], "gca_weight must be a finite number >= 0; got nan"),
        (["--gca-weight", "-1"], "gca_weight must be a finite number >= 0; got -1.0"),
        (["--target", "{tmp}/missing"], "missing: no such file or folder"),
    ],
)
def test_bad_gca_arguments_are_one_line_and_exit_status_2(
    argv: list[str], expected: str, real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", str(real_data / "kitti_squeezeseg"), "--out", str(tmp_path / "out"), "--quiet"]
    assert main(args + [a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert expected in err
    assert not (tmp_path / "out").exists()
