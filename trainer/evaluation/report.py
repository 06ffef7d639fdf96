"""`hpcrl eval`'s outputs: eval.json, a markdown table, PNGs, and the side-by-side comparison of two runs.

- `eval_object` builds the one eval.json object (keys in docs/evaluation.md) from the figures of
  trainer/evaluation/stats.py; `write_report` writes it (atomically: a reader never sees half a file), the
  table (`eval.md`) and the PNGs (`eval-rates.png`: pass@k and fast_p@k per problem; `eval-speedup.png`:
  the best correct sample's speedup per task on a log axis).
- `compare_files(a, b)` reads two eval.json files and renders B beside A with B - A per problem and
  overall; it refuses (EvalFileError, whose message names the file and what is wrong) anything that is not
  an eval.json object, and warns (but still compares) when k or the problems differ. Argument parsing is
  the CLI's.

Everything reads the JSON object, never the records, so a report can be redrawn and compared from files
alone. Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas, never pyplot, and matplotlib
is imported only to draw: comparing two files needs nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from trainer.evaluation.stats import ESTIMATES, FAST_P, ProblemFigures, overall_figures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMAT: Final = "hpcrl-eval"
"""eval.json's `format`: what tells an eval.json object from any other JSON."""
FORMAT_VERSION: Final = 1
EVAL_FILE: Final = "eval.json"
TABLE_FILE: Final = "eval.md"
RATES_PLOT: Final = "eval-rates.png"
SPEEDUP_PLOT: Final = "eval-speedup.png"
REQUIRED: Final[tuple[str, ...]] = ("model", "adapter", "suite", "k", "problems", "overall")
FIGURE_SIZE_IN: Final = (10.0, 5.0)
DPI: Final = 120
LABELS: Final[dict[str, str]] = {
    "pass_at_k": "pass@k",
    **{f"fast_{p}_at_k": f"fast_{p}@k" for p in FAST_P},
    "vendor_fast_1_at_k": "vendor fast_1@k",
}
"""Display names of the estimates (k is written out where the table knows it)."""
COMPARED: Final[tuple[str, ...]] = (
    *ESTIMATES,
    "geomean_speedup",
    "solved_share",
    "correct_share",
    "n",
    "dropped",
    "cached",
    "distinct_programs",
    "cells",
)
"""The figures `compare` sets side by side, in this order."""


class EvalFileError(ValueError):
    """A file (or object) given as an eval.json is not one; the message names it and says why."""


# ---------------------------------------------------------------- eval.json


