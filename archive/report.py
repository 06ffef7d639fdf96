"""`hpcrl archive report`: a run drawn as PNG files, four per problem (progress, cells, verdicts, elites).

Per problem present in the run (or in the whole archive for `all`):
- `<run>-<problem>-progress.png`: best and rolling-mean GFLOPS against results stored, stage changes marked;
- `<run>-<problem>-cells.png`: best GFLOPS per cell (technique set x size), with how often each set was tried;
- `<run>-<problem>-verdicts.png`: the share of each verdict per bucket of results, stage changes marked;
- `<run>-<problem>-elites.png`: the best elites whose results came from the run, coloured by the stage that
  found them (left out when the run holds none).

The x axis is the result's place in storage order within the run and problem: wall time would squeeze
a pause or a replay after a restart into one point, while storage order is what stages count.
Everything is aggregated with numpy before matplotlib sees it, so 100k results draw in seconds.
Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas, never pyplot: no display, no
global state, safe in a daemon's thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter
from numpy.typing import NDArray

from archive.store import ArchiveStore, Elite, Record, StageRow
from bus.schema import AddStatus, Verdict

ALL_RUNS = "all"
FIGURE_SIZE_IN = (10.0, 5.0)
DPI = 120
MAX_CELL_ROWS = 30
"""Technique sets shown in the cell map (the best ones); 2^10 are possible."""
MAX_VERDICT_BUCKETS = 60
MAX_ANNOTATED_CELLS = 240
"""Above this many cells the map drops the numbers written in each cell (they would overlap)."""
VERDICT_COLOURS: dict[Verdict, str] = {
    Verdict.OK: "#2ca02c",
    Verdict.COMPILE_ERROR: "#ff7f0e",
    Verdict.REJECTED: "#9467bd",
    Verdict.WRONG_ANSWER: "#d62728",
    Verdict.TIMEOUT: "#8c564b",
    Verdict.CRASH: "#e377c2",
    Verdict.RESOURCE_LIMIT: "#bcbd22",
    Verdict.INFRA_ERROR: "#7f7f7f",
}
VERDICTS = tuple(Verdict)


@dataclass
class _Series:
    """One problem's results in one run, in storage order, as columns."""

    verdict: list[int] = field(default_factory=list)
    """Index into VERDICTS."""
    gflops: list[float] = field(default_factory=list)
    """Measured median GFLOPS (0 unless ok)."""
    best_candidate: list[float] = field(default_factory=list)
    """The objective where it counts towards the best (ok, not awaiting confirmation), else NaN."""
    remeasure: list[bool] = field(default_factory=list)
    """A confirmation re-measurement: counted for the best, not as a policy sample."""
    size: list[int] = field(default_factory=list)
    stage: list[int] = field(default_factory=list)
    techniques: list[tuple[str, ...]] = field(default_factory=list)
    stored_at: list[float] = field(default_factory=list)

    def add(self, record: Record) -> None:
        result = record.result
        counted = result.verdict is Verdict.OK and record.status is not AddStatus.AWAITING_CONFIRMATION
        self.verdict.append(VERDICTS.index(result.verdict))
        self.gflops.append(result.gflops_median)
        self.best_candidate.append(record.objective if counted else np.nan)
        self.remeasure.append(bool(record.confirmation_of))
        self.size.append(result.size)
        self.stage.append(record.current_stage)
        self.techniques.append(record.techniques)
        self.stored_at.append(record.stored_at)


def write_report(store: ArchiveStore, run: str, out_dir: Path) -> list[Path]:
    """Draw every problem of `run` (a `Result.run`, or `all`) into `out_dir`; the paths written, [] if
    the run has no results."""
    series: dict[str, _Series] = {}
    for record in store.records():
        if run == ALL_RUNS or record.result.run == run:
            series.setdefault(record.result.problem, _Series()).add(record)
    if not series:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = re.sub(r"[^A-Za-z0-9._-]", "_", run)
    paths: list[Path] = []
    for problem in sorted(series):
        s = series[problem]
        boundaries = _stage_boundaries(store.stage_changes(problem), np.asarray(s.stage))
        label = f"{problem} (run {run})" if run != ALL_RUNS else f"{problem} (all runs)"
        for name, draw in (("progress", _progress), ("cells", _cells), ("verdicts", _verdicts)):
            figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
            FigureCanvasAgg(figure)
            draw(figure, s, boundaries, label)
            path = out_dir / f"{prefix}-{problem}-{name}.png"
            figure.savefig(path, dpi=DPI)
            paths.append(path)
        elites = [e for e in store.elites(problem) if run == ALL_RUNS or _run_of(store, e.candidate_id) == run]
        if elites:
            figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
            FigureCanvasAgg(figure)
            _elites(figure, elites, label)
            path = out_dir / f"{prefix}-{problem}-elites.png"
            figure.savefig(path, dpi=DPI)
            paths.append(path)
    return paths


