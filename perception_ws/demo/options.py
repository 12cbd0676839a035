"""What one live demo run is: its options, the segmenter it chose, its pace and the topics it records.

Shared by the run (:mod:`perception_ws.demo.live`) and its summary (:mod:`perception_ws.demo.report`), which
import this module and not each other.

Pace: the network on CPU labels a scan in about a second here, ten sensor periods. Run in real time, the
perception node (latest-only) would answer about one scan in ten, and the tracker would see the street
jump a metre or more between answered scans. So with the model on CPU the simulator runs at
:data:`MODEL_CPU_REAL_TIME_FACTOR` x real time (``clock.mode`` sim): scans keep their 10 Hz stamps and
scene motion, they are only sent further apart. The summary states the pace and every drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: topics recorded besides the perception node's outputs (the simulator's ground truth, the fusion overlay).
GROUND_TRUTH_TOPIC = "/sim/ground_truth/boxes"
INPUT_TOPIC = "/points"
OVERLAY_TOPIC = "/fusion/overlay"
#: simulated seconds per wall second with the network on CPU (see the module doc): one 10 Hz scan a second.
MODEL_CPU_REAL_TIME_FACTOR = 0.1


@dataclass(frozen=True)
class DemoOptions:
    """What ``perception demo`` was asked for (the sub-command's options, defaults filled in)."""

    out: Path
    frames: int = 30
    seed: int = 0
    columns: int = 2048
    rate_hz: float = 10.0
    #: None: :data:`MODEL_CPU_REAL_TIME_FACTOR` with the network on CPU, else 1 (real time).
    real_time_factor: float | None = None
    camera: bool = True
    #: auto: the trained model if weights load, else the labels segmenter; or model / labels / none.
    segmenter: str = "auto"
    pictures: int = 3


@dataclass(frozen=True)
class SegmenterChoice:
    """The segmenter the demo settled on, and why (shown in the summary)."""

    kind: str
    model: str | None  # the network's name (segmenter.model) when kind is 'model'
    reason: str
    device: str = "cpu"  # segmenter.device of the params file


def real_time_factor(options: DemoOptions, segmenter: SegmenterChoice) -> float:
    """The simulator's pace: ``options.real_time_factor``, else see the module doc."""
    if options.real_time_factor is not None:
        return options.real_time_factor
    return MODEL_CPU_REAL_TIME_FACTOR if segmenter.kind == "model" and segmenter.device == "cpu" else 1.0
