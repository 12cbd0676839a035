"""The recurrent CRF: masking, smoothing inside surfaces but not across depth jumps, energy, gradients."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import functional_call

from perception_ws.errors import PerceptionError
from perception_ws.models.crf import KITTI3_CRF_SIGMAS, CRFConfig, RecurrentCRF


def _wall(height: int, width: int, distance: float = 10.0) -> torch.Tensor:
    """xyz (1, 3, H, W) of a flat wall ``distance`` m ahead seen by an HDL-64E-like grid
    (0.4 degree rows, 90/512 degree columns)."""
    el = torch.deg2rad(torch.arange(height, dtype=torch.float32) * -0.4).view(-1, 1).expand(height, width)
    az = torch.deg2rad((torch.arange(width, dtype=torch.float32) - width / 2) * -90 / 512).view(1, -1)
    az = az.expand(height, width)
    x = torch.full((height, width), distance)
    return torch.stack([x, x * torch.tan(az), x * torch.tan(el)])[None]


def _free_energy(
    crf: RecurrentCRF, unary_logits: torch.Tensor, q: torch.Tensor, xyz: torch.Tensor, valid: torch.Tensor
) -> float:
    """Mean-field free energy  sum q*u + 1/2 sum q*pairwise(q) + sum q log q  over valid pixels."""
    u = -torch.log_softmax(unary_logits, dim=1)
    kernel = crf.bilateral_kernel(xyz, valid)
    pair = crf.pairwise(q, kernel, valid)
    per_pixel = (q * u).sum(1) + 0.5 * (q * pair).sum(1) + (q * q.clamp_min(1e-12).log()).sum(1)
    return float(per_pixel[valid].sum())


def _real_frame(real_data: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    record = np.load(sorted((real_data / "kitti_squeezeseg").glob("*.npy"))[0])
    xyz = torch.from_numpy(np.ascontiguousarray(record[..., :3].transpose(2, 0, 1)))[None]
    valid = torch.from_numpy(record[..., 4] > 0)[None]
    labels = torch.from_numpy(record[..., 5].astype(np.int64))[None]
    return xyz, valid, labels


def test_single_valid_pixel_gets_exactly_its_unary() -> None:
    crf = RecurrentCRF(4)
    xyz = _wall(5, 8)
    valid = torch.zeros(1, 5, 8, dtype=torch.bool)
    valid[0, 2, 3] = True
    uniform = torch.zeros(1, 4, 5, 8)
    assert torch.equal(crf(uniform, xyz, valid), uniform)
    random = torch.randn(1, 4, 5, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(crf(random, xyz, valid), random)


def test_empty_pixels_neither_send_nor_receive_messages() -> None:
    crf = RecurrentCRF(3)
    g = torch.Generator().manual_seed(2)
    xyz = _wall(6, 10)
    valid = torch.rand(1, 6, 10, generator=g) > 0.3
    logits = torch.randn(1, 3, 6, 10, generator=g)
    out = crf(logits, xyz, valid)
    changed = logits.clone()
    changed[:, :, ~valid[0]] = 50 * torch.randn(3, int((~valid).sum()), generator=g)  # garbage in empty pixels
    out_changed = crf(changed, xyz, valid)
    assert torch.equal(out[:, :, valid[0]], out_changed[:, :, valid[0]])
    assert torch.equal(out_changed[:, :, ~valid[0]], changed[:, :, ~valid[0]])


def test_isolated_wrong_pixel_on_a_surface_is_smoothed_but_not_across_a_depth_jump() -> None:
    crf = RecurrentCRF(2)  # default (released) hyper-parameters
    xyz = _wall(9, 15)
    valid = torch.ones(1, 9, 15, dtype=torch.bool)
    logits = torch.zeros(1, 2, 9, 15)
    logits[:, 0], logits[:, 1] = 1.0, -1.0  # a confident region of class 0
    logits[:, 0, 4, 7], logits[:, 1, 4, 7] = -0.1, 0.1  # one pixel weakly voting class 1
    assert crf(logits, xyz, valid).argmax(1)[0, 4, 7] == 0  # smoothed away: same surface
    # the same pixel 5 m behind the wall (another object seen through a gap) keeps its own label:
    # the bilateral kernel vanishes across the depth jump and the angular kernel alone is too weak
    behind = xyz.clone()
    behind[0, :, 4, 7] *= 1.5
    out = crf(logits, behind, valid)
    assert out.argmax(1)[0, 4, 7] == 1
    assert (out.argmax(1)[0][valid[0]].sum()) == 1  # nothing else changed label


@pytest.mark.real_data
def test_mean_field_lowers_the_free_energy_and_repairs_noisy_labels_on_a_real_frame(real_data: Path) -> None:
    xyz, valid, labels = _real_frame(real_data)
    g = torch.Generator().manual_seed(0)
    onehot = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    unary = 1.0 * onehot + 0.6 * torch.randn(onehot.shape, generator=g)  # noisy network output
    errors_before = int((unary.argmax(1) != labels)[valid].sum())
    with torch.no_grad():  # the released initial weights already help a little
        assert int((RecurrentCRF(4)(unary, xyz, valid).argmax(1) != labels)[valid].sum()) < errors_before
    # larger message weights, as training learns them, repair most of the noise
    crf = RecurrentCRF(4, CRFConfig(w_bilateral=0.5, w_angular=0.1))
    with torch.no_grad():
        refined = crf(unary, xyz, valid)
        before = _free_energy(crf, unary, torch.softmax(unary, 1), xyz, valid)
        after = _free_energy(crf, unary, torch.softmax(refined, 1), xyz, valid)
    errors_after = int((refined.argmax(1) != labels)[valid].sum())
    assert after < before
    assert errors_before > 1000
    assert errors_after < 0.7 * errors_before


def test_gradients_reach_the_logits_and_every_crf_parameter() -> None:
    crf = RecurrentCRF(4, CRFConfig.from_dict(KITTI3_CRF_SIGMAS))
    g = torch.Generator().manual_seed(3)
    xyz = _wall(6, 12)
    valid = torch.rand(1, 6, 12, generator=g) > 0.2
    logits = torch.randn(1, 4, 6, 12, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (1, 6, 12), generator=g)
    torch.nn.functional.cross_entropy(crf(logits, xyz, valid), target).backward()
    assert logits.grad is not None
    assert logits.grad.abs().sum() > 0
    for name, p in crf.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradients_match_finite_differences() -> None:
    crf = RecurrentCRF(3, CRFConfig(w_bilateral=0.5, w_angular=0.3)).double()
    g = torch.Generator().manual_seed(4)
    xyz = _wall(4, 7).double() + 0.05 * torch.randn(1, 3, 4, 7, generator=g, dtype=torch.float64)
    valid = torch.rand(1, 4, 7, generator=g) > 0.2
    logits = torch.randn(1, 3, 4, 7, generator=g, dtype=torch.float64, requires_grad=True)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in crf.named_parameters()}

    def run(lg: torch.Tensor, wb: torch.Tensor, wa: torch.Tensor, compat: torch.Tensor) -> torch.Tensor:
        state = {"bilateral_weight": wb, "angular_weight": wa, "compatibility.weight": compat}
        return functional_call(crf, state, (lg, xyz, valid))

    assert torch.autograd.gradcheck(run, (logits, *params.values()))


def test_compatibility_starts_as_potts_and_sigmas_broadcast_per_class() -> None:
    crf = RecurrentCRF(4, CRFConfig.from_dict(KITTI3_CRF_SIGMAS))
    assert torch.equal(crf.compatibility.weight[:, :, 0, 0], 1 - torch.eye(4))
    xyz, valid = _wall(5, 9), torch.ones(1, 5, 9, dtype=torch.bool)
    assert crf.bilateral_kernel(xyz, valid).shape == (1, 4, 15, 5, 9)  # 3x5 window slots, centre zero
    assert RecurrentCRF(4).bilateral_kernel(xyz, valid).shape == (1, 1, 15, 5, 9)
    # the tighter pedestrian/cyclist sigmas give smaller weights than the car's for the same pair
    k = crf.bilateral_kernel(xyz, valid)[0, :, :, 2, 4]
    slots = [slot for slot, _, _ in crf.neighbours]
    assert (k[2, slots] < k[1, slots]).all()
    assert torch.equal(k[0], k[1])
    assert (k[:, 7] == 0).all()


def test_bilateral_kernel_is_the_thesis_formula_per_pixel_pair() -> None:
    """Every kernel entry against w = exp(-|dp|^2 / 2 sa^2 - |dx|^2 / 2 sb^2), written out pixel by pixel."""
    cfg = CRFConfig(sigma_alpha=(0.5, 0.9, 0.7), sigma_beta=(0.3, 0.1, 0.2))
    crf = RecurrentCRF(3, cfg)
    g = torch.Generator().manual_seed(5)
    xyz = 0.3 * torch.randn(2, 3, 4, 6, generator=g)
    valid = torch.rand(2, 4, 6, generator=g) > 0.2
    kernel = crf.bilateral_kernel(xyz, valid)
    expected = torch.zeros(2, 3, 15, 4, 6)
    for b in range(2):
        for slot, dy, dx in crf.neighbours:
            for i in range(4):
                for j in range(6):
                    ii, jj = i + dy, j + dx
                    if 0 <= ii < 4 and 0 <= jj < 6 and valid[b, i, j] and valid[b, ii, jj]:
                        d2 = float(((xyz[b, :, i, j] - xyz[b, :, ii, jj]) ** 2).sum())
                        for c in range(3):
                            sa, sb = cfg.sigma_alpha[c], cfg.sigma_beta[c]  # type: ignore[index]
                            expected[b, c, slot, i, j] = math.exp(-(dy * dy + dx * dx) / (2 * sa**2) - d2 / (2 * sb**2))
    assert torch.allclose(kernel, expected, atol=1e-7)


def test_config_round_trip_and_bad_configs() -> None:
    cfg = CRFConfig.from_dict({**KITTI3_CRF_SIGMAS, "iterations": 2, "window": [3, 7]})
    assert CRFConfig.from_dict(cfg.to_dict()) == cfg
    assert len(RecurrentCRF(4, cfg).offsets) == 20
    with pytest.raises(PerceptionError, match="odd"):
        RecurrentCRF(4, CRFConfig(window=(2, 5)))
    with pytest.raises(PerceptionError, match="iterations"):
        RecurrentCRF(4, CRFConfig(iterations=0))
    with pytest.raises(PerceptionError, match="sigma_alpha"):
        RecurrentCRF(3, CRFConfig.from_dict(KITTI3_CRF_SIGMAS))
    crf = RecurrentCRF(4)
    with pytest.raises(PerceptionError, match="4 classes"):
        crf(torch.zeros(1, 3, 5, 9), _wall(5, 9), torch.ones(1, 5, 9, dtype=torch.bool))
    with pytest.raises(PerceptionError, match="xyz"):
        crf(torch.zeros(1, 4, 5, 9), _wall(5, 8), torch.ones(1, 5, 9, dtype=torch.bool))
