"""The sensor the simulator plays, named three ways: a built-in sensor, a sensor YAML, or a sensor profile folder.

A profile folder is what ``perception adapt`` (and ``python -m perception_ws.adapt.sensor_profile``) learns
from a user's unlabelled scans: ``sensor.yaml`` (the fitted beam table), ``dropout.npz`` (how often each
pixel of that sensor's scans is empty) and ``profile.json`` (among others the mounting height above the road).
Simulating "that sensor" means its beams, its dropout with ``dropout: measured``, and its measured height
(the default mount where the profile found no level ground to measure it on). The file
names live here because the simulator reads them and must not import the adaptation package above it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from perception_ws.adapt.mounting import DEFAULT_MOUNT_HEIGHT_M, MountingHeight
from perception_ws.calib.sensors import SensorModel, load_sensor
from perception_ws.errors import PerceptionError
from perception_ws.sim.realism.dropout_map import DropoutMap

PROFILE_JSON, SENSOR_YAML, DROPOUT_NPZ = "profile.json", "sensor.yaml", "dropout.npz"


@dataclass(frozen=True)
class SimulatedSensor:
    """The beam table, the measured dropout map (None: only the shipped one, if it fits) and the mount height."""

    model: SensorModel
    dropout_map: DropoutMap | None
    mount_height_m: float


def simulated_sensor(spec: str) -> SimulatedSensor:
    """``spec``: a built-in name ("hdl64e"), a sensor YAML, or a sensor profile folder (see the module doc)."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        return SimulatedSensor(load_sensor(spec), None, DEFAULT_MOUNT_HEIGHT_M)
    missing = [name for name in (SENSOR_YAML, DROPOUT_NPZ, PROFILE_JSON) if not (path / name).is_file()]
    if missing:
        raise PerceptionError(
            f"sensor {spec!r}: a folder must be a sensor profile (perception adapt's profile/); it lacks "
            f"{', '.join(missing)}"
        )
    try:
        mounting = MountingHeight.from_json(json.loads((path / PROFILE_JSON).read_text(encoding="utf-8"))["mounting"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PerceptionError(f"sensor {spec!r}: {PROFILE_JSON} has no mounting height ({exc})") from None
    # not confident: no level ground in the target's scans (adapt/mounting), and height_m holds the default
    height = mounting.height_m if mounting.confident else DEFAULT_MOUNT_HEIGHT_M
    return SimulatedSensor(load_sensor(path / SENSOR_YAML), DropoutMap.load(path / DROPOUT_NPZ), height)
