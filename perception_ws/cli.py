"""The `perception` command line: one entry point, one sub-command per job.

Sub-commands import their modules lazily so that `perception --help` is instant and a missing optional
dependency only affects the command that needs it. Every `PerceptionError` becomes one line on stderr
and exit status 2; nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from perception_ws.errors import PerceptionError

Handler = Callable[[argparse.Namespace], int]


def _cmd_info(args: argparse.Namespace) -> int:
    from perception_ws.io import open_dataset
    from perception_ws.io.registry import find_reader

    path = Path(args.path)
    dataset = open_dataset(path)
    print(f"{path}: {find_reader(path).name}, {len(dataset)} frame(s)")
    for note in dataset.notes:
        print(f"  note: {note}")
    if len(dataset):
        scan = dataset[0]
        fields = ", ".join(scan.points.dtype.names or ())
        extras = [a for a in ("labels", "semantic", "instances", "image", "calib") if getattr(scan, a) is not None]
        print(f"  first frame {scan.name!r}: {len(scan)} points; fields: {fields}")
        print(f"  sensor: {scan.sensor or 'unknown'}; boxes: {len(scan.boxes)}; with: {', '.join(extras) or '-'}")
    return 0


def _cmd_sensors(args: argparse.Namespace) -> int:
    from perception_ws.calib.sensors import get_sensor, list_sensors

    for name in list_sensors():
        sensor = get_sensor(name)
        top, bottom = sensor.vertical_fov_deg
        print(
            f"{name:10s} {sensor.height:3d} beams, elevation {top:+.1f}..{bottom:+.1f} deg, "
            f"{sensor.columns_per_turn} columns/turn, {sensor.rate_hz:g} Hz; {sensor.source.split(';')[0]}"
        )
    return 0


def _cmd_viz(args: argparse.Namespace) -> int:
    from perception_ws.viz.scene import render_path

    out = render_path(Path(args.path), Path(args.out), frame=args.frame, sensor=args.sensor, fov_deg=args.fov)
    print(f"wrote {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.real:  # the offline summary of the real sample frames
        from perception_ws.demo import run_demo

        return run_demo(data=args.real, out=Path(args.out), max_frames=args.frames or 2)
    from perception_ws.demo_live import DemoOptions, run_live_demo

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


def _cmd_replay(args: argparse.Namespace) -> int:
    from perception_ws.nodes.replay import replay
    from perception_ws.ros_env import apply_local_dds_env

    apply_local_dds_env()
    return replay(args.bag, args.rate, args.loop, args.topics, args.remap, args.wait_subscribers)


def _cmd_record(args: argparse.Namespace) -> int:
    from perception_ws.config import load_config
    from perception_ws.nodes.record import record
    from perception_ws.ros_env import apply_local_dds_env

    config = load_config(args.config) if args.config else None
    apply_local_dds_env()
    record(args.out, args.topics, args.duration, config)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from perception_ws.nodes.launch_graph import GraphOptions, run_graph

    return run_graph(GraphOptions.from_namespace(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perception", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="describe a file, folder or bag: its reader, frames, fields, notes")
    info.add_argument("path")
    info.set_defaults(handler=_cmd_info)

    sensors = sub.add_parser("sensors", help="list the built-in sensor models")
    sensors.set_defaults(handler=_cmd_sensors)

    viz = sub.add_parser("viz", help="draw a frame: range image, bird's-eye view with boxes, camera overlay")
    viz.add_argument("path", help="a scan file, folder or bag (any format `perception info` understands)")
    viz.add_argument("--out", required=True, help="PNG file to write")
    viz.add_argument("--frame", type=int, default=0, help="frame index in a multi-frame source (default 0)")
    viz.add_argument("--sensor", default=None, help="sensor model for the range image (default: the scan's own)")
    viz.add_argument("--fov", type=float, default=None, help="horizontal field of view in degrees (default 360)")
    viz.set_defaults(handler=_cmd_viz)

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

    replay = sub.add_parser("replay", help="publish a bag over ROS 2 with its original timing and /clock")
    replay.add_argument("bag", help="a rosbag2 folder (sqlite3 or MCAP), a .db3 or .mcap file, or a ROS 1 .bag")
    replay.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1: as recorded)")
    replay.add_argument("--loop", action="store_true", help="start over at the end until interrupted")
    replay.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="only these topics")
    replay.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish FROM under TO")
    replay.add_argument(
        "--wait-subscribers", type=float, default=0.0, metavar="S",
        help="wait up to S seconds for a subscriber on every topic before starting (default 0)",
    )  # fmt: skip
    replay.set_defaults(handler=_cmd_replay)

    record = sub.add_parser("record", help="record the perception outputs (or --topics) to MCAP, unchanged")
    record.add_argument("--out", required=True, help="x.mcap: one MCAP file; else a rosbag2 folder (MCAP)")
    record.add_argument(
        "--topics", nargs="+", default=[], metavar="TOPIC", help="default: the node's outputs and /tf_static"
    )
    record.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    record.add_argument("--config", default=None, help="params file naming the output topics (default built-in)")
    record.set_defaults(handler=_cmd_record)

    from perception_ws.nodes.launch_graph import add_arguments  # standard library only: keeps --help instant

    run = sub.add_parser("run", help="start the node graph of launch/perception.launch.py without ros2 launch")
    add_arguments(run)
    run.set_defaults(handler=_cmd_run)

    from perception_ws.cli_sim import add_sim_parser  # standard library only, like launch_graph

    add_sim_parser(sub)

    from perception_ws.cli_eval import add_eval_parser  # standard library only

    add_eval_parser(sub)

    from perception_ws.cli_train import add_train_parser

    add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except PerceptionError as error:
        print(f"perception {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"perception {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
