"""`hpcrl eval`'s figures: known answers for the estimators, and the rules of trainer/evaluation/stats.py."""

from __future__ import annotations

import itertools
import math

import pytest

from trainer.evaluation.stats import (
    FEW_SAMPLES,
    NO_NAIVE,
    NO_VENDOR,
    NONE_SOLVED,
    Sample,
    fast_p_at_k,
    figures_by_problem,
    geomean,
    overall_figures,
    pass_at_k,
    problem_figures,
    task_figures,
)


def ok(
    rate: float,
    naive: float = 5.0,
    vendor: float = 0.0,
    program: str = "",
    techniques: tuple[str, ...] = (),
    size: int = 256,
    cached: bool = False,
) -> Sample:
    return Sample("dgemm", size, "ok", rate, naive, vendor, techniques, program, cached)


def failed(verdict: str, problem: str = "dgemm", size: int = 256, program: str = "") -> Sample:
    return Sample(problem=problem, size=size, verdict=verdict, naive_rate=5.0, program=program)


# ---------------------------------------------------------------- estimators


def test_pass_at_k_known_answers() -> None:
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2)) == pytest.approx(0.7)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # n - c = 2 < k: every 3-subset holds a correct sample
    assert pass_at_k(4, 4, 4) == 1.0


@pytest.mark.parametrize(("n", "c", "k"), [(5, 2, 2), (6, 1, 3), (7, 3, 2), (8, 2, 5), (6, 0, 2), (9, 4, 4)])
def test_pass_at_k_is_the_share_of_k_subsets_holding_a_correct_sample(n: int, c: int, k: int) -> None:
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(outcomes, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets), abs=1e-12)


def test_pass_at_k_stays_exact_for_large_n() -> None:
    # C(2000, 100) overflows a float; the product form does not.
    assert pass_at_k(2000, 1, 100) == pytest.approx(100 / 2000)
    assert pass_at_k(2000, 3, 100) == pytest.approx(1 - math.comb(1997, 100) / math.comb(2000, 100))


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (3, 1, 4)])
def test_pass_at_k_refuses_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass_at_k needs"):
        pass_at_k(n, c, k)


def test_fast_p_counts_correct_samples_strictly_faster_than_p_times_the_reference() -> None:
    speedups = [0.5, 1.0, 2.0, 2.5, 4.5]  # 5 correct out of n = 8
    assert fast_p_at_k(8, speedups, 1, 1) == pytest.approx(3 / 8)  # 1.0 is not faster than 1x
    assert fast_p_at_k(8, speedups, 2, 2) == pytest.approx(pass_at_k(8, 2, 2))
    assert fast_p_at_k(8, speedups, 4, 1) == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match="correct samples out of n"):
        fast_p_at_k(3, speedups, 1, 1)


def test_geomean_known_answer() -> None:
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert geomean([1e300, 1e300, 1e-300]) == pytest.approx(1e100)  # through logs: no overflow


# ---------------------------------------------------------------- one task


def test_a_task_gets_every_figure_from_its_samples() -> None:
    samples = [
        ok(10.0, vendor=20.0, program="a", techniques=("openmp",)),  # 2x naive: fast_1, not fast_2
        ok(30.0, vendor=20.0, program="b", techniques=("openmp", "tiling")),  # 6x naive, beats the vendor
        failed("wrong_answer", program="c"),
        failed("compile_error", program="d"),
        failed("no_code"),
    ]
    t = task_figures(samples, k=2)
    assert (t.samples, t.n, t.dropped, t.correct) == (5, 5, 0, 2)
    assert t.verdicts == {"compile_error": 1, "no_code": 1, "ok": 2, "wrong_answer": 1}
    assert t.pass_at_k == pytest.approx(0.7)
    assert t.fast_1_at_k == pytest.approx(0.7)
    assert t.fast_2_at_k == pytest.approx(1 - math.comb(4, 2) / math.comb(5, 2))  # only the 6x sample
    assert t.fast_4_at_k == pytest.approx(0.4)
    assert t.vendor_fast_1_at_k == pytest.approx(0.4)
    assert t.best_rate == 30.0
    assert t.best_speedup == pytest.approx(6.0)
    assert t.distinct_programs == 4
    assert t.missing == {}


def test_infra_errors_and_lost_samples_are_dropped_not_charged_to_the_model() -> None:
    samples = [ok(10.0), failed("wrong_answer"), failed("infra_error"), failed("lost"), failed("lost")]
    t = task_figures(samples, k=1)
    assert (t.samples, t.n, t.dropped, t.broken) == (5, 2, 3, 0)
    assert t.pass_at_k == pytest.approx(0.5)  # 1 of 2, not 1 of 5
    assert "infra_error" not in t.verdicts and "lost" not in t.verdicts


@pytest.mark.parametrize("rate", [math.nan, math.inf, -3.0, 0.0])
def test_an_ok_sample_with_a_broken_rate_is_dropped_and_counted(rate: float) -> None:
    t = task_figures([ok(rate), ok(10.0), failed("crash")], k=1)
    assert (t.n, t.dropped, t.broken, t.correct) == (2, 1, 1, 1)
    assert t.best_rate == 10.0


def test_fewer_than_k_samples_left_gives_no_estimate_and_says_why() -> None:
    t = task_figures([ok(10.0), failed("infra_error"), failed("timeout")], k=3)
    assert t.n == 2
    assert (t.pass_at_k, t.fast_1_at_k, t.vendor_fast_1_at_k) == (None, None, None)
    assert t.missing["pass_at_k"] == FEW_SAMPLES
    assert t.best_speedup == pytest.approx(2.0)  # a fact about the samples, not an estimate


