"""`perception sim`: generate simulated datasets and judge their realism against real scans.

    perception sim generate --out DIR --scenes N --frames M --sensor hdl64e [--camera] [--workers K]
                            [--seed S] [--columns C] [--dropout none|measured|physical] [--intensity off|model|lir:PATH]
                            [--scene-content v1|v2] [--shard K/N]
                            [--backend builtin|carla|dataset] [--carla-host H --carla-port P --carla-town T
                            --carla-traffic N --carla-timeout S] [--dataset PATH]
    perception sim compare --real DIR [--sim DIR | --scenes N] [--out report.png] [--json]

Only the standard library is imported here; the simulator loads when a sub-command runs, so
`perception --help` stays instant. Bad input raises :class:`PerceptionError`, which the CLI prints as
one line (exit status 2). ``compare`` exits 0 when every statistic is within a factor of 2, else 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from perception_ws.cli.args import (
    DEFAULT_SCENE_CONTENT,
    SCENE_CONTENT_CHOICES,
    Subparsers,
    non_negative,
    positive,
    positive_number,
)
from perception_ws.errors import PerceptionError

DROPOUT_CHOICES = ("none", "measured", "physical")
SOURCES = ("builtin", "carla", "dataset")
INTENSITY_HELP = "off, model (the reflectance model) or lir:PATH (a saved LIR network)"
DEFAULT_REPORT = "out/sim_realism.png"


def add_parser(sub: Subparsers) -> None:
    """Register ``sim generate`` and ``sim compare``."""
    sim = sub.add_parser("sim", help="simulated LiDAR datasets: generate them, compare them with real scans")
    tasks = sim.add_subparsers(dest="sim_command", required=True)

    gen = tasks.add_parser("generate", help="render scenes x frames labelled sweeps into a dataset folder")
    gen.add_argument("--out", required=True, help="dataset folder (created; rerun the same command to resume)")
    gen.add_argument(
        "--scenes", type=positive, default=None,
        help="number of scenes (builtin, carla: required; dataset: default, every whole scene the recording holds)",
    )  # fmt: skip
    gen.add_argument("--frames", type=positive, default=5, help="sweeps per scene, along the ego lane (default 5)")
    gen.add_argument("--sensor", default="hdl64e", help="sensor model (see `perception sensors`; default hdl64e)")
    gen.add_argument("--camera", action="store_true", help="also store a camera image per frame")
    gen.add_argument("--workers", type=positive, default=1, help="worker processes (default 1)")
    gen.add_argument("--seed", type=non_negative, default=0, help="dataset seed (default 0)")
    gen.add_argument("--columns", type=positive, default=2048, help="azimuth columns per turn (default 2048)")
    gen.add_argument(
        "--dropout", choices=DROPOUT_CHOICES, default="physical", help="missing returns (default physical)"
    )
    gen.add_argument("--intensity", default="model", help=f"{INTENSITY_HELP}; default model")
    gen.add_argument(
        "--scene-content", choices=SCENE_CONTENT_CHOICES, default=DEFAULT_SCENE_CONTENT,
        help="street content: 'v2' (default) adds hard negatives, parked bicycles and more people to 'v1'",
    )  # fmt: skip
    gen.add_argument(
        "--shard", default="1/1",
        help="render scenes i with i %% N == K-1 only, listed in manifest-shard-K-of-N.json; the N shards' folders "
        "copied into one are the whole dataset (default 1/1)",
    )  # fmt: skip
    gen.add_argument(
        "--backend", choices=SOURCES, default="builtin",
        help="builtin: procedural streets (default); carla: one CARLA session per scene (seeded by the scene), "
        "consecutive ticks; dataset: a recorded dataset (--dataset) cut into scenes of --frames frames",
    )  # fmt: skip
    gen.add_argument("--carla-host", default="localhost", help="with --backend carla (default localhost)")
    gen.add_argument("--carla-port", type=positive, default=2000, help="with --backend carla (default 2000)")
    gen.add_argument("--carla-town", default="", help="with --backend carla: map to load (default: the current one)")
    gen.add_argument("--carla-traffic", type=non_negative, default=0, help="with --backend carla: other vehicles")
    gen.add_argument(
        "--carla-timeout", type=positive_number, default=5.0, metavar="S",
        help="with --backend carla: seconds to wait for the server's first answer (default 5)",
    )  # fmt: skip
    gen.add_argument("--dataset", default="", help="with --backend dataset: GTA-LiDAR .npy folder, sim dataset, …")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_cmd_generate)

    cmp = tasks.add_parser("compare", help="realism report: simulated vs real scans on four statistics (PNG)")
    cmp.add_argument("--real", required=True, help="real scans: a file or folder (sub-folders are searched)")
    source = cmp.add_mutually_exclusive_group()
    source.add_argument("--sim", default=None, help="a generated dataset folder (`perception sim generate`)")
    source.add_argument("--scenes", type=positive, default=None, help="simulate N scenes on the fly (default 10)")
    cmp.add_argument("--frames", type=positive, default=2, help="with --scenes: sweeps per scene (default 2)")
    cmp.add_argument("--seed", type=non_negative, default=0, help="with --scenes: dataset seed (default 0)")
    cmp.add_argument("--dropout", choices=DROPOUT_CHOICES, default="physical", help="with --scenes (default physical)")
    cmp.add_argument("--intensity", default="model", help=f"with --scenes: {INTENSITY_HELP}; default model")
    cmp.add_argument("--sensor", default="hdl64e", help="sensor of the real scans (default hdl64e)")
    cmp.add_argument("--out", default=DEFAULT_REPORT, help=f"PNG to write (default {DEFAULT_REPORT})")
    cmp.add_argument("--json", action="store_true", help="print the numbers as JSON instead of the table")
    cmp.set_defaults(handler=_cmd_compare)


def _cmd_generate(args: argparse.Namespace) -> int:
    from perception_ws.io.sim_manifest import manifest_name
    from perception_ws.shard import parse_shard
    from perception_ws.sim.dataset import GenerateConfig, generate_dataset
    from perception_ws.sim.world.scene_config import scene_config_for

    shard = parse_shard(args.shard)  # a bad --shard fails before the simulator loads
    config = GenerateConfig(
        scenes=_scenes(args),
        frames=args.frames,
        sensor=args.sensor,
        columns=args.columns,
        seed=args.seed,
        dropout=args.dropout,
        intensity=args.intensity,
        camera=args.camera,
        scene=scene_config_for(args.scene_content),
        source=args.backend,
        carla_host=args.carla_host,
        carla_port=args.carla_port,
        carla_town=args.carla_town,
        carla_traffic=args.carla_traffic,
        dataset_path=args.dataset,
    )
    workers, progress = args.workers, not args.quiet
    if config.source == "builtin":
        manifest = generate_dataset(args.out, config, workers=workers, progress=progress, shard=shard)
    else:
        from perception_ws.sim.recorded_scenes import generate_recorded

        manifest = generate_recorded(args.out, config, workers, progress, shard, connect_timeout_s=args.carla_timeout)
    done, planned = len(manifest["frames"]), manifest["planned_frames"]
    part = "" if shard.whole else f"shard {shard}: "
    scenes = len(shard.indices(config.scenes))
    print(f"{args.out}: {part}{done} of {planned} frames ({scenes} scenes x {config.frames}), {manifest_name(shard)}")
    return 0


def _scenes(args: argparse.Namespace) -> int:
    """``--scenes``, or for ``--backend dataset`` the whole scenes of ``--frames`` frames the recording holds."""
    if args.scenes is not None:
        return int(args.scenes)
    if args.backend != "dataset":
        raise PerceptionError(f"sim generate: --backend {args.backend} needs --scenes N")
    if not args.dataset:
        raise PerceptionError("sim generate: --backend dataset needs --dataset PATH (the recording to cut into scenes)")
    from perception_ws.io import open_dataset

    frames = len(open_dataset(args.dataset))
    if frames < args.frames:
        raise PerceptionError(f"sim generate: {args.dataset} holds {frames} frames, fewer than --frames {args.frames}")
    return frames // int(args.frames)


#: columns of the full-turn views the report compares on (SqueezeSeg's front view is a quarter of it).
_COMPARE_COLUMNS = 2048


def _cmd_compare(args: argparse.Namespace) -> int:
    from perception_ws.sim.realism.compare import compare, json_text, render_report
    from perception_ws.sim.realism.real_views import real_views

    png = _png_path(args.out)  # refuse a bad --out before any work
    real, notes = real_views(args.real, args.sensor, _COMPARE_COLUMNS)
    report = compare(real, _sim_views(args), notes)
    render_report(report, png)
    if args.json:
        print(json_text(report))
    else:
        print(report.table())
    print(f"wrote {png}", file=sys.stderr if args.json else sys.stdout)
    return 0 if report.passed else 1


def _png_path(out: str) -> Path:
    path = Path(out).expanduser()
    if path.suffix.lower() != ".png":
        raise PerceptionError(f"sim compare: --out must name a .png file; got {out!r}")
    if path.parent.exists() and not path.parent.is_dir():
        raise PerceptionError(f"sim compare: --out {out!r}: {path.parent} is not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _sim_views(args: argparse.Namespace) -> list[Any]:
    """The simulated side: the frames of ``--sim``, or ``--scenes`` scenes rendered now (with a progress bar)."""
    from tqdm import tqdm

    from perception_ws.sim.realism.real_views import scan_view

    if args.sim is not None:
        from perception_ws.io import open_dataset

        folder = Path(args.sim).expanduser()
        if not folder.exists():
            raise PerceptionError(f"sim compare: --sim {folder}: no such dataset folder")
        scans: Any = open_dataset(folder)
        total = len(scans)
        if total == 0:
            raise PerceptionError(f"sim compare: --sim {folder}: holds no frames")
    else:
        from perception_ws.sim.dataset import SimulatedScans

        scenes = args.scenes or 10
        scans = SimulatedScans(
            seed=args.seed,
            sensor=args.sensor,
            columns=_COMPARE_COLUMNS,
            dropout=args.dropout,
            intensity=args.intensity,
            frames_per_scene=args.frames,
            scenes=scenes,
        )
        total = scenes * args.frames
    views = []
    for scan in tqdm(scans, total=total, unit="frame", desc="sim compare", file=sys.stderr):
        views.append(scan_view(scan, args.sensor, _COMPARE_COLUMNS))
    return views
