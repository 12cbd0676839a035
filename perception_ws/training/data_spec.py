"""``perception train --data``: one source, or several mixed with weights.

Syntax: entries separated by commas (``--data`` also takes them as separate words), each ``SOURCE`` or
``SOURCE@WEIGHT``, where SOURCE is ``sim`` (rendered on the fly), a folder or file
:func:`perception_ws.io.open_dataset` reads (a ``perception sim generate`` dataset, GTA-LiDAR ``.npy``,
real labelled frames) or ``carla://HOST:PORT`` (sweeps of a live CARLA server), and WEIGHT a number > 0
(default 1). Weights are relative: ``sim@0.7,/data/GTAV@0.3`` draws 70 % of the samples from the
simulator. ``@`` rather than ``:`` because ``carla://HOST:PORT`` and Windows paths hold colons.
``sim-gpu`` renders whole batches on the device and cannot be mixed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perception_ws.errors import DatasetError, PerceptionError

if TYPE_CHECKING:
    from perception_ws.training.samples import SampleSource

GPU_DATA = "sim-gpu"
_CARLA = re.compile(r"carla://(?P<host>[^:/@]+):(?P<port>\d{1,5})")


def parse_data(spec: str) -> list[tuple[str, float]]:
    """``(source, weight)`` of every entry of ``spec``; a malformed one fails in one line naming it."""
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    if not entries:
        raise PerceptionError("train: --data is empty; expected e.g. sim, a dataset folder or sim@0.7,/data/GTAV@0.3")
    out = []
    for entry in entries:
        source, at, weight_text = entry.rpartition("@")
        if not at:
            source, weight_text = entry, "1"
        try:
            weight = float(weight_text)
        except ValueError:
            weight = math.nan
        if not source or not (math.isfinite(weight) and weight > 0):
            raise PerceptionError(
                f"train: --data entry {entry!r}: expected SOURCE or SOURCE@WEIGHT with a weight > 0 "
                "(e.g. sim@0.7,/data/GTAV@0.3)"
            )
        if source.startswith("carla:") and carla_address(source) is None:
            raise PerceptionError(
                f"train: --data entry {entry!r}: expected carla://HOST:PORT (e.g. carla://localhost:2000)"
            )
        out.append((source, weight))
    if len(out) > 1 and any(source == GPU_DATA for source, _ in out):
        raise PerceptionError(f"train: --data {GPU_DATA} renders whole batches on the device; it cannot be mixed")
    return out


def carla_address(source: str) -> tuple[str, int] | None:
    """(host, port) of a ``carla://HOST:PORT`` source, None for any other."""
    match = _CARLA.fullmatch(source)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        return None
    return match["host"], int(match["port"])


def make_source(spec: str, **options: Any) -> SampleSource:
    """The samples of ``--data`` ``spec``: one source, or a :class:`MixedSource` of several. ``options`` are the
    simulated source's fields (a folder takes ``classes`` and ``intensity``; CARLA ``sensor``, ``columns``, ``classes``,
    ``seed`` and ``intensity``: with ``lir:PATH`` their frames without intensity get it rendered).
    """
    from perception_ws.training.mixed_samples import MixedSource

    entries = parse_data(spec)
    sources = [_one_source(source, options) for source, _ in entries]
    if len(sources) == 1:
        return sources[0]
    return MixedSource(sources, [weight for _, weight in entries], seed=int(options.get("seed", 0)))


def _one_source(source: str, options: dict[str, Any]) -> SampleSource:
    from perception_ws.training.mixed_samples import CarlaSamples
    from perception_ws.training.samples import FolderSource, SimulatedSource

    if source == "sim":
        return SimulatedSource(**options)
    address = carla_address(source)
    if address is not None:
        keep = {k: v for k, v in options.items() if k in ("sensor", "columns", "classes", "seed", "intensity")}
        return CarlaSamples(*address, **keep)
    path = Path(source)
    if not path.exists():
        raise DatasetError(
            f"training data {source!r}: no such file or folder (use 'sim' for on-the-fly simulation, "
            "carla://HOST:PORT for a CARLA server)"
        )
    return FolderSource(path, **{k: v for k, v in options.items() if k in ("classes", "intensity")})
