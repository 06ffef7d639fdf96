"""Every shipped problem, end to end through the real pipeline (sandbox, monitor, harness): its naive
reference and vendor baseline are correct, and its verification catches a wrong, a partial (a skipped tail)
and an input-mutating solution. The cases live in tests/problem_cases/<problem>/, one C file each, whose
header says `expect: <verdict>` (and optionally `detail: <substring>`); they run at the problem's smallest
size that is not a multiple of 4, where a loop without its remainder leaves elements unwritten."""

from __future__ import annotations

import platform
import re
from contextlib import closing
from pathlib import Path

import pytest

from bencher.calibration import library_pipeline
from bencher.node import Node
from bencher.pipeline import Pipeline
from bus.problems import Problem, load_registry
from bus.schema import Verdict
from tests.bencher_support import expectations, fast_config, sandbox_processes
from tests.conftest import tool_missing

CASES = Path(__file__).parent / "problem_cases"
PROBLEMS = load_registry().problems
REQUIRED_KINDS = ("wrong", "partial", "mutates")
"""Every problem has at least one case of each kind (the file name's first word)."""


def tail_size(problem: Problem) -> int:
    """The smallest size that a loop unrolled by 4, 8 or 16 without a remainder loop gets wrong."""
    return min(n for n in problem.sizes if n % 4)


def cases() -> list[tuple[str, Path]]:
    return [(problem, path) for problem in sorted(PROBLEMS) for path in sorted((CASES / problem).glob("*.c"))]


def test_every_problem_has_a_tail_size_and_each_kind_of_broken_case() -> None:
    assert len(PROBLEMS) >= 2
    for name, problem in PROBLEMS.items():
        assert any(n % 4 for n in problem.sizes), f"{name}: every size is a multiple of 4: no tail is ever checked"
        kinds = {path.name.split("_")[0] for path in (CASES / name).glob("*.c")}
        assert set(REQUIRED_KINDS) <= kinds, f"{name}: tests/problem_cases/{name}/ lacks {set(REQUIRED_KINDS) - kinds}"


def case_size(problem: Problem, path: Path) -> int:
    """The size a case runs at: the tail size, or the problem's default where its header says `size: default`
    (an attack that only a large size exposes)."""
    header = path.read_text().split("*/", 1)[0]
    return problem.default_size if re.search(r"size:\s*default", header) else tail_size(problem)


@pytest.mark.parametrize(("problem", "path"), cases(), ids=lambda value: getattr(value, "stem", value))
def test_a_case_gets_its_verdict(pipeline: Pipeline, problem: str, path: Path) -> None:
    verdicts, detail = expectations(path)
    evaluation = pipeline.evaluate(problem, case_size(PROBLEMS[problem], path), path.read_text(), use_cache=False)
    assert evaluation.verdict.value in verdicts, f"{path.name}: {evaluation.verdict} {evaluation.detail}"
    assert detail in evaluation.detail
    assert sandbox_processes() == []


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_the_naive_reference_is_correct_and_rated_in_the_problems_metric(pipeline: Pipeline, problem: str) -> None:
    spec = PROBLEMS[problem]
    evaluation = pipeline.evaluate(problem, tail_size(spec), spec.naive.read_text(), use_cache=False)
    assert evaluation.verdict is Verdict.OK, evaluation.detail
    assert evaluation.metric == spec.metric and evaluation.rate_median > 0
    assert (evaluation.gflops_median > 0) == bool(spec.flops)


@pytest.mark.parametrize("problem", sorted(p for p in PROBLEMS if PROBLEMS[p].vendor is not None))
def test_the_vendor_baseline_is_correct(pipeline: Pipeline, problem: str) -> None:
    spec = PROBLEMS[problem]
    assert spec.vendor is not None
    with closing(library_pipeline(pipeline)) as library:
        evaluation = library.evaluate(
            problem, tail_size(spec), spec.vendor.read_text(), use_cache=False, trusted_libraries=spec.vendor_libraries
        )
    if evaluation.verdict is Verdict.COMPILE_ERROR and "No such file" in evaluation.detail:
        tool_missing(f"{spec.vendor.name} needs its library's headers ({', '.join(spec.vendor_libraries)})")
    assert evaluation.verdict is Verdict.OK, evaluation.detail


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 ISA levels")
@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])
def test_every_harness_builds_and_verifies_for_older_isas(tmp_path: Path, node: Node, march: str) -> None:
    """The harnesses are trusted C built with bencher.march: AVX2 without AVX-512, and plain SSE2, must
    build and accept each naive reference (the machine may have AVX-512; these must not depend on it)."""
    with closing(Pipeline(fast_config(tmp_path, march=march), node=node)) as pipeline:
        for name, problem in PROBLEMS.items():
            evaluation = pipeline.evaluate(name, tail_size(problem), problem.naive.read_text(), use_cache=False)
            assert evaluation.verdict is Verdict.OK, f"{name} at -march={march}: {evaluation.detail}"
