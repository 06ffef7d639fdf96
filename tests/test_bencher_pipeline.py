"""The pipeline against an adversary: every corpus candidate gets its expected verdict, nothing leaks,
and honest candidates are measured in the order their optimisations promise."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bencher.node import Node
from bencher.pipeline import Pipeline
from bus.schema import Verdict
from tests.bencher_support import CORPUS, LADDER, expectations, fast_config, sandbox_processes, temp_dirs

CORPUS_SIZE = 128
CORPUS_FILES = sorted(CORPUS.glob("*.c"))


def test_the_corpus_is_large_enough_and_every_file_states_its_verdict() -> None:
    assert len(CORPUS_FILES) >= 30
    named = {verdict for path in CORPUS_FILES for verdict in expectations(path)[0]}
    assert named <= {v.value for v in Verdict} and Verdict.INFRA_ERROR.value not in named
    assert {"ok", "compile_error", "rejected", "wrong_answer", "timeout", "crash"} <= named


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.stem for p in CORPUS_FILES])
def test_corpus_candidate_gets_its_verdict_and_leaves_nothing_behind(pipeline: Pipeline, path: Path) -> None:
    verdicts, detail = expectations(path)
    dirs_before = temp_dirs()
    evaluation = pipeline.evaluate("dgemm", CORPUS_SIZE, path.read_text())
    assert evaluation.verdict.value in verdicts, f"{path.name}: {evaluation.verdict} ({evaluation.detail})"
    assert detail.lower() in evaluation.detail.lower()
    if evaluation.verdict is Verdict.OK:
        assert 0 < evaluation.gflops_min <= evaluation.gflops_median <= evaluation.gflops_max
        assert evaluation.repetitions >= 2
    else:
        assert evaluation.gflops_median == 0.0
    assert sandbox_processes() == []
    assert temp_dirs() - dirs_before == set()


WRONG_FILES = sorted(CORPUS.glob("wrong_*.c"))


@pytest.mark.parametrize("path", WRONG_FILES, ids=[p.stem for p in WRONG_FILES])
def test_wrong_answers_are_caught_by_freivalds_check_too(pipeline: Pipeline, path: Path) -> None:
    """Above full_check_max_n only Freivalds' probabilistic check stands between a wrong answer and a reward."""
    verdicts, _ = expectations(path)
    evaluation = pipeline.evaluate("dgemm", 256, path.read_text())
    assert evaluation.verdict.value in verdicts, f"{path.name}: {evaluation.verdict} ({evaluation.detail})"


def test_a_duplicate_is_answered_from_the_result_cache(tmp_path: Path, node: Node) -> None:
    pipeline = Pipeline(fast_config(tmp_path, result_cache=True), node=node)
    source = (CORPUS / "ok_naive.c").read_text()
    first = pipeline.evaluate("dgemm", 128, source)
    # The same bytes (keys are never a normal form: tests/test_bencher_cache_keys.py).
    second = pipeline.evaluate("dgemm", 128, source)
    pipeline.close()
    assert first.verdict is Verdict.OK and not first.cached
    assert second.cached and second.verdict is Verdict.OK and second.gflops_median == first.gflops_median
    reopened = Pipeline(fast_config(tmp_path, result_cache=True), node=node)
    assert reopened.evaluate("dgemm", 128, source).cached, "the result cache survives a restart"
    assert not reopened.evaluate("dgemm", 256, source).cached, "another size is another measurement"
    reopened.close()


def test_unknown_problems_and_sizes_are_rejected_not_raised(pipeline: Pipeline) -> None:
    source = (CORPUS / "ok_naive.c").read_text()
    assert pipeline.evaluate("sgemm", 128, source).verdict is Verdict.REJECTED
    assert "choose one of" in pipeline.evaluate("dgemm", 100, source).detail


def test_the_second_problem_has_its_own_harness(pipeline: Pipeline) -> None:
    good = """
void jacobi2d(int n, const double *in, double *out) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            out[i*n+j] = (i == 0 || j == 0 || i == n-1 || j == n-1) ? in[i*n+j]
                : 0.25 * (in[(i-1)*n+j] + in[(i+1)*n+j] + in[i*n+j-1] + in[i*n+j+1]);
}"""
    ok = pipeline.evaluate("jacobi2d", 256, good)
    assert ok.verdict is Verdict.OK and ok.gflops_median > 0, ok.detail
    skips_boundary = good.replace("? in[i*n+j]", "? 0.0")
    assert pipeline.evaluate("jacobi2d", 256, skips_boundary).verdict is Verdict.WRONG_ANSWER
    assert pipeline.evaluate("jacobi2d", 256, good.replace("jacobi2d", "dgemm")).verdict is Verdict.REJECTED


