"""``perception search``: the evolutionary sub-network search on a trained SPVNAS super-network (resumable).

    perception search --weights SUPERNET.pt (--budget-macs X | --budget-ms Y) --data PATH --out DIR
                      [--frames N] [--population P] [--generations G] [--parent-ratio R] [--mutation-ratio R]
                      [--mutate-prob P] [--seed S] [--device cpu|cuda|cuda:N] [--quiet]

Everything (the super-network, each candidate's batch-norm statistics, its score, its latency) runs on ``--device``.
Writes ``DIR/search_state.json`` after every generation (the same command resumes; under ``--budget-ms`` only on the
same hardware) and the best sub-network as ``DIR/subnet.pt`` with its manifest (sub-network, MACs, parameters,
score, latency and the device it was measured on), which ``perception eval --weights`` and
the node's ``segmenter.model: spvnas`` load. See :mod:`perception_ws.models.spvnas.search_run`.
"""

from __future__ import annotations

import argparse

from perception_ws.cli.args import Subparsers, positive


def add_parser(sub: Subparsers) -> None:
    """Register ``perception search``."""
    s = sub.add_parser(
        "search",
        help="evolutionary search of an SPVNAS super-network's sub-networks under a MACs or latency budget",
        description="Score sub-networks of a trained super-network (object mIoU on labelled frames) under a budget, "
        "evolve them (population, mutation, crossover), export the best as a standalone weights file. Resumable.",
    )
    s.add_argument("--weights", required=True, help="the super-network (perception train --model spvnas)")
    budget = s.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-macs", type=float, default=None, help="at most this many MACs on the first frame")
    budget.add_argument(
        "--budget-ms",
        type=float,
        default=None,
        help="at most this latency, ms, measured on --device on the first frame",
    )
    s.add_argument("--data", required=True, help="labelled frames scored per candidate (any reader)")
    s.add_argument("--out", required=True, help="folder for search_state.json and subnet.pt")
    s.add_argument("--frames", type=positive, default=4, help="frames of --data used (default 4)")
    s.add_argument("--population", type=positive, default=50)
    s.add_argument("--generations", type=positive, default=20)
    s.add_argument("--parent-ratio", type=float, default=0.25)
    s.add_argument("--mutation-ratio", type=float, default=0.5)
    s.add_argument("--mutate-prob", type=float, default=0.1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--device", default="cpu", help="where the search runs and latency is measured: cpu (default), cuda, cuda:N"
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(handler=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> int:
    from perception_ws.models.spvnas.evolution import EvolutionSettings
    from perception_ws.models.spvnas.search_run import Budget, search

    settings = EvolutionSettings(
        args.population, args.generations, args.parent_ratio, args.mutation_ratio, args.mutate_prob, args.seed
    )
    budget = Budget("macs", args.budget_macs) if args.budget_macs is not None else Budget("ms", args.budget_ms)
    path, best = search(args.weights, args.data, args.out, budget, settings, frames=args.frames, device=args.device,
                        progress=not args.quiet)  # fmt: skip
    assert path is not None  # the whole search ran
    print(
        f"perception search: best object mIoU {best.score:.4f}, {best.macs / 1e9:.3f} G MACs, {best.params:,} "
        f"parameters, {best.ms:.1f} ms on {args.device}; {path}"
    )
    return 0
