"""The training log (CSV, one row per logged step) and a PNG of its curves."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from perception_ws.io.atomic import atomic_file

LOG = "log.csv"
CURVES = "curves.png"
COLUMNS = ("step", "loss", "lr", "samples_per_s", "elapsed_s")
#: parts of the loss logged beside it (the weighted GCA term of a run with a target, the distillation term of a run
#: with a teacher), drawn in its panel.
LOSS_TERMS = ("gca", "distill")


def read_log(path: Path) -> list[dict[str, float]]:
    """The rows of a training log CSV as numbers (empty cells left out); [] when there is no log yet."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def write_log(path: Path, rows: list[dict[str, float]]) -> None:
    """Rewrite the whole log (it is small), so a resumed run never keeps rows past its checkpoint."""
    columns = list(COLUMNS) + sorted({k for row in rows for k in row} - set(COLUMNS))
    text = [",".join(columns)]
    text += [",".join("" if k not in row else f"{row[k]:.6g}" for k in columns) for row in rows]
    with atomic_file(path) as handle:
        handle.write(("\n".join(text) + "\n").encode())


def plot_curves(rows: list[dict[str, float]], path: Path) -> Path:
    """Loss (log scale), learning rate and any logged scores against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = sorted({k for row in rows for k in row} - set(COLUMNS) - set(LOSS_TERMS))
    panels = 2 + (1 if scores else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6))
    steps = [r["step"] for r in rows]
    axes[0].plot(steps, [r["loss"] for r in rows], lw=1, label="loss")
    for term in LOSS_TERMS:
        points = [(r["step"], r[term]) for r in rows if term in r and r[term] > 0]  # log scale: no zeros
        if points:
            axes[0].plot(*zip(*points, strict=True), lw=1, label=f"{term} term")
            axes[0].legend(fontsize=7)
    axes[0].set_yscale("log")
    axes[0].set_title("training loss")
    axes[1].plot(steps, [r["lr"] for r in rows], lw=1, color="tab:orange")
    axes[1].set_title("learning rate")
    for name in scores:
        points = [(r["step"], r[name]) for r in rows if name in r and not math.isnan(r[name])]
        if points:
            axes[2].plot(*zip(*points, strict=True), marker="o", lw=1, label=name)
    if scores:
        axes[2].set_title("scores (%)")
        axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_file(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
    return path