def eval_object(
    model: str,
    adapter: str | None,
    suite: str | None,
    k: int,
    problems: Mapping[str, ProblemFigures],
    created: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The eval.json object; `overall` is computed here from the problems, so it always matches them."""
    when = created or datetime.datetime.now(datetime.UTC)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": when.isoformat(timespec="seconds"),
        "model": model,
        "adapter": adapter,
        "suite": suite,
        "k": k,
        "problems": {name: _problem_object(p) for name, p in sorted(problems.items())},
        "overall": dataclasses.asdict(overall_figures(problems.values())),
    }


def _problem_object(problem: ProblemFigures) -> dict[str, Any]:
    # `tasks` is the problem's count of tasks (as in `overall`); the tasks themselves are its sizes.
    by_size = [{"size": t.size, **dataclasses.asdict(t)} for t in problem.tasks]
    for task in by_size:
        del task["problem"]
    return {**dataclasses.asdict(problem.figures), "by_size": by_size}


def write_eval(obj: Mapping[str, Any], out_dir: Path) -> Path:
    """eval.json in `out_dir`, written beside and renamed into place. NaN is refused: every figure that
    cannot be computed is null with its reason in `missing`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / EVAL_FILE
    partial = out_dir / f".{EVAL_FILE}.partial"
    partial.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")
    os.replace(partial, path)
    return path


def read_eval(path: Path) -> dict[str, Any]:
    """An eval.json file's object, or EvalFileError saying what the file is instead."""
    try:
        text = path.read_text()
    except OSError as e:
        raise EvalFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise EvalFileError(f"{path}: is not JSON ({e}); give the eval.json that `hpcrl eval` wrote") from None
    check_eval(obj, str(path))
    return dict(obj)


def check_eval(obj: object, name: str) -> None:
    """Refuse (EvalFileError) anything that is not an eval.json object this version can read."""
    fix = "give the eval.json that `hpcrl eval` wrote"
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise EvalFileError(f'{name}: is not an eval.json object (no "format": "{FORMAT}"); {fix}')
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EvalFileError(f"{name}: format_version {version!r}, this hpcrl reads {FORMAT_VERSION} or older")
    absent = [key for key in REQUIRED if key not in obj]
    if absent:
        raise EvalFileError(f"{name}: an eval.json without {', '.join(absent)}: truncated or edited? {fix}")
    if not isinstance(obj["k"], int) or not isinstance(obj["problems"], dict) or not isinstance(obj["overall"], dict):
        raise EvalFileError(f"{name}: k must be a number and problems, overall objects; {fix}")


# ---------------------------------------------------------------- markdown


def markdown(obj: Mapping[str, Any]) -> str:
    """A table with a row per problem and an overall row, the verdict mix, and why any figure is n/a."""
    k = obj["k"]
    adapter = f" + adapter {obj['adapter']}" if obj["adapter"] else ""
    suite = f"suite {obj['suite']}" if obj["suite"] else "problems " + ", ".join(obj["problems"])
    rows = [*obj["problems"].items(), ("**overall**", obj["overall"])]
    estimates = [LABELS[e].replace("@k", f"@{k}") for e in ESTIMATES]
    head = ["problem", "tasks", "n", "dropped", "cached", *estimates, "geomean speedup", "solved", "programs", "cells"]
    lines = [
        f"# Evaluation of {obj['model']}{adapter}",
        "",
        f"{suite}; k = {k}; created {obj.get('created', '?')}. Estimates are means over tasks (docs/evaluation.md).",
        "",
        _row(head),
        _row(["---"] + ["---:"] * (len(head) - 1)),
    ]
    for name, f in rows:
        lines.append(
            _row(
                [
                    name,
                    str(f["tasks"]),
                    str(f["n"]),
                    str(f["dropped"]),
                    str(f["cached"]),
                    *(_share(f[e]) for e in ESTIMATES),
                    _speedup(f["geomean_speedup"]),
                    f"{f['solved_tasks']}/{f['tasks_measured']}",
                    str(f["distinct_programs"]),
                    str(len(f["cells"])),
                ]
            )
        )
    verdicts = sorted({v for _, f in rows for v in f["verdicts"]})
    lines += ["", "Verdicts of the samples in n:", "", _row(["problem", *verdicts])]
    lines.append(_row(["---"] + ["---:"] * len(verdicts)))
    lines += [_row([name] + [str(f["verdicts"].get(v, 0)) for v in verdicts]) for name, f in rows]
    missing = [f"- {name}: {figure}: {why}" for name, f in rows for figure, why in f["missing"].items()]
    if missing:
        lines += ["", "n/a:", "", *missing]
    return "\n".join(lines) + "\n"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _speedup(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


# ---------------------------------------------------------------- PNGs


def write_report(obj: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """eval.json, eval.md and the PNGs in `out_dir`; the paths written."""
    paths = [write_eval(obj, out_dir)]
    table = out_dir / TABLE_FILE
    table.write_text(markdown(obj))
    return [*paths, table, *write_plots(obj, out_dir)]


def write_plots(obj: Mapping[str, Any], out_dir: Path) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, draw in ((RATES_PLOT, _rates), (SPEEDUP_PLOT, _speedups)):
        figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        draw(figure, obj)
        figure.savefig(out_dir / name, dpi=DPI)
        paths.append(out_dir / name)
    return paths


def _title(obj: Mapping[str, Any]) -> str:
    adapter = f" + {Path(obj['adapter']).name}" if obj["adapter"] else ""
    return f"{Path(obj['model']).name}{adapter}, k = {obj['k']}"


def _rates(figure: Figure, obj: Mapping[str, Any]) -> None:
    """Grouped bars: each estimate per problem, then overall; a figure that is n/a has no bar."""
    ax = figure.add_subplot()
    groups = [*obj["problems"].items(), ("overall", obj["overall"])]
    width = 0.8 / len(ESTIMATES)
    for i, estimate in enumerate(ESTIMATES):
        values = [math.nan if f[estimate] is None else f[estimate] for _, f in groups]
        x = [g + (i - (len(ESTIMATES) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(x, values, width=width, label=LABELS[estimate].replace("@k", f"@{obj['k']}"))
        # A 0 and an n/a both draw no bar: the label tells them apart.
        ax.bar_label(bars, ["n/a" if math.isnan(v) else f"{v:.2f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), [name for name, _ in groups])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("estimated probability (mean over tasks)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(f"{_title(obj)}: pass@k and fast_p@k (fast_p: > p x the naive reference)")


def _speedups(figure: Figure, obj: Mapping[str, Any]) -> None:
    """The best correct sample's speedup over the naive reference, one point per solved task; a bar per
    problem at its geometric mean; unsolved tasks are counted in the labels, never drawn at 0."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax = figure.add_subplot()
    ax.set_yscale("log")
    ax.axhline(1.0, color="0.4", linestyle="--", linewidth=1.0, label="naive reference")
    labels: list[str] = []
    drawn: list[float] = [1.0]
    for i, (name, f) in enumerate(obj["problems"].items()):
        tasks = f["by_size"]
        for j, task in enumerate(tasks):
            if task["best_speedup"] is not None:
                x = i + (j - (len(tasks) - 1) / 2) * (0.6 / max(1, len(tasks)))
                y = task["best_speedup"]
                ax.scatter([x], [y], color=f"C{i % 10}", zorder=3)
                ax.annotate(
                    f"n={task['size']}: {y:.2f}x", (x, y), xytext=(4, 2), textcoords="offset points", fontsize=8
                )
                drawn.append(y)
        if f["geomean_speedup"] is not None:
            ax.hlines(f["geomean_speedup"], i - 0.35, i + 0.35, color=f"C{i % 10}", linewidth=2.0, alpha=0.6)
        labels.append(f"{name}\n{f['solved_tasks']}/{f['tasks_measured']} solved")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlim(-0.5, max(0.5, len(labels) - 0.5))
    ax.set_ylim(min(drawn) / 2, max(drawn) * 2)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("best speedup over naive (log)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(f"{_title(obj)}: best correct sample per task, geometric mean over solved tasks as a bar")


# ---------------------------------------------------------------- compare


def compare_files(path_a: Path | str, path_b: Path | str) -> str:
    """Two eval.json files side by side (see `compare`); EvalFileError when either is not one."""
    a, b = Path(path_a), Path(path_b)
    return compare(read_eval(a), read_eval(b), str(a), str(b))


def compare(a: Mapping[str, Any], b: Mapping[str, Any], name_a: str = "", name_b: str = "") -> str:
    """A markdown table of A, B and B - A for each figure in COMPARED, per problem and overall, with
    warnings above it when k or the problems differ (the comparison is still made)."""
    check_eval(a, name_a or "A")
    check_eval(b, name_b or "B")
    lines = [f"A: {_describe(a, name_a)}", f"B: {_describe(b, name_b)}", ""]
    if a["k"] != b["k"]:
        lines.append(
            f"warning: A has k = {a['k']} and B has k = {b['k']}: the @k estimates differ by k alone; "
            "compare runs made with the same --k"
        )
    only_a = sorted(set(a["problems"]) - set(b["problems"]))
    only_b = sorted(set(b["problems"]) - set(a["problems"]))
    if only_a or only_b:
        lines.append("warning: the problems differ, so the overall rows cover different tasks")
    if lines[-1]:
        lines.append("")
    lines += [_row(["problem", "figure", "A", "B", "B - A"]), _row(["---", "---", "---:", "---:", "---:"])]
    for name in sorted(set(a["problems"]) | set(b["problems"])):
        if name in only_a or name in only_b:
            lines.append(_row([name, f"only in {'A' if name in only_a else 'B'}", "", "", ""]))
        else:
            lines += _compare_rows(name, a["problems"][name], b["problems"][name])
    lines += _compare_rows("overall", a["overall"], b["overall"])
    return "\n".join(lines) + "\n"


def _describe(obj: Mapping[str, Any], name: str) -> str:
    adapter = f", adapter {obj['adapter']}" if obj["adapter"] else ""
    where = f"{name}: " if name else ""
    suite = obj["suite"] or "-"
    return f"{where}model {obj['model']}{adapter}, suite {suite}, k = {obj['k']}, created {obj.get('created')}"


def _compare_rows(name: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    rows = []
    for figure in COMPARED:
        va, vb = a.get(figure), b.get(figure)
        if figure == "cells":
            va, vb = len(va or []), len(vb or [])
        label = LABELS.get(figure, figure.replace("_", " "))
        rows.append(_row([name, label, _value(figure, va), _value(figure, vb), _difference(figure, va, vb)]))
    return rows


def _value(figure: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return _speedup(value) if figure == "geomean_speedup" else _share(value)


def _difference(figure: str, a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    if isinstance(a, int) and isinstance(b, int):
        return f"{b - a:+d}"
    if figure == "geomean_speedup":
        return f"{b - a:+.2f}x (B/A {b / a:.2f})"
    return f"{b - a:+.3f}"
