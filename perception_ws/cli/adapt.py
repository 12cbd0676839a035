"""`perception adapt`: a model adapted to a sensor from its unlabelled scans (:mod:`perception_ws.adapt.run`).

    perception adapt --target PATH --out DIR [--sensor NAME] [--init W.pt] [--steps N] [--batch-size B]
                     [--gca-weight X] [--scene-content v1|v2] [--small] [--device auto|cpu|cuda]
                     [--workers K] [--max-minutes M] [--quiet]

Several GPUs: ``torchrun --nproc_per_node N -m perception_ws.cli adapt ...`` (the training stage runs under
DDP; the other stages run once). Only the standard library is imported here.
"""

from __future__ import annotations

import argparse

from perception_ws.cli.args import DEFAULT_SCENE_CONTENT, SCENE_CONTENT_CHOICES, Subparsers, positive


def add_parser(sub: Subparsers) -> None:
    """Register ``perception adapt``."""
    adapt = sub.add_parser(
        "adapt",
        help="adapt a model to your sensor from its unlabelled scans (profile, LIR, GCA, PDC; resumable)",
        description="Learn the sensor from unlabelled scans (a folder, file or bag), train on simulated scans of "
        "that sensor with learned intensities and geodesic correlation alignment, calibrate batch norm on the "
        "scans, and write OUT/weights.pt and a before/after report. Run the same command again to resume.",
    )
    adapt.add_argument("--target", required=True, help="unlabelled scans of your sensor: folder, file or bag")
    adapt.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    adapt.add_argument("--sensor", default=None, help="a built-in sensor of the same beam count to seed the fit")
    adapt.add_argument("--init", default=None, metavar="W.pt", help="fine-tune these weights (default: fresh)")
    adapt.add_argument("--steps", type=positive, default=10000, help="training steps (default 10000)")
    adapt.add_argument("--batch-size", type=positive, default=32, help="simulated crops per step (default 32)")
    adapt.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3; 5e-4 with --init)")
    adapt.add_argument("--lir-steps", type=positive, default=3000, help="LIR training steps (default 3000)")
    adapt.add_argument("--gca-weight", type=float, default=10.0, help="weight of the GCA term (default 10)")
    adapt.add_argument(
        "--scene-content", choices=SCENE_CONTENT_CHOICES, default=DEFAULT_SCENE_CONTENT,
        help="simulated street content (default v2: with hard negatives)",
    )  # fmt: skip
    adapt.add_argument("--frames-per-scene", type=positive, default=16, help="simulated sweeps per scene")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.add_argument("--small", action="store_true", help="a tiny run (a few steps): to try the plumbing on a CPU")
    adapt.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    adapt.add_argument("--workers", type=int, default=2, help="scene-building processes (default 2)")
    adapt.add_argument("--max-minutes", type=float, default=None, help="stop training after this long (resumable)")
    adapt.add_argument("--quiet", action="store_true", help="no progress bars")
    adapt.set_defaults(handler=_cmd_adapt)


def _cmd_adapt(args: argparse.Namespace) -> int:
    from perception_ws.adapt.run import AdaptSettings, RunOptions, adapt

    settings = AdaptSettings(
        target=args.target,
        sensor=args.sensor,
        init=args.init,
        steps=args.steps,
        batch_size=args.batch_size,
        # fine-tuning starts from a trained network: a smaller step keeps what it learned
        lr=args.lr if args.lr is not None else (5e-4 if args.init else 2e-3),
        lir_steps=args.lir_steps,
        gca_weight=args.gca_weight,
        scene_content=args.scene_content,
        frames_per_scene=args.frames_per_scene,
        seed=args.seed,
        scale="small" if args.small else "full",
    )
    options = RunOptions(args.device, args.workers, args.max_minutes, progress=not args.quiet)
    report = adapt(settings, args.out, options)
    if report:
        print(f"perception adapt: wrote {args.out}/weights.pt and {args.out}/report/ (report.md, before_after.png)")
    return 0