def _run_of(store: ArchiveStore, candidate_id: str) -> str:
    record = store.record(candidate_id)
    return record.result.run if record else ""


# ---------------------------------------------------------------- aggregation


def _stage_boundaries(changes: Iterable[StageRow], stage: NDArray[np.int64]) -> list[tuple[int, str]]:
    """(x, label) of each stage change seen by these results: the first result stored in the new stage.
    Changes the run never saw (it had no result in that stage) are left out."""
    found: list[tuple[int, str]] = []
    for change in changes:
        hits = np.flatnonzero(stage == change.to_stage)
        if hits.size:
            why = change.reason.split(":", 1)[0]
            found.append((int(hits[0]), f"stage {change.to_stage}" + (f" ({why})" if why else "")))
    return found


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _rolling_mean(values: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Mean of the last `window` values at each point (fewer at the start)."""
    sums = np.cumsum(np.concatenate(([0.0], values)))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(0, ends - window)
    means: NDArray[np.float64] = (sums[ends] - sums[starts]) / (ends - starts)
    return means


# ---------------------------------------------------------------- figures


def _mark_stages(ax: Axes, boundaries: list[tuple[int, str]]) -> None:
    for x, text in boundaries:
        ax.axvline(x, color="0.35", linestyle="--", linewidth=1.0, zorder=3)
        ax.annotate(
            text,
            xy=(x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            rotation=90,
            ha="left",
            va="top",
            fontsize=8,
            color="0.2",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            zorder=4,
        )


def _progress(figure: Figure, s: _Series, boundaries: list[tuple[int, str]], label: str) -> None:
    ax = figure.add_subplot()
    n = len(s.verdict)
    x = np.arange(n)
    verdict = np.asarray(s.verdict)
    gflops = np.asarray(s.gflops, dtype=np.float64)
    sample_ok = (verdict == VERDICTS.index(Verdict.OK)) & ~np.asarray(s.remeasure)
    best = np.fmax.accumulate(np.asarray(s.best_candidate, dtype=np.float64))

    if sample_ok.any():
        ax.scatter(
            x[sample_ok],
            gflops[sample_ok],
            s=4,
            color="0.6",
            alpha=0.35,
            linewidths=0,
            rasterized=True,
            label="ok result",
        )
        window = max(1, min(500, int(sample_ok.sum()) // 25))
        ax.plot(
            x[sample_ok],
            _rolling_mean(gflops[sample_ok], window),
            color="tab:blue",
            linewidth=1.5,
            label=f"mean of last {window} ok results",
        )
    sizes = np.asarray(s.size)
    distinct = np.unique(sizes)
    if 1 < distinct.size <= 6:
        candidates = np.asarray(s.best_candidate, dtype=np.float64)
        for size in distinct:
            per_size = np.fmax.accumulate(np.where(sizes == size, candidates, np.nan))
            ax.step(x, per_size, where="post", linewidth=1.0, linestyle=":", label=f"best at n={size}")
    ax.step(x, best, where="post", color="tab:red", linewidth=2.0, label="best (all sizes)")
    _mark_stages(ax, boundaries)

    top = float(np.nanmax(best)) if np.isfinite(best).any() else 0.0
    ax.set_title(
        f"{label}: speed over {n} results ({_duration(s.stored_at[-1] - s.stored_at[0])}), best {top:.1f} GFLOPS"
    )
    ax.set_xlabel("result number (storage order)")
    ax.set_ylabel("GFLOPS (median of repetitions)")
    ax.set_xlim(0, max(1, n - 1))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)


def _cells(figure: Figure, s: _Series, boundaries: list[tuple[int, str]], label: str) -> None:
    sizes = sorted(set(s.size))
    column = {size: i for i, size in enumerate(sizes)}
    best: dict[tuple[str, ...], NDArray[np.float64]] = {}
    tried: dict[tuple[str, ...], int] = {}
    for techniques, size, objective, remeasure in zip(s.techniques, s.size, s.best_candidate, s.remeasure, strict=True):
        row = best.setdefault(techniques, np.full(len(sizes), np.nan))
        if objective == objective:  # not NaN
            row[column[size]] = np.fmax(row[column[size]], objective)
        if not remeasure:
            tried[techniques] = tried.get(techniques, 0) + 1
    # Best first; sets never measured ok sink to the bottom, most tried first.
    order = sorted(best, key=lambda t: (-np.nan_to_num(np.fmax.reduce(best[t]), nan=-1.0), -tried.get(t, 0), t))
    shown = order[:MAX_CELL_ROWS]
    grid = np.array([best[t] for t in shown])  # (rows, sizes)
    names = ["+".join(t) if t else "none" for t in shown]

    figure.set_size_inches(FIGURE_SIZE_IN[0], max(FIGURE_SIZE_IN[1], 1.6 + 0.26 * len(shown)))
    heat, bars = figure.subplots(1, 2, sharey=True, width_ratios=(3, 1))
    finite = grid[np.isfinite(grid)]
    norm = Normalize(vmin=0.0, vmax=float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
    heat.set_facecolor("0.92")  # cells with no ok result stay blank on grey
    image = heat.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", norm=norm, interpolation="nearest")
    if grid.size <= MAX_ANNOTATED_CELLS:
        for (r, c), value in np.ndenumerate(grid):
            if np.isfinite(value):
                dark = norm(value) < 0.6
                heat.text(
                    c, r, f"{value:.1f}", ha="center", va="center", fontsize=7, color="white" if dark else "black"
                )
    heat.set_xticks(range(len(sizes)), [str(size) for size in sizes])
    heat.set_yticks(range(len(shown)), names, fontsize=8)
    heat.set_xlabel("problem size n")
    heat.set_ylabel("technique set (best first)")
    figure.colorbar(image, ax=[heat, bars], label="best GFLOPS in cell", pad=0.02)

    counts = [tried.get(t, 0) for t in shown]
    bars.bar_label(bars.barh(range(len(shown)), counts, color="tab:gray"), fontsize=7, padding=2)
    bars.set_xscale("log")  # one set often takes most of the samples
    bars.set_xlim(0.8, max([1, *counts]) * 8)
    bars.xaxis.set_minor_formatter(NullFormatter())
    bars.set_xlabel("results tried (log)")
    bars.tick_params(axis="y", left=False)
    bars.grid(True, axis="x", alpha=0.3)
    more = f", best {len(shown)} of {len(order)} sets" if len(order) > len(shown) else ""
    figure.suptitle(f"{label}: best GFLOPS per cell{more}")


def _elites(figure: Figure, elites: list[Elite], label: str) -> None:
    """The best elites as bars, coloured by the stage whose prompt produced them."""
    shown = sorted(elites, key=lambda e: -e.objective)[:MAX_CELL_ROWS]
    figure.set_size_inches(FIGURE_SIZE_IN[0], max(FIGURE_SIZE_IN[1], 1.6 + 0.26 * len(shown)))
    ax = figure.add_subplot()
    stages = sorted({e.stage for e in shown})
    colour = {stage: f"C{i % 10}" for i, stage in enumerate(stages)}
    bars = ax.barh(range(len(shown)), [e.objective for e in shown], color=[colour[e.stage] for e in shown])
    ax.bar_label(bars, [f"{e.objective:.1f}" for e in shown], fontsize=7, padding=2)
    ax.set_yticks(range(len(shown)), [f"{e.cell}" for e in shown], fontsize=8)
    ax.invert_yaxis()  # best on top
    ax.set_xlabel("GFLOPS (confirmed)")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=colour[stage], label=f"stage {stage}") for stage in stages]
    ax.legend(handles=handles, loc="lower right", fontsize=8, title="found in")
    more = f", best {len(shown)} of {len(elites)}" if len(elites) > len(shown) else ""
    figure.suptitle(f"{label}: elites by the stage that found them{more}")


def _verdicts(figure: Figure, s: _Series, boundaries: list[tuple[int, str]], label: str) -> None:
    ax = figure.add_subplot()
    keep = ~np.asarray(s.remeasure)
    x = np.arange(len(s.verdict))[keep]
    verdict = np.asarray(s.verdict)[keep]
    n = len(s.verdict)
    buckets = max(1, min(MAX_VERDICT_BUCKETS, x.size // 20))
    edges = np.linspace(0, n, buckets + 1)
    bucket = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, buckets - 1)
    counts = np.zeros((len(VERDICTS), buckets))  # (verdicts, buckets)
    np.add.at(counts, (verdict, bucket), 1)
    totals = counts.sum(axis=0)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    bottom = np.zeros(buckets)
    for i, v in enumerate(VERDICTS):
        if counts[i].any():
            total = int(counts[i].sum())
            ax.bar(
                edges[:-1],
                shares[i],
                width=np.diff(edges),
                bottom=bottom,
                align="edge",
                color=VERDICT_COLOURS[v],
                label=f"{v} ({total})",
                linewidth=0,
            )
            bottom += shares[i]
    _mark_stages(ax, boundaries)
    ax.set_title(f"{label}: verdicts per bucket of {n / buckets:.0f} results")
    ax.set_xlabel("result number (storage order)")
    ax.set_ylabel("share of results")
    ax.set_xlim(0, n)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter("{x:.0%}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="verdict (count)", title_fontsize=8)
