"""`perception info`: describe a file, folder or bag (its reader, frames, fields, notes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from perception_ws.cli.args import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``perception info``: describe a file, folder or bag and the reader that opens it."""
    info = sub.add_parser("info", help="describe a file, folder or bag: its reader, frames, fields, notes")
    info.add_argument("path")
    info.set_defaults(handler=_cmd_info)


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
