"""`perception label`: run the perception node's pipeline over every frame of a file, folder or bag offline.

    perception label PATH --out DIR [--weights W] [--config YAML] [--format semantickitti|kitti|pcd|mcap ...]
                     [--device cpu|cuda] [--batch N] [--shard K/N] [--frames N] [--quiet]

The work is :func:`perception_ws.labelling.run.label_dataset`; only the standard library is imported here.
"""

from __future__ import annotations

import argparse

from perception_ws.cli.args import Subparsers, positive

_FORMATS = ("semantickitti", "kitti", "pcd", "mcap")  # perception_ws.labelling.options.FORMATS (not imported here)


def add_parser(sub: Subparsers) -> None:
    """Register ``perception label``."""
    label = sub.add_parser(
        "label", help="label every frame of a source offline: SemanticKITTI .label, KITTI label_2, PCD, MCAP"
    )
    label.add_argument("path", help="a scan file, folder or bag (any source `perception info` understands)")
    label.add_argument("--out", required=True, help="output folder (created; rerun the same command to resume)")
    label.add_argument("--config", default=None, help="the perception node's params YAML (default: its defaults)")
    label.add_argument("--weights", default=None, help="a .pt weights file (default: the config's, else shipped)")
    label.add_argument(
        "--format", nargs="+", choices=_FORMATS, default=None, dest="formats",
        help="output formats (default: all four)",
    )  # fmt: skip
    label.add_argument("--device", default=None, help="torch device: cpu, cuda or cuda:N (default: the config's)")
    label.add_argument("--shard", default="1/1", help="label frames i with i %% N == K-1 only (default 1/1)")
    label.add_argument(
        "--batch", type=positive, default=1, metavar="N",
        help="range images through the network together (default 1; on a GPU 8-32 label several times faster)",
    )  # fmt: skip
    label.add_argument("--frames", type=positive, default=None, metavar="N", help="only the first N frames")
    label.add_argument("--quiet", action="store_true", help="no progress bar")
    label.set_defaults(handler=_cmd_label)


def _cmd_label(args: argparse.Namespace) -> int:
    from perception_ws.labelling.options import LabelOptions, parse_formats, pipeline_config
    from perception_ws.labelling.run import label_dataset
    from perception_ws.shard import parse_shard

    options = LabelOptions(
        formats=parse_formats(args.formats),
        shard=parse_shard(args.shard),
        max_frames=args.frames,
        batch_size=args.batch,
        progress=not args.quiet,
    )
    config = pipeline_config(args.config, args.weights, args.device)
    print(label_dataset(args.path, args.out, config, options).table())
    return 0
