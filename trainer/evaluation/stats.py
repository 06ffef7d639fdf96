"""The figures of `hpcrl eval`: pass@k, fast_p@k, speedups and technique cells from sampled programs. Pure.

Vocabulary: a *task* is one (problem, size); the eval samples K completions per task, and each becomes a
`Sample` once its verdict is known. Every figure below is computed per task first; a problem's figure and
the overall figure aggregate tasks (docs/evaluation.md restates all of this for readers of eval.json).

What counts as a sample of the model (n):
- `infra_error` (our fault) and `lost` (no result came back in time) are not the model's doing: they are
  left out of n and counted in `dropped`.
- NaN policy: an `ok` sample whose rate is NaN, infinite, negative or zero is a broken measurement (a
  correct program that finished in finite time has a positive speed; 0 means the timer or the operation
  count failed). It is ours too: left out of n, counted in `dropped` and in `broken`.
- Every other verdict, `no_code` included, is a sample of the model, and only `ok` is correct.
- A result answered from the bencher's result cache is a sample like any other: pass@k describes the
  model's sampling distribution, and sampling the same program twice is part of it. `cached` says how many
  samples were answered that way. Program-level figures (`distinct_programs`, `techniques`, `cells`) count
  each distinct program (by source digest) once, so a cached repeat never adds a program or a cell.

Estimators (the unbiased estimator of the Codex paper, Chen et al. 2021, from n >= k samples of which c
pass): pass@k = 1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1..n} (1 - k/i) so that large n never
overflows; it is 1 when n - c < k (every k-subset holds a passing sample). fast_p@k is the same estimator
with c = the correct samples whose speed is more than p times the reference's speed measured on the same
node (p in FAST_P against the naive reference implementation; p = 1 against the vendor library, e.g.
OpenBLAS, where the problem has one). With fewer than k samples left in n, no estimate is made: the figure
is None and `missing` names the reason, never a made-up number.

A reference known for a task: every correct sample carries it (rates > 0), or, when none is correct, at
least one sample does (the eval fills both references for every sample of a task from the node's figures;
a problem with no vendor library has none anywhere, and its vendor figure stays None).

Aggregation (a problem over its sizes, overall over every task of every problem):
- an estimate is the mean over tasks of the per-task estimates, over the tasks that have one
  (`estimated` says how many); each task weighs the same, whatever its n;
- `geomean_speedup` is the geometric mean over tasks of the best correct sample's speedup over the naive
  reference. Only solved tasks (at least one correct sample) have a best sample, so `solved_share` (solved
  tasks / tasks with at least one sample in n) stands beside it: a model cannot look faster by solving only
  the easy tasks without its solved_share saying so;
- `correct_share` pools samples: correct samples / n;
- counts (n, dropped, broken, cached, correct, verdicts) are sums.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from bus.schema import Verdict
from trainer.rewards import DROPPED, VERDICTS

FAST_P: Final[tuple[int, ...]] = (1, 2, 4)
"""The speedups over the naive reference that fast_p@k is reported for."""
ESTIMATES: Final[tuple[str, ...]] = (
    "pass_at_k",
    *(f"fast_{p}_at_k" for p in FAST_P),
    "vendor_fast_1_at_k",
)
"""The estimated figures, each a probability in [0, 1] or None (see `missing`)."""
FEW_SAMPLES: Final = "fewer than k samples in n"
NO_NAIVE: Final = "naive reference unknown"
NO_VENDOR: Final = "no vendor baseline"
NONE_SOLVED: Final = "no task solved"
NO_SAMPLES: Final = "every sample dropped"


@dataclass(frozen=True)
class Sample:
    """One sampled completion of one task, with its verdict and speeds."""

    problem: str
    size: int
    verdict: str
    """A `Verdict` value, or the trainer's `no_code` / `lost`."""
    rate: float = 0.0
    """Median speed in the problem's metric unit (GFLOPS or GB/s); read for `ok` only."""
    naive_rate: float = 0.0
    """Speed of the node's naive reference implementation at this size, same unit; 0 = unknown."""
    vendor_rate: float = 0.0
    """Speed of the vendor library (e.g. OpenBLAS) at this size, same unit; 0 = no vendor baseline."""
    techniques: tuple[str, ...] = ()
    """The archive's technique labels of the program (e.g. "openmp", "tiling")."""
    program: str = ""
    """A digest of the program source; "" when the completion held no code."""
    cached: bool = False
    """Answered from the bencher's result cache rather than measured for this sample."""

    def __post_init__(self) -> None:
        # Our own invariants: the eval builds samples from its own records, so a bad one is a bug.
        if self.verdict not in VERDICTS:
            raise ValueError(f"Sample.verdict = {self.verdict!r}; valid: {', '.join(sorted(VERDICTS))}")
        for name in ("naive_rate", "vendor_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Sample.{name} = {value!r} must be a finite number >= 0 (0 = unknown)")

    @property
    def dropped(self) -> bool:
        """Not the model's doing: our infrastructure failed, or the measurement is broken."""
        return self.verdict in DROPPED or self.broken

    @property
    def broken(self) -> bool:
        """An `ok` sample whose rate cannot be a measurement (NaN policy)."""
        return self.verdict == Verdict.OK and not (math.isfinite(self.rate) and self.rate > 0)

    @property
    def correct(self) -> bool:
        return self.verdict == Verdict.OK and not self.broken