def test_references_unknown_leave_the_fast_figures_out() -> None:
    no_naive = task_figures([ok(10.0, naive=0.0), failed("crash")], k=1)
    assert no_naive.pass_at_k == pytest.approx(0.5)
    assert (no_naive.fast_1_at_k, no_naive.best_speedup) == (None, None)
    assert no_naive.missing["fast_1_at_k"] == no_naive.missing["best_speedup"] == NO_NAIVE
    assert no_naive.missing["vendor_fast_1_at_k"] == NO_VENDOR
    unsolved = task_figures([failed("crash"), failed("timeout")], k=1)
    assert unsolved.fast_2_at_k == 0.0  # the naive reference is known: nothing was faster
    assert unsolved.vendor_fast_1_at_k is None  # no vendor library, whoever the model
    assert unsolved.missing["best_speedup"] == NONE_SOLVED


def test_task_figures_refuse_samples_of_two_tasks() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        task_figures([ok(1.0), failed("crash", size=512)], k=1)


def test_a_sample_with_an_unknown_verdict_or_a_bad_reference_is_a_bug() -> None:
    with pytest.raises(ValueError, match="verdict"):
        Sample(problem="dgemm", size=1, verdict="fast")
    with pytest.raises(ValueError, match="naive_rate"):
        Sample(problem="dgemm", size=1, verdict="ok", rate=1.0, naive_rate=math.nan)


# ---------------------------------------------------------------- aggregates


def test_geomean_counts_solved_tasks_and_solved_share_says_how_many() -> None:
    samples = [
        ok(10.0, size=256),  # best 2x
        ok(40.0, size=512),  # best 8x
        ok(20.0, size=512),
        failed("crash", size=1024),  # unsolved
        failed("infra_error", size=2048),  # every sample dropped: not measured
    ]
    f = problem_figures(samples, k=1).figures
    assert f.geomean_speedup == pytest.approx(4.0)
    assert (f.tasks, f.tasks_measured, f.solved_tasks) == (4, 3, 2)
    assert f.solved_share == pytest.approx(2 / 3)
    assert f.estimated["geomean_speedup"] == 2
    assert f.correct_share == pytest.approx(3 / 4)


def test_estimates_are_the_mean_over_tasks_not_over_problems_or_samples() -> None:
    samples = [
        ok(10.0, size=256),
        ok(10.0, size=512),
        ok(10.0, size=512),
        ok(10.0, size=512),
        failed("crash", problem="stencil"),
    ]
    problems = figures_by_problem(samples, k=1)
    assert problems["dgemm"].figures.pass_at_k == 1.0
    assert problems["stencil"].figures.pass_at_k == 0.0
    overall = overall_figures(problems.values())
    assert overall.pass_at_k == pytest.approx(2 / 3)  # 3 tasks; the mean of problems would say 0.5
    assert overall.correct_share == pytest.approx(4 / 5)  # pooled over samples
    assert (overall.tasks, overall.n, overall.correct) == (3, 5, 4)


def test_tasks_without_an_estimate_are_left_out_of_the_mean_and_counted() -> None:
    samples = [ok(10.0, size=256), ok(10.0, size=256), failed("crash", size=512), failed("lost", size=512)]
    f = problem_figures(samples, k=2).figures
    assert f.pass_at_k == 1.0  # size 512 kept one sample of k = 2: no estimate
    assert f.estimated["pass_at_k"] == 1
    none = problem_figures([failed("crash", size=512), failed("lost", size=512)], k=2).figures
    assert none.pass_at_k is None
    assert none.missing["pass_at_k"] == f"{FEW_SAMPLES} (1 of 1 tasks)"


def test_cached_repeats_count_as_samples_but_once_as_programs() -> None:
    samples = [
        ok(10.0, program="p1", techniques=("openmp",)),
        ok(10.0, program="p1", techniques=("openmp",), cached=True),
        ok(10.0, program="p1", techniques=("openmp",), cached=True, size=512),
        failed("wrong_answer", program="p2"),
    ]
    problem = problem_figures(samples, k=1)
    assert (problem.figures.n, problem.figures.correct, problem.figures.cached) == (4, 3, 2)
    assert problem.tasks[0].pass_at_k == pytest.approx(2 / 3)
    assert problem.figures.distinct_programs == 2
    assert problem.figures.techniques == {"openmp": 1}
    assert problem.figures.cells == [["openmp"]]


def test_cells_are_the_technique_sets_of_correct_programs_per_problem() -> None:
    samples = [
        ok(10.0, program="a", techniques=("tiling", "openmp")),
        ok(12.0, program="b", techniques=("openmp", "tiling")),  # the same cell
        ok(11.0, program="c"),  # no technique: a cell of its own
        failed("wrong_answer", program="d"),
        Sample(problem="stencil", size=64, verdict="ok", rate=3.0, naive_rate=1.0, program="e", techniques=("tiling",)),
    ]
    problems = figures_by_problem(samples, k=1)
    assert problems["dgemm"].figures.cells == [[], ["openmp", "tiling"]]
    assert problems["dgemm"].figures.techniques == {"openmp": 2, "tiling": 2}
    overall = overall_figures(problems.values())
    assert overall.cells == [[], ["openmp", "tiling"], ["tiling"]]
    assert overall.techniques == {"openmp": 2, "tiling": 3}
    assert overall.distinct_programs == 5
