"""SPVCNN, MinkUNet and the SPVNAS super-network: per-point logits, the point branch, weight sharing of
sub-networks, and their parameter and MAC counts."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.errors import SparseTensorError
from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.models.complexity import count_parameters
from perception_ws.models.sparse import PointTensor
from perception_ws.models.sparse.kernel_map import kernel_map_reference
from perception_ws.models.spvnas import (
    SPVNAS,
    PointVoxelUNet,
    SearchSpace,
    SubnetConfig,
    build_minkunet,
    build_spvcnn,
    largest_subnet,
    make_points,
    sample_subnet,
    smallest_subnet,
)
from perception_ws.models.spvnas.complexity import sparse_model_complexity
from perception_ws.models.spvnas.kit import spconv_kit
from perception_ws.models.spvnas.network import scaled_widths


def _points(n: int = 600, seed: int = 0, batch: int = 2) -> PointTensor:
    """A few small scans: points on a ground plane and two boxes, features x y z + intensity."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([8.0, 8.0, 0.1])
    xyz[: n // 3, 2] += torch.rand(n // 3, generator=g) * 2  # an upright object
    feats = torch.cat([xyz, torch.rand(n, 1, generator=g)], dim=1)
    return make_points(xyz, feats, voxel_size=0.2, batch=torch.arange(n) % batch)


@pytest.mark.parametrize("classes", [KITTI3, SEMANTIC_KITTI])
@pytest.mark.parametrize("builder", [build_spvcnn, build_minkunet])
def test_logits_for_every_point_and_gradients_for_every_weight(builder, classes) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = builder(len(classes), width_ratio=0.25)
    points = _points()
    logits = model(points)
    assert logits.shape == (600, len(classes))
    logits.logsumexp(dim=1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_point_branch_separates_points_of_one_voxel() -> None:
    """MinkUNet gives all points of a voxel its voxel's logits; SPVCNN's point branch tells them apart."""
    torch.manual_seed(0)
    points = _points(200, batch=1)
    twins = make_points(torch.tensor([[1.01, 1.01, 0.01], [1.19, 1.19, 0.19]]), torch.rand(2, 4), voxel_size=0.2)
    joined = PointTensor(torch.cat([points.feats, twins.feats]), torch.cat([points.coords, twins.coords]))
    for builder, separated in ((build_minkunet, False), (build_spvcnn, True)):
        model = builder(4, width_ratio=0.25).eval()
        with torch.no_grad():
            a, b = model(PointTensor(joined.feats, joined.coords))[-2:]
        assert (not torch.allclose(a, b)) == separated


def test_a_sampled_subnetwork_runs_on_slices_of_the_supernetwork() -> None:
    torch.manual_seed(0)
    space = SearchSpace(max_widths=(16, 16, 24, 32, 48, 48, 32, 24, 24), kernel_choices=(1, 3))
    net = SPVNAS(4, space=space)
    half = tuple(w // 2 for w in space.max_widths)
    net.set_subnet(SubnetConfig(half, (2,) * 8, (3,) * 8))
    conv = net.decoders[0].blocks[1].main[0]
    kernel = conv.active_weight(half[5])
    assert kernel.shape == (27, half[5], half[5])
    assert kernel.untyped_storage().data_ptr() == conv.kernel.untyped_storage().data_ptr()  # a view: no copy
    net.set_subnet(SubnetConfig(half, (2,) * 8, (1,) * 8))
    assert torch.equal(conv.active_weight(half[5])[0], conv.kernel[13, : half[5], : half[5]])  # the centre tap
    net.set_subnet(smallest_subnet(space))
    net(_points()).sum().backward()
    stem = net.stem[0][0]
    w = smallest_subnet(space).widths[0]
    assert stem.kernel.grad[:, :, w:].abs().sum() == 0  # outputs outside the sub-network got no gradient
    assert stem.kernel.grad[:, :, :w].abs().sum() > 0
    skipped = net.encoders[0].blocks[1].main[0].kernel  # depth 1: the second block did not run
    assert skipped.grad is None


def test_subnetwork_choices_stay_in_the_search_space() -> None:
    space = SearchSpace()
    rng = random.Random(0)
    net = SPVNAS(20, space=space)
    for _ in range(20):
        net.set_subnet(sample_subnet(space, rng))
    assert sample_subnet(space, random.Random(7)) == sample_subnet(space, random.Random(7))
    with pytest.raises(SparseTensorError, match="outside the search space"):
        net.set_subnet(SubnetConfig(space.max_widths, (3,) * 8, (3,) * 8))
    with pytest.raises(SparseTensorError, match="kernel choices"):
        SPVNAS(4, space=SearchSpace(kernel_choices=(5,)))


def test_complexity_counts() -> None:
    torch.manual_seed(0)
    points = _points(300, batch=1)
    spvcnn, mink = build_spvcnn(20, width_ratio=0.5), build_minkunet(20, width_ratio=0.5)
    cost, mink_cost = sparse_model_complexity(spvcnn, points), sparse_model_complexity(mink, points)
    assert cost.params == count_parameters(spvcnn)
    assert mink_cost.params == count_parameters(mink)
    # the first stem conv: pairs of a 3x3x3 submanifold map (dict reference) x C_in x C_out
    voxels = torch.unique(torch.cat([points.coords[:, :1], points.coords[:, 1:].floor()], dim=1).int(), dim=0)
    pairs = sum(len(p) for p in kernel_map_reference(voxels, voxels, 1, 3))
    assert cost.layers[0].name == "stem.0.0"
    assert cost.layers[0].macs == pairs * 4 * 16
    # the point branch costs little next to the voxel branch
    assert mink_cost.macs < cost.macs < 1.1 * mink_cost.macs
    net = SPVNAS(20, space=SearchSpace(max_widths=tuple(w // 2 for w in SearchSpace().max_widths)))
    largest = sparse_model_complexity(net, points)
    assert largest.params == count_parameters(net)
    net.set_subnet(smallest_subnet(net.space))
    small = sparse_model_complexity(net, points)
    assert small.params < largest.params / 10
    assert small.macs < largest.macs / 10
    net.set_subnet(largest_subnet(net.space))
    assert sparse_model_complexity(net, points).macs == largest.macs


@pytest.mark.real_data
def test_a_cpu_forward_on_a_real_scan(real_data: Path) -> None:
    scan = np.fromfile(real_data / "semantickitti" / "000000.bin", dtype=np.float32).reshape(-1, 4)
    points = make_points(torch.from_numpy(scan[:, :3]), torch.from_numpy(scan), voxel_size=0.05)
    model = build_spvcnn(len(SEMANTIC_KITTI), width_ratio=0.25).eval()
    with torch.no_grad():
        logits = model(points)
    assert logits.shape == (scan.shape[0], len(SEMANTIC_KITTI))
    assert scan.shape[0] > 100_000
    assert bool(torch.isfinite(logits).all())


def test_spvcnn_on_spconv_gives_the_same_logits() -> None:
    """The whole network with every sparse conv run by spconv instead (same weights): the same logits."""
    torch.manual_seed(0)
    ours = build_spvcnn(20, width_ratio=0.25).eval()
    for module in ours.modules():  # non-trivial batch-norm statistics, so a row mix-up would show
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    reference = PointVoxelUNet(spconv_kit(), 4, 20, scaled_widths(0.25)).eval()
    reference.load_state_dict(ours.state_dict())
    points = _points(800)
    with torch.no_grad():
        difference = (ours(points) - reference(_points(800))).abs().max()
    assert float(difference) <= 1e-4
