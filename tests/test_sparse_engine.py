"""The sparse engine: hashing and kernel maps against dict references, convs against spconv with the same
weights (random and real inputs), point <-> voxel ops against loop references, gradients by gradcheck."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.errors import SparseTensorError
from perception_ws.models.sparse import (
    Conv3d,
    PointTensor,
    SparseSettings,
    SparseTensor,
    initial_voxelize,
    load_engine,
    point_to_voxel,
    sparse_conv3d,
    voxel_to_point,
)
from perception_ws.models.sparse.hashing import KeyTable, lookup_reference, offset_delta, pack_keys
from perception_ws.models.sparse.interop import rows_of, spconv_conv
from perception_ws.models.sparse.kernel_map import (
    downsampled_coords,
    kernel_map_reference,
    kernel_offsets,
    strided_map,
    submanifold_map,
)
from perception_ws.models.sparse.point_voxel import voxel_to_point_reference
from perception_ws.models.spvnas import make_points
from perception_ws.schema import ConfigError

#: (kernel_size, stride, transposed) of every conv kind the U-Nets use, plus kernel 1 and a 3-stride-2 conv.
CONV_KINDS = [(3, 1, False), (1, 1, False), (2, 2, False), (3, 2, False), (2, 2, True), (3, 2, True)]


def _random_tensor(n: int, channels: int, batch: int = 2, extent: int = 12, seed: int = 0) -> SparseTensor:
    """Up to ``n`` distinct random voxels per scan in a cube around the origin (negative coordinates too)."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randint(-extent, extent, (n * batch, 3), generator=g)
    b = torch.arange(batch).repeat_interleave(n).unsqueeze(1)
    coords = torch.unique(torch.cat([b, xyz], dim=1), dim=0).int()
    return SparseTensor(torch.randn(coords.shape[0], channels, generator=g), coords)


def _input_of(x: SparseTensor, kernel_size: int, stride: int, transposed: bool, channels: int) -> SparseTensor:
    """``x`` itself, or for a transposed conv the coarse tensor that a strided conv of ``x`` gives."""
    if not transposed:
        return x
    coarse = Conv3d(x.feats.shape[1], channels, kernel_size, stride)(x)
    return coarse.with_feats(coarse.feats.detach())


def _max_difference(ours: SparseTensor, ref_coords: torch.Tensor, ref_feats: torch.Tensor) -> float:
    rows = rows_of(ours.coords, ref_coords)
    assert ours.coords.shape[0] == ref_coords.shape[0], "output voxel counts differ"
    assert bool((rows >= 0).all()), "output voxels differ"
    return float((ours.feats.detach()[rows] - ref_feats).abs().max())


def test_keys_are_distinct_and_lookup_matches_a_dict() -> None:
    x = _random_tensor(400, 1)
    keys = pack_keys(x.coords)
    assert torch.unique(keys).numel() == keys.numel()
    queries = pack_keys(_random_tensor(400, 1, seed=1).coords)
    assert torch.equal(KeyTable(keys).lookup(queries), lookup_reference(keys, queries))


def test_coordinates_out_of_range_are_one_clear_error() -> None:
    with pytest.raises(SparseTensorError, match="voxel coordinates must lie in"):
        pack_keys(torch.tensor([[0, 40000, 0, 0]]))
    with pytest.raises(SparseTensorError, match="batch indices must lie in"):
        pack_keys(torch.tensor([[0, 1, 2, 3], [-1, 0, 0, 0]]))


def test_all_offsets_at_once_match_one_lookup_per_offset() -> None:
    """The kernel maps' one-pass search gives, offset by offset, the pairs of the plain per-offset search."""
    table = KeyTable(pack_keys(_random_tensor(300, 1, extent=5).coords))
    queries = KeyTable(pack_keys(_random_tensor(200, 1, extent=5, seed=2).coords))
    deltas = [offset_delta(o) for o in (kernel_offsets(3) * 2).tolist()]
    found, at, counts = table.shifted_matches_all(queries, deltas)
    assert sum(counts) == found.numel() == at.numel() > 0
    for delta, f, a in zip(deltas, found.split(counts), at.split(counts), strict=True):
        expected_found, expected_at = table.shifted_matches(queries, delta)
        assert torch.equal(f, expected_found)
        assert torch.equal(a, expected_at)
    empty = KeyTable(pack_keys(torch.zeros(0, 4, dtype=torch.int32)))
    assert empty.shifted_matches_all(queries, deltas)[2] == [0] * len(deltas)


