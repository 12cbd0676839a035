"""`perception demo`: the live graph on simulated data (:mod:`perception_ws.demo.live`), or with ``--real`` the
offline summary of the real sample frames (:mod:`perception_ws.demo.real`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from perception_ws.cli.args import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``perception demo``: the live simulator -> perception -> fusion graph, recorded and summarised."""
    demo = sub.add_parser(
        "demo", help="the live graph (simulator -> perception -> fusion over loopback DDS), recorded and summarised"
    )
    demo.add_argument("--out", default="out/demo", help="folder for the bag, pictures and summary (default out/demo)")
    demo.add_argument("--frames", type=int, default=None, help="simulated frames (default 30; --real: 2 per source)")
    demo.add_argument("--seed", type=int, default=0, help="simulated street (default 0)")
    demo.add_argument("--columns", type=int, default=2048, help="LiDAR columns per turn (default 2048)")
    demo.add_argument("--no-camera", action="store_true", help="no simulated camera and no fusion node")
    demo.add_argument("--real-time-factor", type=float, default=None, metavar="F",
                      help="simulator pace, 0 < F <= 1 (default: 0.1 with the model on CPU, else 1)")  # fmt: skip
    demo.add_argument("--segmenter", default="auto", choices=("auto", "model", "labels", "none"),
                      help="auto (default): the trained model if weights load, else ground-truth labels")  # fmt: skip
    demo.add_argument("--real", "--data", dest="real", default=None, metavar="DIR",
                      help="instead: the offline summary of the real sample frames in DIR")  # fmt: skip
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.real:  # the offline summary of the real sample frames
        from perception_ws.demo.real import run_demo

        return run_demo(data=args.real, out=Path(args.out), max_frames=args.frames or 2)
    from perception_ws.demo.live import run_live_demo
    from perception_ws.demo.options import DemoOptions

    options = DemoOptions(
        out=Path(args.out),
        frames=args.frames or 30,
        seed=args.seed,
        columns=args.columns,
        camera=not args.no_camera,
        segmenter=args.segmenter,
        real_time_factor=args.real_time_factor,
    )
    return run_live_demo(options)