@dataclass(frozen=True)
class Tally:
    """What the figures of a task and of a set of tasks share: the samples counted and the estimates."""

    samples: int
    """Samples given, dropped ones included."""
    n: int
    """Samples of the model: `samples` - `dropped`."""
    dropped: int
    """`infra_error`, `lost` and broken measurements."""
    broken: int
    """Of `dropped`: `ok` samples with a NaN, infinite or non-positive rate."""
    cached: int
    """Of n: samples answered from the bencher's result cache."""
    correct: int
    """Of n: `ok` samples (c in the estimators)."""
    verdicts: dict[str, int]
    """Of n: samples per verdict."""
    pass_at_k: float | None
    """A task's estimate; for a set of tasks, the mean over the tasks that have one (likewise each
    estimate below)."""
    fast_1_at_k: float | None
    fast_2_at_k: float | None
    fast_4_at_k: float | None
    vendor_fast_1_at_k: float | None
    missing: dict[str, str]
    """Why a figure is None, by figure name."""
    distinct_programs: int
    """Distinct programs (source digests) among the samples in n: a cached repeat counts once."""


@dataclass(frozen=True)
class TaskFigures(Tally):
    """The figures of one task: one (problem, size) and its samples."""

    problem: str
    size: int
    best_rate: float | None
    """The fastest correct sample's rate; None when none is correct."""
    best_speedup: float | None
    """The highest speedup of a correct sample over its naive reference (each sample's own node's: the
    fastest sample when one node measured the task); None: unsolved or reference unknown."""


@dataclass(frozen=True)
class Figures(Tally):
    """The figures of a set of tasks: one problem's sizes, or every task (overall)."""

    tasks: int
    tasks_measured: int
    """Tasks with at least one sample in n."""
    correct_share: float | None
    """correct / n over all the tasks' samples; None when n = 0."""
    solved_tasks: int
    """Tasks with at least one correct sample."""
    solved_share: float | None
    """solved_tasks / tasks_measured; None when no task was measured."""
    geomean_speedup: float | None
    """Geometric mean over solved tasks of the best correct sample's speedup over the naive reference."""
    estimated: dict[str, int]
    """Tasks that each mean (estimates, geomean_speedup) is taken over."""
    techniques: dict[str, int]
    """Distinct programs using each technique label."""
    cells: list[list[str]]
    """The distinct technique sets of correct programs (a cell each), sorted; [] stands for no technique."""


@dataclass(frozen=True)
class ProblemFigures:
    problem: str
    figures: Figures
    """The problem's figures over its sizes."""
    tasks: list[TaskFigures]
    """One per size, smallest first."""


# ---------------------------------------------------------------- estimators


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n, c of them passing,
    passes: 1 - C(n-c, k) / C(n, k), as a product so that large n never overflows."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def fast_p_at_k(n: int, speedups: Sequence[float], p: float, k: int) -> float:
    """pass@k where a sample passes when it is correct and faster than p times the reference.

    `speedups` holds each correct sample's rate over its reference rate (len <= n); the others fail."""
    if len(speedups) > n:
        raise ValueError(f"fast_p_at_k: {len(speedups)} correct samples out of n={n}")
    return pass_at_k(n, sum(1 for s in speedups if s > p), k)


