"""`hpcrl train-report RUN_DIR`: what a training run learned, from its step log (`train.jsonl`).

- `learning`: mean measured GFLOPS of the sampled candidates over the first and the last few steps, their
  ratio, and the steps at which the prompts' stage changed: the figures the demo is judged by.
- `plot`: `training.png`, reward (mean with its spread, and max) and GFLOPS (mean, max) per step, one
  vertical line per stage change.

The GFLOPS of a step is the mean over its scored samples with a failure counting as 0 (trainer/loop.py),
so a policy that learns to stop failing and one that learns faster code both raise it. The figure is drawn
on `matplotlib.figure.Figure` with the Agg canvas: no display, no pyplot state.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.steplog import LOG_FILE, read_log

PLOT_FILE = "training.png"
WINDOW = 5
"""Steps averaged at each end of the run (the issue's "first 5" and "last 5")."""


@dataclass(frozen=True)
class Learning:
    steps: int
    first_mean_gflops: float
    """Mean of the per-step mean GFLOPS over the first WINDOW steps."""
    last_mean_gflops: float
    """... over the last WINDOW steps."""
    learning_ratio: float
    """last / first (0 when the first window measured nothing)."""
    best_sample_gflops: float
    """The fastest sample of the run (its measured median)."""
    stage_changes: list[tuple[int, int]]
    """(first step, stage) each time the prompts' stage changed after step 1."""
    top_program_share: float
    """Share of the last WINDOW steps' samples that are the most frequent program (same code): 1.0 when the
    policy samples one program only. 0 when the log does not record programs."""


def learning(records: Sequence[dict[str, Any]], window: int = WINDOW) -> Learning:
    gflops = [float(r["gflops_mean"]) for r in records]
    first = statistics.fmean(gflops[:window]) if gflops else 0.0
    last = statistics.fmean(gflops[-window:]) if gflops else 0.0
    changes = [(int(b["step"]), int(b["stage"])) for a, b in itertools.pairwise(records) if b["stage"] != a["stage"]]
    return Learning(
        steps=len(records),
        first_mean_gflops=first,
        last_mean_gflops=last,
        learning_ratio=last / first if first > 0 else 0.0,
        best_sample_gflops=max((float(r["gflops_max"]) for r in records), default=0.0),
        stage_changes=changes,
        top_program_share=top_program_share(records[-window:]),
    )


def top_program_share(records: Sequence[dict[str, Any]]) -> float:
    """The collapse measure: how much of these steps' samples the single most frequent program takes."""
    programs = [p for r in records for p in r.get("programs", [])]
    if not programs:
        return 0.0
    return collections.Counter(programs).most_common(1)[0][1] / len(programs)


def plot(records: Sequence[dict[str, Any]], out: Path, title: str = "") -> Path:
    """Reward and GFLOPS per step, stage changes marked; written to `out` (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [int(r["step"]) for r in records]
    figure = Figure(figsize=(10.0, 6.5))
    FigureCanvasAgg(figure)
    reward_ax, gflops_ax = figure.subplots(2, 1, sharex=True)
    mean = [float(r["reward_mean"]) for r in records]
    std = [float(r["reward_std"]) for r in records]
    low = [m - s for m, s in zip(mean, std, strict=True)]
    high = [m + s for m, s in zip(mean, std, strict=True)]
    reward_ax.fill_between(steps, low, high, alpha=0.2, label="mean ± std")
    reward_ax.plot(steps, mean, label="mean")
    reward_ax.plot(steps, [float(r["reward_max"]) for r in records], linestyle=":", label="max")
    reward_ax.set_ylabel("reward")
    gflops_ax.plot(steps, [float(r["gflops_mean"]) for r in records], label="mean (failure = 0)")
    gflops_ax.plot(steps, [float(r["gflops_max"]) for r in records], linestyle=":", label="max")
    gflops_ax.set_ylabel("measured GFLOPS")
    gflops_ax.set_xlabel("step")
    for step, stage in learning(records).stage_changes:
        for ax in (reward_ax, gflops_ax):
            ax.axvline(step - 0.5, color="grey", linestyle="--", linewidth=0.8)
        gflops_ax.annotate(
            f"stage {stage}", (step - 0.5, 1.0), xycoords=("data", "axes fraction"), va="top", fontsize=8
        )
    for ax in (reward_ax, gflops_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    reward_ax.set_title(title or "reward and measured GFLOPS per step")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl train-report",
        description="Summarise a training run from its step log: mean GFLOPS of the first and last steps, "
        f"their ratio, the stage changes (JSON on stdout), and a plot ({PLOT_FILE}) in the run directory.",
    )
    parser.add_argument("run_dir", help="the trainer's run directory (trainer.run_dir)")
    parser.add_argument("--window", type=int, default=WINDOW, help=f"steps averaged at each end (default {WINDOW})")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    records = read_log(run_dir)
    if not records:
        parser.exit(2, f"{parser.prog}: no steps logged in {run_dir / LOG_FILE}: is it a trainer's run directory?\n")
    if args.window < 1:
        parser.exit(2, f"{parser.prog}: --window must be >= 1\n")
    summary = asdict(learning(records, args.window))
    summary["plot"] = str(plot(records, run_dir / PLOT_FILE))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
