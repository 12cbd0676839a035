"""The summary a labelling run prints: frames, throughput, objects per class and time per pipeline stage."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from perception_ws.pipeline import STAGES


@dataclass
class LabelSummary:
    """Totals over the frames of the output folder; throughput over the frames labelled by this run."""

    out: str
    frames_done: int
    frames_planned: int
    #: frames labelled now (the rest were kept from an earlier run), their points and the seconds it took.
    frames_now: int
    points_now: int
    seconds_now: float
    objects: Counter[str] = field(default_factory=Counter)
    #: mean milliseconds per frame and stage over every frame done (stages that ran).
    stage_ms: dict[str, float] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @classmethod
    def from_records(cls, out: str, manifest: dict[str, Any], now: int, points: int, seconds: float) -> LabelSummary:
        """The summary of a manifest's frame records, with this run's counts."""
        records = manifest["frames"]
        objects: Counter[str] = Counter()
        sums: Counter[str] = Counter()
        for record in records:
            objects.update(record["objects"])
            sums.update(record["timings_ms"])
        stage_ms = {name: sums[name] / len(records) for name in (*STAGES, "total") if name in sums}
        return cls(out, len(records), manifest["planned_frames"], now, points, seconds, objects, stage_ms)

    def table(self) -> str:
        """The summary as lines of text."""
        rate = self.frames_now / self.seconds_now if self.seconds_now > 0 else 0.0
        points_rate = self.points_now / self.seconds_now if self.seconds_now > 0 else 0.0
        lines = [
            f"{self.out}: {self.frames_done} of {self.frames_planned} frames labelled "
            f"({self.frames_now} now, {self.frames_done - self.frames_now} kept from an earlier run)",
            f"this run: {self.seconds_now:.1f} s, {rate:.2f} frames/s, {points_rate:,.0f} points/s",
            "objects: " + (", ".join(f"{name} {n}" for name, n in sorted(self.objects.items())) or "none"),
            "mean ms per frame: " + ", ".join(f"{name} {ms:.1f}" for name, ms in self.stage_ms.items()),
        ]
        lines.extend(f"wrote {name}" for name in self.files)
        return "\n".join(lines)
