"""``perception search``: the standalone export of a sub-network, the evolutionary search on real frames at tiny
scale (budget kept, resumed search equal to an uninterrupted one), and the exported file in eval and the node."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.cli import main
from perception_ws.config import PipelineConfig
from perception_ws.errors import PerceptionError
from perception_ws.evaluation import prepare_frame
from perception_ws.io import load
from perception_ws.models.spvnas.evolution import EvolutionSettings
from perception_ws.models.spvnas.network import scaled_widths
from perception_ws.models.spvnas.point_model import PointVoxelSegmenter
from perception_ws.models.spvnas.search_run import STATE, Budget, SubnetJudge, search
from perception_ws.models.spvnas.subnet_export import standalone_subnet
from perception_ws.models.spvnas.supernet import SearchSpace, largest_subnet, sample_subnet, smallest_subnet
from perception_ws.models.weights import load_any_weights, read_manifest, save_weights
from perception_ws.pipeline import Pipeline
from perception_ws.torch_device import device_hardware

#: kernels 1 and 3, so the export's centre-row slice is exercised too
SPACE = SearchSpace(max_widths=scaled_widths(0.125), kernel_choices=(1, 3))
SETTINGS = EvolutionSettings(population=4, generations=2, seed=0)


@pytest.fixture(scope="module")
def frames_dir(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real SqueezeSeg frames cut to their middle 128 columns (about 7,000 points each): seconds per search."""
    folder = tmp_path_factory.mktemp("frames")
    for path in sorted((real_data / "kitti_squeezeseg").glob("*.npy"))[:2]:
        np.save(folder / path.name, np.load(path, allow_pickle=False)[:, 192:320])
    return folder


@pytest.fixture(scope="module")
def supernet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (seeded) tiny super-network: the search's plumbing does not need a good one."""
    torch.manual_seed(0)
    model = PointVoxelSegmenter("spvnas", 4, voxel_size=0.2, space=SPACE)
    path = tmp_path_factory.mktemp("supernet") / "supernet.pt"
    return save_weights(model.eval(), path, training={"data": "none (untrained)", "steps": 0}, scores={})


@pytest.fixture(scope="module")
def budget(supernet: Path, frames_dir: Path) -> Budget:
    """Halfway between the smallest and the largest sub-network's MACs on the first frame."""
    model = load_any_weights(supernet)
    assert isinstance(model, PointVoxelSegmenter)
    judge = SubnetJudge(model, [prepare_frame(load(sorted(frames_dir.glob("*.npy"))[0]))])
    low, high = judge.complexity(smallest_subnet(SPACE))[0], judge.complexity(largest_subnet(SPACE))[0]
    return Budget("macs", (low + high) / 2)


