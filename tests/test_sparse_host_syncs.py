"""Host syncs (the ops that would stall a GPU), counted on the CPU: the counter sees the known kinds, and a
point-voxel U-Net's forward pass keeps its syncs to kernel-map building, a fixed few per stride."""

from __future__ import annotations

import pytest
import torch

from perception_ws.models.sparse import conv
from perception_ws.models.sparse.host_syncs import HostSyncs
from perception_ws.models.spvnas import build_minkunet, build_spvcnn, make_points

#: 1 range check + 1 unique (voxelising), 1 per submanifold map (5 strides), 2 per downsampling (4 strides)
SYNCS_PER_FORWARD = 15


def test_the_counter_sees_each_kind_of_sync() -> None:
    t = torch.tensor([0.0, 2.0, 3.0])
    with HostSyncs() as syncs:
        int(t[1])
        t.tolist()
        _ = t[t > 0]
        torch.unique(t)
        torch.nonzero(t)
        torch.nonzero_static(t, size=2)  # its size is given: no sync
        t * 2 + 1
    kinds = sorted(site.split(" at ")[0] for site in syncs.sites.elements())
    assert kinds == ["_local_scalar_dense", "_unique2", "index", "nonzero", "tolist"]


def _cloud(n: int = 6000) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on a few surfaces (a ground plane and two walls), as a LiDAR sees them."""
    g = torch.Generator().manual_seed(0)
    u, v = torch.rand(n, generator=g) * 20 - 10, torch.rand(n, generator=g) * 3
    side = torch.randint(0, 3, (n,), generator=g)
    x = torch.where(side == 1, torch.full_like(u, 4.0), u)
    y = torch.where(side == 2, torch.full_like(u, -5.0), torch.where(side == 1, u, v * 3))
    z = torch.where(side == 0, torch.full_like(u, -1.7), v - 1.7)
    xyz = torch.stack([x, y, z], dim=1)
    return xyz, torch.cat([xyz, torch.rand(n, 1, generator=g)], dim=1)


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("builder", [build_spvcnn, build_minkunet])
def test_a_forward_pass_syncs_only_to_build_maps(
    monkeypatch: pytest.MonkeyPatch, builder: object, grouped: bool
) -> None:
    if grouped:  # the GPU's conv path, run here
        monkeypatch.setattr(conv, "GROUPED_DEVICES", {"cpu"})
    xyz, feats = _cloud()
    torch.manual_seed(0)
    model = builder(20, width_ratio=0.25).eval()  # type: ignore[operator]
    with torch.no_grad():
        model(make_points(xyz, feats, 0.1))  # first pass: constants reach the device once per process
        with HostSyncs() as syncs:
            logits = model(make_points(xyz, feats, 0.1))
    assert logits.shape == (xyz.shape[0], 20)
    assert syncs.total <= SYNCS_PER_FORWARD, syncs.table()
    # none while convolving, in the point branch or in the network: only hashing and map building
    assert {site.split(" at ")[1].split(":")[0] for site in syncs.sites} <= {
        "models/sparse/hashing.py",
        "models/sparse/kernel_map.py",
    }, syncs.table()
