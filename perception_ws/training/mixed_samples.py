"""Samples drawn from several sources by weight (``--data sim@0.7,/data/GTAV@0.3``), and sweeps of a live
CARLA server (``--data carla://HOST:PORT``).

:class:`MixedSource`: sample ``i`` comes from the source a draw seeded by ``(seed, i)`` picks with the
weights, as that source's sample ``i`` (a finite source wraps), so a resumed run reads the same batches.

:class:`CarlaSamples`: each sample is the next synchronous tick of a session opened on first use, as a
full-turn (H, columns) image and labels (the CARLA sweep given pixels like ``perception sim generate
--backend carla`` does); a live server does not replay, so these samples are not reproducible, and the
session lives in the process that samples (train with ``--workers 0``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.sim.carla.client import CarlaSession, SessionFactory
from perception_ws.training.missing_intensity import MissingIntensity
from perception_ws.training.samples import Pair, SampleSource, sweep_pair


class MixedSource:
    """See the module doc."""

    def __init__(self, sources: Sequence[SampleSource], weights: Sequence[float], seed: int = 0) -> None:
        if len(sources) != len(weights) or not sources:
            raise PerceptionError("train: a mixture needs one weight per source")
        self.sources = list(sources)
        total = float(sum(weights))
        self.weights = [float(w) / total for w in weights]
        self.seed = seed

    @property
    def size(self) -> int | None:
        return None  # drawn by index without end (finite sources wrap)

    def describe(self) -> dict[str, Any]:
        parts = [{**s.describe(), "weight": w} for s, w in zip(self.sources, self.weights, strict=True)]
        return {"kind": "mixture", "sources": parts}

    def source_of(self, index: int) -> int:
        """Which source sample ``index`` is drawn from."""
        return int(np.random.default_rng((self.seed, index, 13)).choice(len(self.sources), p=self.weights))

    def sample(self, index: int) -> Pair:
        source = self.sources[self.source_of(index)]
        return source.sample(index if source.size is None else index % source.size)


@dataclass
class CarlaSamples:
    """See the module doc."""

    host: str
    port: int
    sensor: str = "hdl64e"
    columns: int = 2048
    classes: str = "kitti3"
    seed: int = 0
    #: the run's --intensity: with lir:PATH each sweep (the semantic LiDAR has no intensity) gets it rendered
    intensity: str = "off"
    #: opens the session (CarlaSession; a stand-in without a server in the tests)
    open_session: SessionFactory = CarlaSession
    _ticks: Iterator[Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._fill = MissingIntensity(self.intensity)

    @property
    def size(self) -> int | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "carla",
            "address": f"{self.host}:{self.port}",
            "sensor": self.sensor,
            "columns": self.columns,
            **self._fill.describe(),
        }

    def sample(self, index: int) -> Pair:
        from perception_ws.sim.recorded_scenes import as_sweep
        from perception_ws.sim.simulated_sensor import simulated_sensor

        if self._ticks is None:
            from perception_ws.sim.carla import CarlaConfig, LidarSettings, carla_frames

            config = CarlaConfig(
                host=self.host,
                port=self.port,
                seed=self.seed,
                lidar=LidarSettings.like(self.sensor, columns=self.columns),
                camera=None,
            )
            self._ticks = carla_frames(config, open_session=self.open_session)
        height = simulated_sensor(self.sensor).model.height
        sweep = as_sweep(next(self._ticks).scan, height, self.columns)
        image, labels = sweep_pair(sweep, height, self.columns, self.classes)
        return self._fill(image), labels  # on the whole turn, as a simulated sweep is rendered before its crops
