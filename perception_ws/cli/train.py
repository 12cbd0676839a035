"""``perception train``: the command line of :mod:`perception_ws.training` (imports torch only when run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from perception_ws.cli.args import DEFAULT_SCENE_CONTENT, SCENE_CONTENT_CHOICES, Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``perception train``: train a range-image or point-voxel segmenter, resuming from ``--out``."""
    train = sub.add_parser(
        "train",
        help="train a segmenter (range image or point-voxel) on simulated or real labelled scans (resumes from --out)",
        description="Train SqueezeSeg / SqueezeSegV2 (optionally with the CRF), or SPVCNN / the SPVNAS super-network "
        "on the sweeps' points. Run it again with the same "
        "arguments to resume after a kill. Several GPUs: torchrun --nproc_per_node N -m perception_ws.cli train ...",
    )
    train.add_argument(
        "--model", default="squeezesegv2",
        help="squeezeseg, squeezesegv2 (default; range image), spvcnn or spvnas (points; spvnas: the super-network, a "
        "sub-network drawn per process per step)",
    )  # fmt: skip
    train.add_argument("--voxel-size", type=float, default=0.05, help="spvcnn/spvnas: finest voxel, m (default 0.05)")
    train.add_argument(
        "--width-ratio", type=float, default=1.0,
        help="spvcnn/spvnas: SPVCNN's channel widths times this (spvnas: the super-network's largest; default 1.0)",
    )  # fmt: skip
    train.add_argument(
        "--sandwich", type=int, default=0, metavar="N",
        help="spvnas: train the largest, the smallest and N random sub-networks per step, gradients summed (the "
        "sandwich rule; N+2 forward/backward passes a step); 0 (default): one random sub-network per process per step",
    )  # fmt: skip
    train.add_argument("--crf", action="store_true", help="add the recurrent CRF layer, trained end to end")
    train.add_argument(
        "--data", default=["sim"], nargs="+",
        help="'sim' (rendered on the fly by the data workers, default), 'sim-gpu' (whole batches rendered on the "
        "training device; the workers only build scenes), a simulated dataset folder, real labelled frames, "
        "carla://HOST:PORT (a CARLA server; --workers 0), or several mixed by weight: SOURCE@WEIGHT ... "
        "(e.g. --data sim@0.7 /data/GTAV@0.3)",
    )  # fmt: skip
    train.add_argument("--out", required=True, help="folder for the checkpoint, log.csv and curves.png")
    train.add_argument("--classes", default="kitti3", choices=("kitti3", "semantic"))
    train.add_argument("--steps", type=int, default=20000)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--workers", type=int, default=2, help="data-loading processes (sim-gpu: scene builders; default 2)"
    )
    train.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    train.add_argument("--no-amp", action="store_true", help="train in fp32 on the GPU (default: bf16 autocast)")
    train.add_argument("--sensor", default="hdl64e", help="simulated sensor (default hdl64e)")
    train.add_argument("--dropout", default="measured", choices=("none", "measured", "physical"))
    train.add_argument(
        "--intensity", default="model",
        help="simulated intensity: off, model (default) or lir:PATH (a saved LIR network, rendered per sweep)",
    )  # fmt: skip
    train.add_argument(
        "--frames-per-scene", type=int, default=4,
        help="simulated sweeps per scene (default 4; sim-gpu renders them in one call: e.g. 32)",
    )  # fmt: skip
    train.add_argument(
        "--scene-content", default=DEFAULT_SCENE_CONTENT, choices=SCENE_CONTENT_CHOICES,
        help="simulated streets: 'v2' (default) adds hard negatives, parked bicycles and more people to 'v1'",
    )  # fmt: skip
    train.add_argument(
        "--intensity-input", default="keep", choices=("keep", "zero"),
        help="'zero': the model ignores intensity (in training and in use)",
    )  # fmt: skip
    train.add_argument("--checkpoint-every", type=int, default=500)
    train.add_argument("--max-minutes", type=float, default=None, help="stop with a checkpoint after this long")
    train.add_argument(
        "--target", default=None,
        help="unlabelled real scans of the target sensor (a folder, file or bag perception_ws.io reads): each step "
        "also runs one real batch and adds the geodesic correlation alignment (GCA) term to the loss",
    )  # fmt: skip
    train.add_argument(
        "--init", default=None, metavar="W.pt",
        help="start from these weights (fine-tuning; their input normalisation is kept); default: a fresh network",
    )  # fmt: skip
    train.add_argument(
        "--gca-weight", type=float, default=10.0, help="weight of the GCA term (default 10, as in SqueezeSegV2)"
    )
    train.add_argument(
        "--gca-distance", default="log_euclidean", choices=("log_euclidean", "affine_invariant"),
        help="geodesic distance between the two batches' logit covariances (default log_euclidean)",
    )  # fmt: skip
    train.add_argument(
        "--channel-scale", type=float, default=1.0,
        help="range-image models: every layer's channels times this, in 1/16 steps (0.5: about 3x faster on a CPU)",
    )  # fmt: skip
    train.add_argument(
        "--teacher", default=None, metavar="W.pt",
        help="distil from these weights (e.g. the shipped default.pt): each step adds the KL divergence from the "
        "teacher's class probabilities on the simulated batch and, with --target, on a real batch (which then "
        "serves distillation instead of GCA; no real label is read)",
    )  # fmt: skip
    train.add_argument("--distill-weight", type=float, default=1.0, help="weight of the distillation term (default 1)")
    train.add_argument(
        "--distill-temperature", type=float, default=2.0, help="softmax temperature of distillation (default 2)"
    )
    train.add_argument("--monitor", default=None, help="labelled frames scored at each checkpoint (monitoring only)")
    train.add_argument(
        "--agreement-scans", default=None, metavar="DIR",
        help="with --teacher: unlabelled real scans the student is NOT distilled on; each checkpoint logs its "
        "agreement with the teacher's labels on them (agree_pixels, agree_car, ...: label-free)",
    )  # fmt: skip
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from perception_ws.training import TrainConfig, train
    from perception_ws.training.samples import FolderSource

    config = TrainConfig(
        model=args.model,
        crf=args.crf,
        classes=args.classes,
        data=",".join(args.data),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        workers=args.workers,
        device=args.device,
        amp=not args.no_amp,
        sensor=args.sensor,
        dropout=args.dropout,
        intensity=args.intensity,
        frames_per_scene=args.frames_per_scene,
        scene_content=args.scene_content,
        intensity_input=args.intensity_input,
        checkpoint_every=args.checkpoint_every,
        log_every=min(20, args.checkpoint_every),
        max_minutes=args.max_minutes,
        target=args.target,
        init=args.init,
        gca_weight=args.gca_weight,
        gca_distance=args.gca_distance,
        voxel_size=args.voxel_size,
        width_ratio=args.width_ratio,
        sandwich=args.sandwich,
        channel_scale=args.channel_scale,
        teacher=args.teacher,
        distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature,
    )
    out = Path(args.out).expanduser()
    monitor = FolderSource(Path(args.monitor), classes=args.classes) if args.monitor else None
    agreement = None
    if args.agreement_scans:
        from perception_ws.adapt.target import TargetScans

        scans = TargetScans(
            Path(args.agreement_scans), sensor=config.sensor, columns=config.columns, crop_width=config.columns
        )
        agreement = scans.batch(range(len(scans)))
    result = train(config, out, monitor=monitor, agreement_scans=agreement, progress=not args.quiet)
    state = "finished" if result.finished else "stopped (run the same command again to resume)"
    print(f"perception train: {state} at step {result.step}/{config.steps}, loss {result.loss:.4f}; {result.out}")
    return 0
