"""`perception viz`: draw a frame (range image, bird's-eye view with boxes, camera overlay) to a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from perception_ws.cli.args import Subparsers


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
    viz.set_defaults(handler=_cmd_viz)


def _cmd_viz(args: argparse.Namespace) -> int:
    from perception_ws.viz.scene import render_path

    out = render_path(Path(args.path), Path(args.out), frame=args.frame, sensor=args.sensor, fov_deg=args.fov)
    print(f"wrote {out}")
    return 0
