"""What `perception label` is asked to do: the output formats, the shard, the frame limit, and the pipeline's
settings (the node's params file, with ``--weights`` / ``--device`` on top).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perception_ws.config import PipelineConfig
from perception_ws.errors import PerceptionError
from perception_ws.schema import flatten, schema_from_flat
from perception_ws.shard import WHOLE, Shard

#: output formats in the order they are written; ``mcap`` is one file for the run, the others one per frame.
FORMATS = ("semantickitti", "kitti", "pcd", "mcap")


def parse_formats(names: list[str] | None) -> tuple[str, ...]:
    """The chosen formats in :data:`FORMATS` order (all of them when none are named), without repeats."""
    chosen = set(names or FORMATS)
    unknown = sorted(chosen - set(FORMATS))
    if unknown:
        raise PerceptionError(f"--format {', '.join(unknown)}: expected one of {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in chosen)


def pipeline_config(config_file: str | Path | None, weights: str | None, device: str | None) -> PipelineConfig:
    """The perception node's pipeline settings from its params file (defaults without one), plus overrides."""
    from perception_ws.config.params import load_config
    from perception_ws.config.perception import PerceptionConfig

    node = load_config(config_file) if config_file is not None else PerceptionConfig()
    flat: dict[str, Any] = flatten(node.pipeline_config())
    if weights is not None:
        if flat["segmenter.kind"] != "model":
            raise PerceptionError(f"--weights: the config's segmenter.kind is {flat['segmenter.kind']!r}, not 'model'")
        flat["segmenter.weights"] = str(Path(weights).expanduser().resolve())
    if device is not None:
        flat["segmenter.device"] = device
    return schema_from_flat(PipelineConfig, flat, "perception label")


@dataclass(frozen=True)
class LabelOptions:
    """Everything that decides the files of a labelling run (``progress`` does not)."""

    formats: tuple[str, ...] = FORMATS
    shard: Shard = WHOLE
    #: label only the first N frames of the shard (None: all).
    max_frames: int | None = None
    #: frames whose range images go through the network together (a GPU wants 8-32; the files are the same).
    batch_size: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise PerceptionError(f"--batch {self.batch_size}: expected a whole number >= 1")
