"""`perception viz`: draw a frame (range image, bird's-eye view with boxes, camera overlay) to a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from perception_ws.cli.args import Subparsers
from perception_ws.errors import PerceptionError


def add_parser(sub: Subparsers) -> None:
    """Register ``perception viz``: draw one frame of any readable source to a PNG."""
    viz = sub.add_parser("viz", help="draw a frame: range image, bird's-eye view with boxes, camera overlay")
    viz.add_argument("path", help="a scan file, folder or bag (any format `perception info` understands)")
    viz.add_argument("--out", required=True, help="PNG file to write")
    viz.add_argument("--frame", type=int, default=0, help="frame index in a multi-frame source (default 0)")
    viz.add_argument(
        "--sensor",
        default=None,
        help="sensor for the range image: a built-in name or a sensor YAML file (default: the scan's own)",
    )
    viz.add_argument(
        "--fov", type=float, default=None, help="horizontal field of view in degrees, in (0, 360] (default 360)"
    )
    viz.add_argument(
        "--predict", action="store_true",
        help="draw the perception pipeline's labels and detections (above the stored ground truth, if any)",
    )  # fmt: skip
    viz.add_argument("--weights", default=None, help="with --predict: a .pt weights file (default: shipped)")
    viz.add_argument("--config", default=None, help="with --predict: the perception node's params YAML")
    viz.set_defaults(handler=_cmd_viz)


def _cmd_viz(args: argparse.Namespace) -> int:
    if args.predict:
        from perception_ws.labelling.options import pipeline_config
        from perception_ws.labelling.predict_view import render_prediction

        config = pipeline_config(args.config, args.weights, None)
        out = render_prediction(Path(args.path), Path(args.out), config, args.frame, args.sensor, args.fov)
    else:
        if args.weights is not None or args.config is not None:
            raise PerceptionError("viz: --weights and --config only go with --predict")
        from perception_ws.viz.scene import render_path

        out = render_path(Path(args.path), Path(args.out), frame=args.frame, sensor=args.sensor, fov_deg=args.fov)
    print(f"wrote {out}")
    return 0