def geomean(values: Iterable[float]) -> float:
    """Geometric mean of positive numbers, through logs (a product of many speedups can overflow)."""
    logs = [math.log(v) for v in values]
    if not logs:
        raise ValueError("geomean of nothing")
    return math.exp(math.fsum(logs) / len(logs))


# ---------------------------------------------------------------- per task


def task_figures(samples: Sequence[Sample], k: int) -> TaskFigures:
    """The figures of one task from its samples (all of one problem and size)."""
    if k < 1:
        raise ValueError(f"k = {k} must be >= 1")
    keys = {(s.problem, s.size) for s in samples}
    if len(keys) != 1:
        raise ValueError(f"task_figures needs the samples of exactly one (problem, size); got {sorted(keys)}")
    ((problem, size),) = keys
    kept = [s for s in samples if not s.dropped]
    correct = [s for s in kept if s.correct]
    n = len(kept)
    missing: dict[str, str] = {}
    estimates: dict[str, float | None] = dict.fromkeys(ESTIMATES)
    naive = _speedups(kept, correct, "naive_rate")
    vendor = _speedups(kept, correct, "vendor_rate")
    if n < k:
        missing.update(dict.fromkeys(ESTIMATES, FEW_SAMPLES))
    else:
        estimates["pass_at_k"] = pass_at_k(n, len(correct), k)
        for p in FAST_P:
            if naive is None:
                missing[f"fast_{p}_at_k"] = NO_NAIVE
            else:
                estimates[f"fast_{p}_at_k"] = fast_p_at_k(n, naive, p, k)
        if vendor is None:
            missing["vendor_fast_1_at_k"] = NO_VENDOR
        else:
            estimates["vendor_fast_1_at_k"] = fast_p_at_k(n, vendor, 1, k)
    if not correct:
        missing["best_speedup"] = NONE_SOLVED
    elif naive is None:
        missing["best_speedup"] = NO_NAIVE
    return TaskFigures(
        problem=problem,
        size=size,
        samples=len(samples),
        n=n,
        dropped=len(samples) - n,
        broken=sum(s.broken for s in samples),
        cached=sum(s.cached for s in kept),
        correct=len(correct),
        verdicts=dict(sorted(collections.Counter(s.verdict for s in kept).items())),
        pass_at_k=estimates["pass_at_k"],
        fast_1_at_k=estimates["fast_1_at_k"],
        fast_2_at_k=estimates["fast_2_at_k"],
        fast_4_at_k=estimates["fast_4_at_k"],
        vendor_fast_1_at_k=estimates["vendor_fast_1_at_k"],
        missing=missing,
        best_rate=max((s.rate for s in correct), default=None),
        best_speedup=max(naive) if correct and naive else None,
        distinct_programs=len({s.program for s in kept if s.program}),
    )


def _speedups(kept: Sequence[Sample], correct: Sequence[Sample], reference: str) -> list[float] | None:
    """Each correct sample's rate over its own reference (`naive_rate` or `vendor_rate`: the node that
    measured it); None when the task's reference is not known (rule in the module docstring)."""
    if correct:
        known = all(getattr(s, reference) > 0 for s in correct)
    else:
        known = any(getattr(s, reference) > 0 for s in kept)
    return [s.rate / getattr(s, reference) for s in correct] if known else None


# ---------------------------------------------------------------- aggregates


def problem_figures(samples: Sequence[Sample], k: int) -> ProblemFigures:
    """One problem's figures: a task per size, aggregated over its sizes."""
    problems = {s.problem for s in samples}
    if len(problems) != 1:
        raise ValueError(f"problem_figures needs the samples of exactly one problem; got {sorted(problems)}")
    by_size: dict[int, list[Sample]] = collections.defaultdict(list)
    for s in samples:
        by_size[s.size].append(s)
    tasks = [task_figures(by_size[size], k) for size in sorted(by_size)]
    programs = _programs([s for s in samples if not s.dropped])
    return ProblemFigures(problem=problems.pop(), figures=_aggregate(tasks, *programs), tasks=tasks)


