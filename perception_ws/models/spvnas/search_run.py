"""``perception search``: the evolutionary search run on a trained SPVNAS super-network, resumable, and its export.

Each candidate sub-network is scored as the once-for-all searches do: the super-network's weights with that
sub-network active, its batch-norm statistics recomputed on the search frames (shared statistics fit no single
sub-network), then the mean IoU of the KITTI-3 object classes (car, pedestrian, cyclist) over the scored points of
the frames (``perception eval``'s views). Its cost is its MACs on the first frame (``spvnas.complexity``) or its
measured latency there (median of 3 runs after one warm-up; measured for every candidate under a latency budget,
else only for the exported one). Everything runs on one device (``--device``: the CPU or a GPU; on a GPU each timed
run waits for the GPU to finish). After every generation the state goes to ``OUT/search_state.json`` (atomically),
with the device and its hardware; run the same command again to resume (on another device too, except under a
latency budget: latencies of other hardware would be compared with this one's). The best sub-network is written as
a standalone weights file (``OUT/subnet.pt`` and its manifest) that ``perception eval`` and the node load.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from perception_ws.errors import PerceptionError
from perception_ws.evaluation import EvalFrame, prepare_frame
from perception_ws.io import open_dataset
from perception_ws.io.atomic import atomic_file
from perception_ws.labels import KITTI3
from perception_ws.metrics import ClassMetrics
from perception_ws.models.spvnas.complexity import sparse_model_complexity
from perception_ws.models.spvnas.evolution import EvolutionSettings, first_population, next_population
from perception_ws.models.spvnas.network import make_points
from perception_ws.models.spvnas.point_model import PointVoxelSegmenter, subnet_from_json, subnet_to_json
from perception_ws.models.spvnas.subnet_export import standalone_subnet
from perception_ws.models.spvnas.supernet import SubnetConfig
from perception_ws.models.weights import json_safe, load_point_weights, read_manifest, save_weights
from perception_ws.torch_device import device_clock, device_hardware, resolve_device

STATE = "search_state.json"
SUBNET = "subnet.pt"


@dataclass(frozen=True)
class Budget:
    """At most ``limit`` of ``kind``: MACs (on the first frame) or milliseconds (measured here)."""

    kind: Literal["macs", "ms"]
    limit: float


@dataclass
class Candidate:
    """A scored sub-network: mean object IoU on the frames, MACs, used parameters, latency."""

    subnet: SubnetConfig
    score: float
    macs: int
    params: int
    ms: float

    def to_json(self) -> dict[str, Any]:
        """JSON-safe (an unmeasured latency, NaN, as null)."""
        data: dict[str, Any] = json_safe({**asdict(self), "subnet": subnet_to_json(self.subnet)})
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Candidate:
        ms = math.nan if data["ms"] is None else float(data["ms"])
        return cls(**{**data, "subnet": subnet_from_json(data["subnet"]), "ms": ms})


class SubnetJudge:
    """Costs and scores of the super-network's sub-networks on a few frames (each computed once)."""

    def __init__(self, model: PointVoxelSegmenter, frames: list[EvalFrame], device: torch.device | None = None) -> None:
        if model.space is None or model.fixed_subnet is not None:
            raise PerceptionError(f"search: the weights hold a {model.name} network, not an SPVNAS super-network")
        if model.num_classes != len(KITTI3):
            raise PerceptionError(f"search scores KITTI-3 labels; the super-network has {model.num_classes} classes")
        self.device = device or torch.device("cpu")
        self.model, self.frames = model.to(self.device).eval(), frames
        self.trained = {k: v.clone() for k, v in model.state_dict().items()}  # each candidate starts from these
        self._complexity: dict[SubnetConfig, tuple[int, int]] = {}
        self._latency: dict[SubnetConfig, float] = {}

    def _inputs(self, frames: list[EvalFrame]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xyz = torch.from_numpy(np.concatenate([f.xyz for f in frames]))
        feats = torch.cat([xyz, torch.from_numpy(np.concatenate([f.intensity for f in frames]))[:, None]], 1)
        batch = torch.cat([torch.full((len(f.xyz),), float(i)) for i, f in enumerate(frames)])
        return xyz.to(self.device), feats.to(self.device), batch.to(self.device)

    def activate(self, subnet: SubnetConfig) -> None:
        """``subnet`` active on the trained weights, its norm statistics those of the frames (one batch)."""
        self.model.load_state_dict(self.trained)
        self.model.set_subnet(subnet)
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [norm.momentum for norm in norms]
        for norm in norms:  # momentum 1: the running statistics become this batch's exactly (dropout stays off)
            norm.momentum, norm.training = 1.0, True
        with torch.no_grad():
            self.model.forward_points(*self._inputs(self.frames))
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum, norm.training = momentum, False

    def complexity(self, subnet: SubnetConfig) -> tuple[int, int]:
        """(MACs, used parameters) of ``subnet`` on the first frame."""
        if subnet not in self._complexity:
            self.model.set_subnet(subnet)
            xyz, feats, _ = self._inputs(self.frames[:1])
            counted = sparse_model_complexity(self.model.net, make_points(xyz, feats, self.model.voxel_size))
            self._complexity[subnet] = (counted.macs, counted.params)
        return self._complexity[subnet]

    def latency(self, subnet: SubnetConfig) -> float:
        """Milliseconds of ``subnet`` on the first frame on the judge's device: median of 3 runs after a warm-up."""
        if subnet not in self._latency:
            self.model.set_subnet(subnet)
            xyz, feats, _ = self._inputs(self.frames[:1])
            times = []
            with torch.inference_mode():
                for _ in range(4):
                    start = device_clock(self.device)
                    self.model.forward_points(xyz, feats)
                    times.append((device_clock(self.device) - start) * 1e3)
            self._latency[subnet] = statistics.median(times[1:])
        return self._latency[subnet]

    def fits(self, budget: Budget) -> Callable[[SubnetConfig], bool]:
        """Whether a sub-network is within ``budget``."""
        if budget.kind == "macs":
            return lambda subnet: self.complexity(subnet)[0] <= budget.limit
        return lambda subnet: self.latency(subnet) <= budget.limit

    def judge(self, subnet: SubnetConfig) -> Candidate:
        """``subnet`` scored on the frames (its norm statistics recomputed first)."""
        (macs, params), ms = self.complexity(subnet), self._latency.get(subnet, math.nan)
        self.activate(subnet)
        metrics = ClassMetrics(KITTI3)
        with torch.inference_mode():
            for frame in self.frames:
                if frame.labels is None:
                    continue
                xyz, feats, _ = self._inputs([frame])
                metrics.update(frame.labels, self.model.forward_points(xyz, feats).argmax(1).cpu().numpy())
        iou = metrics.mean().iou
        return Candidate(subnet, 0.0 if math.isnan(iou) else iou, macs, params, ms)


def read_frames(data: str | Path, count: int) -> list[EvalFrame]:
    """The first ``count`` labelled frames of ``data``, as ``perception eval`` views them."""
    dataset = open_dataset(Path(data).expanduser())
    frames = [prepare_frame(dataset[i]) for i in range(min(count, len(dataset)))]
    frames = [f for f in frames if f.labels is not None and len(f.xyz)]
    if not frames:
        raise PerceptionError(f"search: {data} has no labelled frames to score sub-networks on")
    return frames


def search(
    weights: str | Path,
    data: str | Path,
    out: str | Path,
    budget: Budget,
    settings: EvolutionSettings,
    *,
    frames: int = 4,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[Path | None, Candidate]:
    """Search (or resume into ``out``) on ``device``; write and return the best sub-network's weights file and its
    candidate.

    ``stop_after``: end this process after that many generations (as a kill would, the state saved; no export, the
    path is None): for tests of the resume path.
    """
    from tqdm import tqdm

    out = Path(out).expanduser()
    where = resolve_device(device)
    model = load_point_weights(weights)
    judge = SubnetJudge(model, read_frames(data, frames), where)
    hardware = {"device": str(where), "hardware": device_hardware(where)}
    assert model.space is not None  # SubnetJudge checked
    identity = {
        "weights_sha256": read_manifest(weights)["sha256"],
        "data": str(data),
        "frames": frames,
        "budget": asdict(budget),
        "evolution": asdict(settings),
    }
    state = _resume(out / STATE, identity, budget, hardware)
    fits = judge.fits(budget)
    done = 0 if state is None else int(state["generation"]) + 1
    ranked = [] if state is None else [Candidate.from_json(c) for c in state["population"]]
    bar = tqdm(total=settings.generations * settings.population, initial=done * settings.population, unit="subnet",
               desc="search", disable=not progress)  # fmt: skip
    last = settings.generations if stop_after is None else min(settings.generations, done + stop_after)
    for generation in range(done, last):
        if generation == 0:
            population = first_population(model.space, settings, fits)
        else:
            population = next_population(model.space, settings, generation, [c.subnet for c in ranked], fits)
        known = {c.subnet: c for c in ranked}  # a kept parent is not scored again
        scored = []
        for subnet in population:
            scored.append(known[subnet] if subnet in known else judge.judge(subnet))
            bar.update(1)
        ranked = sorted(scored, key=lambda c: -c.score)
        bar.set_postfix(best=f"{ranked[0].score:.3f}")
        _write_state(out / STATE, identity, hardware, generation, ranked)
    bar.close()
    best = ranked[0]
    if last < settings.generations:
        return None, best
    best.ms = judge.latency(best.subnet)
    judge.activate(best.subnet)
    return export_subnet(judge.model, best, out / SUBNET, weights, identity, hardware), best


def export_subnet(
    supernet: PointVoxelSegmenter,
    best: Candidate,
    path: Path,
    weights: str | Path,
    identity: dict[str, Any],
    hardware: dict[str, str],
) -> Path:
    """``best`` cut out of ``supernet`` (its statistics as active now) as ``path`` with its manifest; ``hardware``:
    where the search ran and the latency was measured (``device``, ``hardware``).
    """
    trained = read_manifest(weights).get("training", {})
    training = {
        "data": trained.get("data", "unknown"),
        "steps": trained.get("steps", 0),
        "supernet": str(weights),
        "search": identity,
    }
    scores = {
        "search": {
            "object_miou": best.score,
            "macs": best.macs,
            "params": best.params,
            "latency_ms": best.ms,
            "latency_device": hardware["device"],
            "latency_hardware": hardware["hardware"],
        }
    }
    return save_weights(standalone_subnet(supernet, best.subnet), path, training=training, scores=scores)


def _resume(path: Path, identity: dict[str, Any], budget: Budget, hardware: dict[str, str]) -> dict[str, Any] | None:
    """The state saved in ``path`` (None: a new search), refused if it is another search's, or if its latencies
    were measured on other hardware and the budget is a latency.
    """
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PerceptionError(f"{path}: cannot read the search state ({exc}); remove it to start again") from None
    if state.get("identity") != identity:
        raise PerceptionError(f"{path}: a search with other settings; resume with the same ones, or another --out")
    stored = state.get("hardware", "unrecorded hardware")  # a state from before the hardware was recorded
    if budget.kind == "ms" and stored != hardware["hardware"]:
        raise PerceptionError(
            f"{path}: its latencies were measured on {stored}, this run is on {hardware['hardware']}: a --budget-ms "
            "search resumes only there (or use another --out)"
        )
    return state


def _write_state(
    path: Path, identity: dict[str, Any], hardware: dict[str, str], generation: int, ranked: list[Candidate]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"identity": identity, **hardware, "generation": generation, "population": [c.to_json() for c in ranked]}
    with atomic_file(path) as handle:
        handle.write(json.dumps(state, indent=1, allow_nan=False).encode())
