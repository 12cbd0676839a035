"""`perception sensors`: list the built-in sensor models."""

from __future__ import annotations

import argparse

from perception_ws.cli.args import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``perception sensors``: list the built-in sensor models."""
    sensors = sub.add_parser("sensors", help="list the built-in sensor models")
    sensors.set_defaults(handler=_cmd_sensors)


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