@pytest.mark.parametrize("tensor_stride", [1, 2])
def test_kernel_maps_match_the_dict_reference(tensor_stride: int) -> None:
    x = _random_tensor(150, 1, extent=6)
    coords = x.coords * tensor_stride
    sub = submanifold_map(coords, tensor_stride, 3)
    expected = kernel_map_reference(coords, coords, tensor_stride, 3)
    assert [
        set(zip(i.tolist(), o.tolist(), strict=True)) for i, o in zip(sub.in_rows, sub.out_rows, strict=True)
    ] == expected
    for k in (2, 3):
        out = downsampled_coords(coords, tensor_stride, k, 2)
        expected = kernel_map_reference(coords, out, tensor_stride, k)
        for down in (strided_map(coords, out, tensor_stride, k, 2), strided_map(coords, out, tensor_stride, k)):
            got = [
                set(zip(i.tolist(), o.tolist(), strict=True)) for i, o in zip(down.in_rows, down.out_rows, strict=True)
            ]
            assert got == expected  # the window fast path (k2 s2) and the general lookups agree with the dict
        assert set().union(*[{o for _, o in pairs} for pairs in expected]) == set(range(out.shape[0]))


def test_spconv_is_a_sound_reference_when_torch_runs_two_threads() -> None:
    """spconv's CPU kernels race on more than one torch thread (rows now and then wrong by up to 0.4): the
    reference runs them on one, so a node or test that set two threads before does not break the comparison."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for trial in range(4):
            torch.manual_seed(trial)
            for kernel_size, stride, transposed in CONV_KINDS:
                x = _input_of(_random_tensor(300, 5, seed=trial), kernel_size, stride, transposed, 6)
                conv = Conv3d(x.feats.shape[1], 7, kernel_size, stride, transposed=transposed)
                ref_coords, ref_feats = spconv_conv(x, conv.kernel, kernel_size, stride, transposed)
                assert torch.get_num_threads() == 2  # the caller's count is given back
                assert _max_difference(conv(x), ref_coords, ref_feats) <= 1e-4
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize(("kernel_size", "stride", "transposed"), CONV_KINDS)
def test_convs_match_spconv_on_random_input(kernel_size: int, stride: int, transposed: bool) -> None:
    torch.manual_seed(0)
    x = _input_of(_random_tensor(300, 5), kernel_size, stride, transposed, 6)
    conv = Conv3d(x.feats.shape[1], 7, kernel_size, stride, transposed=transposed)
    y = conv(x)
    ref_coords, ref_feats = spconv_conv(x, conv.kernel, kernel_size, stride, transposed)
    assert _max_difference(y, ref_coords, ref_feats) <= 1e-4


@pytest.mark.real_data
@pytest.mark.parametrize(("kernel_size", "stride", "transposed"), [(3, 1, False), (2, 2, False), (2, 2, True)])
def test_convs_match_spconv_on_a_real_scan(real_data: Path, kernel_size: int, stride: int, transposed: bool) -> None:
    scan = np.fromfile(real_data / "semantickitti" / "000000.bin", dtype=np.float32).reshape(-1, 4)
    points = make_points(torch.from_numpy(scan[:, :3]), torch.from_numpy(scan), voxel_size=0.05)
    torch.manual_seed(0)
    x = _input_of(initial_voxelize(points), kernel_size, stride, transposed, 8)
    assert x.coords.shape[0] > 10_000
    conv = Conv3d(x.feats.shape[1], 8, kernel_size, stride, transposed=transposed)
    ref_coords, ref_feats = spconv_conv(x, conv.kernel, kernel_size, stride, transposed)
    assert _max_difference(conv(x), ref_coords, ref_feats) <= 1e-4


def test_voxelisation_averages_the_points_of_each_voxel() -> None:
    xyz = torch.tensor([[0.2, 0.2, 0.2], [0.7, 0.1, 0.9], [1.5, 0.0, 0.0], [-0.5, 0.0, 0.0]])
    feats = torch.tensor([[1.0], [3.0], [5.0], [7.0]])
    x = initial_voxelize(make_points(xyz, feats, voxel_size=1.0))
    by_voxel = {tuple(c): float(f) for c, f in zip(x.coords.tolist(), x.feats[:, 0], strict=True)}
    assert by_voxel == {(0, 0, 0, 0): 2.0, (0, 1, 0, 0): 5.0, (0, -1, 0, 0): 7.0}
    # back at stride 1 through point_to_voxel: the same averages
    assert torch.allclose(point_to_voxel(x, make_points(xyz, feats, 1.0)).feats, x.feats)


def test_trilinear_devoxelisation_matches_the_loop_reference() -> None:
    g = torch.Generator().manual_seed(3)
    xyz = torch.rand(200, 3, generator=g) * 6 - 3
    points = make_points(xyz, torch.ones(200, 1), voxel_size=0.5)
    x = initial_voxelize(points)
    coarse = Conv3d(1, 3, 2, 2)(x)
    coarse = coarse.with_feats(torch.randn(coarse.feats.shape, generator=g))
    got = voxel_to_point(coarse, points).feats
    assert torch.allclose(got, voxel_to_point_reference(coarse, points), atol=1e-5)
    # a point at a voxel centre takes exactly that voxel's features
    centre = PointTensor(torch.ones(1, 1), torch.tensor([[0.0, 1.0, 1.0, 1.0]]) + coarse.coords[:1].float())
    assert torch.allclose(voxel_to_point(coarse, centre).feats, coarse.feats[:1])


@pytest.mark.parametrize(("kernel_size", "stride", "transposed"), [(3, 1, False), (3, 2, False), (2, 2, True)])
def test_conv_gradients_pass_gradcheck(kernel_size: int, stride: int, transposed: bool) -> None:
    x = _input_of(_random_tensor(20, 2, batch=1, extent=3), kernel_size, stride, transposed, 2)
    feats = x.feats.double().requires_grad_()
    weight = torch.randn(kernel_size**3, 2, 3, dtype=torch.float64, requires_grad=True)

    def conv(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return sparse_conv3d(x.with_feats(f), w, kernel_size, stride, transposed).feats

    assert torch.autograd.gradcheck(conv, (feats, weight))


def test_point_voxel_gradients_pass_gradcheck() -> None:
    g = torch.Generator().manual_seed(5)
    xyz = (torch.rand(30, 3, generator=g) * 4).double()
    feats = torch.randn(30, 2, dtype=torch.float64, generator=g, requires_grad=True)
    points = make_points(xyz, feats.detach(), voxel_size=1.0)
    x = initial_voxelize(points)

    def round_trip(f: torch.Tensor) -> torch.Tensor:
        voxels = point_to_voxel(x, points.with_feats(f))
        return voxel_to_point(voxels, points).feats

    assert torch.autograd.gradcheck(round_trip, (feats,))


def test_engine_setting() -> None:
    assert load_engine(SparseSettings().engine).Conv3d is Conv3d
    with pytest.raises(SparseTensorError, match=r"sparse\.engine must be one of"):
        load_engine("minkowski")
    with pytest.raises(ConfigError, match="engine"):
        SparseSettings(engine="minkowski")  # type: ignore[arg-type]
    try:
        import torchsparse  # noqa: F401
    except ImportError:
        with pytest.raises(SparseTensorError, match="torchsparse cannot be imported"):
            load_engine("torchsparse")


def test_a_transposed_conv_needs_the_finer_coordinates() -> None:
    x = _random_tensor(50, 2)
    coarse = SparseTensor(x.feats, x.coords * 2, stride=2)  # a fresh cache: stride 1 was never seen
    with pytest.raises(SparseTensorError, match="coordinates of stride 1"):
        Conv3d(2, 2, 2, 2, transposed=True)(coarse)