def figures_by_problem(samples: Sequence[Sample], k: int) -> dict[str, ProblemFigures]:
    """Every problem's figures, by problem name (sorted)."""
    by_problem: dict[str, list[Sample]] = collections.defaultdict(list)
    for s in samples:
        by_problem[s.problem].append(s)
    return {name: problem_figures(by_problem[name], k) for name in sorted(by_problem)}


def overall_figures(problems: Iterable[ProblemFigures]) -> Figures:
    """Every task of every problem aggregated as one set; program-level figures are the problems' sums
    (programs and cells belong to their problem: a tiled dgemm and a tiled stencil are two cells)."""
    problems = list(problems)
    techniques: collections.Counter[str] = collections.Counter()
    for p in problems:
        techniques.update(p.figures.techniques)
    return _aggregate(
        [t for p in problems for t in p.tasks],
        distinct_programs=sum(p.figures.distinct_programs for p in problems),
        techniques=dict(sorted(techniques.items())),
        cells=[cell for p in problems for cell in p.figures.cells],
    )


def _programs(kept: Sequence[Sample]) -> tuple[int, dict[str, int], list[list[str]]]:
    """(distinct programs, programs per technique label, cells of correct programs), each program once
    however often it was sampled or answered from the cache."""
    labels: dict[str, frozenset[str]] = {}
    correct: set[str] = set()
    for s in kept:
        if s.program:
            labels.setdefault(s.program, frozenset(s.techniques))
            if s.correct:
                correct.add(s.program)
    techniques = collections.Counter(label for program_labels in labels.values() for label in program_labels)
    cells = sorted({tuple(sorted(labels[p])) for p in correct})
    return len(labels), dict(sorted(techniques.items())), [list(cell) for cell in cells]


def _aggregate(
    tasks: Sequence[TaskFigures], distinct_programs: int, techniques: dict[str, int], cells: list[list[str]]
) -> Figures:
    estimated: dict[str, int] = {}
    missing: dict[str, str] = {}
    means: dict[str, float | None] = {}
    for name in ESTIMATES:
        values = [v for t in tasks if (v := getattr(t, name)) is not None]
        estimated[name] = len(values)
        means[name] = math.fsum(values) / len(values) if values else None
        if not values:
            missing[name] = _reasons(tasks, name)
    speedups = [t.best_speedup for t in tasks if t.best_speedup is not None]
    estimated["geomean_speedup"] = len(speedups)
    if not speedups:
        missing["geomean_speedup"] = _reasons(tasks, "best_speedup")
    n = sum(t.n for t in tasks)
    measured = sum(t.n > 0 for t in tasks)
    solved = sum(t.correct > 0 for t in tasks)
    if n == 0:
        missing["correct_share"] = missing["solved_share"] = NO_SAMPLES
    verdicts: collections.Counter[str] = collections.Counter()
    for t in tasks:
        verdicts.update(t.verdicts)
    return Figures(
        tasks=len(tasks),
        tasks_measured=measured,
        samples=sum(t.samples for t in tasks),
        n=n,
        dropped=sum(t.dropped for t in tasks),
        broken=sum(t.broken for t in tasks),
        cached=sum(t.cached for t in tasks),
        correct=sum(t.correct for t in tasks),
        correct_share=sum(t.correct for t in tasks) / n if n else None,
        verdicts=dict(sorted(verdicts.items())),
        pass_at_k=means["pass_at_k"],
        fast_1_at_k=means["fast_1_at_k"],
        fast_2_at_k=means["fast_2_at_k"],
        fast_4_at_k=means["fast_4_at_k"],
        vendor_fast_1_at_k=means["vendor_fast_1_at_k"],
        solved_tasks=solved,
        solved_share=solved / measured if measured else None,
        geomean_speedup=geomean(speedups) if speedups else None,
        estimated=estimated,
        missing=missing,
        distinct_programs=distinct_programs,
        techniques=techniques,
        cells=cells,
    )


def _reasons(tasks: Sequence[TaskFigures], name: str) -> str:
    """Why no task has `name`: each task's reason with how many tasks gave it ("no tasks" when empty)."""
    counts = collections.Counter(t.missing.get(name, "") for t in tasks)
    if not counts:
        return "no tasks"
    return "; ".join(f"{reason} ({count} of {len(tasks)} tasks)" for reason, count in sorted(counts.items()))