@pytest.mark.real_data
def test_an_exported_sub_network_computes_what_the_super_network_does_with_it(frames_dir: Path) -> None:
    torch.manual_seed(1)
    supernet = PointVoxelSegmenter("spvnas", 4, voxel_size=0.2, space=SPACE).eval()
    frame = prepare_frame(load(sorted(frames_dir.glob("*.npy"))[0]))
    xyz = torch.from_numpy(frame.xyz)
    feats = torch.cat([xyz, torch.from_numpy(frame.intensity)[:, None]], 1)
    subnet = sample_subnet(SPACE, random.Random(3))
    assert 1 in subnet.kernels
    assert 1 in subnet.depths
    supernet.set_subnet(subnet)
    small = standalone_subnet(supernet, subnet)
    big_params = sum(p.numel() for p in supernet.parameters())
    assert sum(p.numel() for p in small.parameters()) < big_params  # its own, smaller tensors
    with torch.no_grad():
        expected = supernet.forward_points(xyz, feats)
        torch.testing.assert_close(small.forward_points(xyz, feats), expected, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def searched(supernet: Path, frames_dir: Path, budget: Budget, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of a whole search (population 4, 2 generations, 1 frame) run by the command line."""
    out = tmp_path_factory.mktemp("search")
    args = ["search", "--weights", str(supernet), "--budget-macs", str(budget.limit), "--data", str(frames_dir)]
    options = ["--out", str(out), "--frames", "1", "--population", "4", "--generations", "2", "--quiet"]
    assert main([*args, *options]) == 0
    return out


@pytest.mark.real_data
def test_the_search_keeps_the_budget_and_exports_a_file_eval_and_the_node_load(
    searched: Path, frames_dir: Path, budget: Budget, capsys: pytest.CaptureFixture[str]
) -> None:
    state = json.loads((searched / STATE).read_text())
    assert state["generation"] == 1
    assert all(c["macs"] <= budget.limit for c in state["population"])
    manifest = read_manifest(searched / "subnet.pt")
    assert manifest["model"]["subnet"] == state["population"][0]["subnet"]
    assert manifest["scores"]["search"]["macs"] == state["population"][0]["macs"]
    assert manifest["scores"]["search"]["latency_ms"] > 0
    assert state["device"] == manifest["scores"]["search"]["latency_device"] == "cpu"  # the default --device
    assert state["hardware"] == manifest["scores"]["search"]["latency_hardware"] == device_hardware(torch.device("cpu"))
    weights = str(searched / "subnet.pt")
    assert main(["eval", "--weights", weights, "--data", str(frames_dir), "--no-instances", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 2
    scan = load(sorted(frames_dir.glob("*.npy"))[0])
    config = PipelineConfig().replace(**{"segmenter.model": "spvnas", "segmenter.weights": weights})
    assert len(Pipeline(config).process(scan.points, stamp_s=0.0).labels) == len(scan.points)


@pytest.mark.real_data
def test_a_resumed_search_ends_where_an_uninterrupted_one_does(
    searched: Path, supernet: Path, frames_dir: Path, budget: Budget, tmp_path: Path
) -> None:
    stopped, _ = search(supernet, frames_dir, tmp_path, budget, SETTINGS, frames=1, progress=False, stop_after=1)
    assert stopped is None
    assert json.loads((tmp_path / STATE).read_text())["generation"] == 0
    resumed, _ = search(supernet, frames_dir, tmp_path, budget, SETTINGS, frames=1, progress=False)
    population = [json.loads((run / STATE).read_text())["population"] for run in (searched, tmp_path)]
    assert [(c["subnet"], c["score"], c["macs"]) for c in population[1]] == [
        (c["subnet"], c["score"], c["macs"]) for c in population[0]
    ]
    assert resumed is not None
    a, b = load_any_weights(searched / "subnet.pt").state_dict(), load_any_weights(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(PerceptionError, match="a search with other settings"):
        search(supernet, frames_dir, tmp_path, Budget("macs", budget.limit * 2), SETTINGS, frames=1)


@pytest.mark.real_data
def test_a_budget_below_every_sub_network_is_one_line(supernet: Path, frames_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PerceptionError, match="even the smallest sub-network is over the budget"):
        search(supernet, frames_dir, tmp_path, Budget("macs", 1.0), SETTINGS, frames=1, progress=False)


@pytest.mark.real_data
def test_a_latency_search_resumes_only_on_the_hardware_that_timed_it(
    supernet: Path, frames_dir: Path, budget: Budget, tmp_path: Path
) -> None:
    one = EvolutionSettings(population=2, generations=2, seed=0)
    latency = Budget("ms", 1e6)  # every sub-network fits: this is about where the times were taken
    for kind, out in ((latency, tmp_path / "ms"), (budget, tmp_path / "macs")):
        search(supernet, frames_dir, out, kind, one, frames=1, device="cpu", progress=False, stop_after=1)
        state = json.loads((out / STATE).read_text())
        assert (state["device"], state["hardware"]) == ("cpu", device_hardware(torch.device("cpu")))
        if kind is latency:
            assert all(c["ms"] > 0 for c in state["population"])  # each candidate timed on the CPU
        state["device"], state["hardware"] = "cuda:0", "cuda (NVIDIA H100 80GB HBM3)"  # as a GPU run leaves it
        (out / STATE).write_text(json.dumps(state))
    with pytest.raises(PerceptionError, match=r"measured on cuda \(NVIDIA H100 80GB HBM3\), this run is on cpu"):
        search(supernet, frames_dir, tmp_path / "ms", latency, one, frames=1, device="cpu", progress=False)
    # MACs do not depend on the device: that search goes on here, and says where it ran last
    path, _ = search(supernet, frames_dir, tmp_path / "macs", budget, one, frames=1, device="cpu", progress=False)
    assert path is not None
    assert json.loads((tmp_path / "macs" / STATE).read_text())["device"] == "cpu"


@pytest.mark.real_data
def test_a_device_torch_cannot_use_is_one_line(
    supernet: Path, frames_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["search", "--weights", str(supernet), "--budget-macs", "1e12", "--data", str(frames_dir)]
    assert main([*args, "--out", str(tmp_path), "--device", "gpu", "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("perception search: error: device 'gpu' is not a torch device")
    assert "\n" not in error
    assert not (tmp_path / STATE).exists()