def test_freivalds_check_catches_wrong_answers_at_large_sizes(pipeline: Pipeline) -> None:
    wrong = (CORPUS / "ok_naive.c").read_text().replace("void dgemm", "static void dgemm_right")
    wrong += """
void dgemm(int n, const double *A, const double *B, double *C) {
    dgemm_right(n, A, B, C);
    C[(n / 2) * n + n / 3] += 1e-6;
}"""
    evaluation = pipeline.evaluate("dgemm", 512, wrong)
    assert evaluation.verdict is Verdict.WRONG_ANSWER, evaluation.detail


def ladder_rank(path: Path) -> int:
    return int(path.read_text().split("rank:", 1)[1].split()[0].rstrip("*/"))


def test_the_ladder_of_correct_implementations_is_measured_in_the_expected_order(tmp_path: Path, node: Node) -> None:
    """Each rung beats the rung two below it (adjacent rungs can be close). Best of interleaved
    rounds: a background process can take a core for a while on this kind of machine, and
    interference only ever slows a run down."""
    pipeline = Pipeline(fast_config(tmp_path, max_measure_s=0.3, min_reps=3), node=node)
    rungs = sorted(LADDER.glob("*.c"), key=ladder_rank)
    speeds: dict[str, list[float]] = {p.stem: [] for p in rungs}
    for _ in range(3):
        for path in rungs:
            evaluation = pipeline.evaluate("dgemm", 512, path.read_text())
            assert evaluation.verdict is Verdict.OK, f"{path.name}: {evaluation.detail}"
            speeds[path.stem].append(evaluation.gflops_median)
    pipeline.close()
    best = {name: max(values) for name, values in speeds.items()}
    by_rank: dict[int, list[float]] = {}
    for path in rungs:
        by_rank.setdefault(ladder_rank(path), []).append(best[path.stem])
    ranks = sorted(by_rank)
    for lower, higher in zip(ranks, ranks[2:], strict=False):
        assert min(by_rank[higher]) > max(by_rank[lower]), best
    assert max(by_rank[ranks[-1]]) > 10 * max(by_rank[ranks[0]]), best


@pytest.mark.skipif(shutil.which("clang") is not None, reason="needs a machine without clang")
def test_a_missing_compiler_is_our_fault_and_the_detail_names_the_fix(tmp_path: Path, node: Node) -> None:
    pipeline = Pipeline(fast_config(tmp_path, compiler="clang"), node=node)
    evaluation = pipeline.evaluate("dgemm", 128, (CORPUS / "ok_naive.c").read_text())
    pipeline.close()
    assert evaluation.verdict is Verdict.INFRA_ERROR and "clang" in evaluation.detail


def test_a_build_writes_through_a_temporary_name_of_its_own(tmp_path: Path, node: Node) -> None:
    """SLURM tasks on one node share bencher.cache_dir and may build one key at the same moment: a build
    must not write through a name another bencher is writing through (here: one stuck half-way)."""
    from bus.problems import get_problem

    builder = Pipeline(fast_config(tmp_path), node=node).builder
    problem, source = get_problem("dgemm"), (LADDER / "naive_ijk.c").read_text()
    entry_dir = builder.cache_dir / builder.build_key(problem, source, ())
    for other_writer in (entry_dir / "bench.tmp", entry_dir / "candidate.so.tmp", entry_dir / "outcome.json.tmp"):
        other_writer.mkdir(parents=True)  # a name a second writer could hold open: not ours to use
    build = builder.build(problem, source)
    assert build.verdict is Verdict.OK, build.detail
    assert build.binary is not None and build.binary.is_file()
    assert sorted(p.name for p in entry_dir.iterdir()) == [
        "bench",
        "bench.tmp",
        "candidate.so",
        "candidate.so.tmp",
        "outcome.json",
        "outcome.json.tmp",
    ]
