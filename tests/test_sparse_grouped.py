"""The grouped conv path (offsets batched into ``bmm`` calls, the GPU's path) run on the CPU: the same outputs
and gradients as the per-offset loop, every pair once, padding bounded; a network on a real scan both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.models.sparse import Conv3d, SparseTensor, conv, sparse_conv3d
from perception_ws.models.sparse.kernel_map import submanifold_map
from perception_ws.models.sparse.offset_groups import MIN_FILL
from perception_ws.models.spvnas import build_spvcnn, make_points

CONV_KINDS = [(3, 1, False), (1, 1, False), (2, 2, False), (3, 2, False), (2, 2, True), (3, 2, True)]


@pytest.fixture
def grouped_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the grouped path on the CPU (it is the GPU's path; the CPU keeps the loop by default)."""
    monkeypatch.setattr(conv, "GROUPED_DEVICES", {"cpu"})


def _random_tensor(n: int, channels: int, seed: int = 0, extent: int = 8) -> SparseTensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randint(-extent, extent, (n, 3), generator=g)
    coords = torch.unique(torch.cat([torch.zeros(n, 1, dtype=torch.int64), xyz], dim=1), dim=0).int()
    return SparseTensor(torch.randn(coords.shape[0], channels, generator=g, dtype=torch.float64), coords)


@pytest.mark.parametrize(("kernel_size", "stride", "transposed"), CONV_KINDS)
def test_grouped_matmuls_equal_the_per_offset_loop(
    monkeypatch: pytest.MonkeyPatch, kernel_size: int, stride: int, transposed: bool
) -> None:
    x = _random_tensor(600, 5)
    if transposed:
        coarse = Conv3d(5, 5, kernel_size, stride).double()(x)
        x = coarse.with_feats(coarse.feats.detach())
    weight = torch.randn(kernel_size**3, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    loop = sparse_conv3d(x, weight, kernel_size, stride, transposed)
    monkeypatch.setattr(conv, "GROUPED_DEVICES", {"cpu"})
    grouped = sparse_conv3d(x, weight, kernel_size, stride, transposed)
    assert torch.equal(loop.coords, grouped.coords)
    assert grouped.feats.shape == loop.feats.shape
    assert torch.allclose(grouped.feats, loop.feats, rtol=0, atol=1e-10)
    assert float(loop.feats.abs().max()) > 0


def test_groups_hold_every_pair_once_with_bounded_padding() -> None:
    coords = _random_tensor(900, 1, extent=7).coords
    kmap = submanifold_map(coords, 1, 3)
    expected = {
        (k, i, o)
        for k, (ins, outs) in enumerate(zip(kmap.in_rows, kmap.out_rows, strict=True))
        if k != kmap.identity
        for i, o in zip(ins.tolist(), outs.tolist(), strict=True)
    }
    got: list[tuple[int, int, int]] = []
    for group in kmap.offset_groups:
        real = group.out_rows < kmap.num_out  # pads land on the spare row past the end
        counts = real.sum(dim=1)
        assert int(counts.min()) >= MIN_FILL * int(counts.max())
        assert int(counts.max()) == group.in_rows.shape[1]
        for k, ins, outs, keep in zip(group.offsets, group.in_rows, group.out_rows, real, strict=True):
            got += [(int(k), i, o) for i, o in zip(ins[keep].tolist(), outs[keep].tolist(), strict=True)]
    assert len(got) == len(expected) > 0
    assert set(got) == expected


@pytest.mark.parametrize(("kernel_size", "stride", "transposed"), [(3, 1, False), (3, 2, False), (2, 2, True)])
def test_grouped_gradients_pass_gradcheck(
    grouped_on_cpu: None, kernel_size: int, stride: int, transposed: bool
) -> None:
    x = _random_tensor(25, 2, extent=3)
    if transposed:
        coarse = Conv3d(2, 2, kernel_size, stride).double()(x)
        x = coarse.with_feats(coarse.feats.detach())
    feats = x.feats.clone().requires_grad_()
    weight = torch.randn(kernel_size**3, 2, 3, dtype=torch.float64, requires_grad=True)

    def run(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return sparse_conv3d(x.with_feats(f), w, kernel_size, stride, transposed).feats

    assert torch.autograd.gradcheck(run, (feats, weight))


@pytest.mark.real_data
def test_spvcnn_on_a_real_scan_is_the_same_either_way(real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scan = np.fromfile(real_data / "semantickitti" / "000000.bin", dtype=np.float32).reshape(-1, 4)
    scan = scan[np.linalg.norm(scan[:, :2], axis=1) < 15.0]  # the near part: a few seconds on a CPU
    xyz, feats = torch.from_numpy(scan[:, :3]), torch.from_numpy(scan)
    torch.manual_seed(0)
    model = build_spvcnn(20, width_ratio=0.25).eval()
    with torch.no_grad():
        loop = model(make_points(xyz, feats, 0.05))
        monkeypatch.setattr(conv, "GROUPED_DEVICES", {"cpu"})
        grouped = model(make_points(xyz, feats, 0.05))
    assert loop.shape == (scan.shape[0], 20)
    assert float((grouped - loop).abs().max()) <= 1e-5 * max(1.0, float(loop.abs().max()))
