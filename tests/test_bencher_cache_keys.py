"""Cache keys name what is really built (issue 11): two programs share a build or a result only when gcc
reads the same bytes. The old key, a normal form with comments and spacing removed, let a program that
writes zeros be served its honest twin's `ok`, or poison the twin with its `wrong_answer`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bencher.node import Node
from bencher.pipeline import Pipeline
from bus.problems import get_problem
from bus.schema import Verdict
from tests.bencher_support import LADDER, fast_config

pytestmark = pytest.mark.timeout(300)
SIZE = 128
HONEST_BODY = """
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
"""
ZEROS_BODY = """
void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)A; (void)B;
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0;
}
"""
# gcc joins `*\` and `/` into `*/`, closing the comment on its first line; the old normaliser did not,
# so for it everything up to the last `*/` was one comment, and any two kernels were the same source.
SPLICED_COMMENT = ("/* a kernel *\\\n/\n", "/* */\n")
# A raw string holding `"` and `/*`: the old normaliser took `/*` for the start of a comment.
RAW_STRING = ('static const char *tag = R"x(" /* )x";\n', "/* */\n")


def twin(body: str, frame: tuple[str, str]) -> str:
    return frame[0] + body + frame[1]


@pytest.fixture
def pipeline(tmp_path: Path, node: Node) -> Iterator[Pipeline]:
    pipeline = Pipeline(fast_config(tmp_path, result_cache=True), node=node)
    yield pipeline
    pipeline.close()


def test_the_build_key_is_the_exact_bytes(pipeline: Pipeline) -> None:
    problem, source = get_problem("dgemm"), (LADDER / "naive_ijk.c").read_text()
    key = pipeline.builder.build_key
    assert key(problem, source) == key(problem, str(source))
    for changed in (source + " ", "/* same */" + source, source.replace("    ", "\t"), source.replace("\n", "\r\n")):
        assert key(problem, changed) != key(problem, source)
    for frame in (SPLICED_COMMENT, RAW_STRING):
        assert key(problem, twin(HONEST_BODY, frame)) != key(problem, twin(ZEROS_BODY, frame))


@pytest.mark.parametrize("frame", [SPLICED_COMMENT, RAW_STRING], ids=["spliced_comment", "raw_string"])
def test_a_twin_that_writes_zeros_is_not_served_the_honest_verdict(pipeline: Pipeline, frame: tuple[str, str]) -> None:
    pipeline.evaluate("dgemm", SIZE, twin(HONEST_BODY, frame))
    zeros = pipeline.evaluate("dgemm", SIZE, twin(ZEROS_BODY, frame))
    assert zeros.verdict is not Verdict.OK and not zeros.cached, zeros
    # Without the result cache (bench-file --no-cache) the build cache must not serve it either.
    rebuilt = pipeline.evaluate("dgemm", SIZE, twin(ZEROS_BODY, frame), use_cache=False)
    assert rebuilt.verdict is not Verdict.OK and not rebuilt.cached, rebuilt


def test_a_twin_that_writes_zeros_does_not_poison_the_honest_one(pipeline: Pipeline) -> None:
    zeros = pipeline.evaluate("dgemm", SIZE, twin(ZEROS_BODY, SPLICED_COMMENT))
    honest = pipeline.evaluate("dgemm", SIZE, twin(HONEST_BODY, SPLICED_COMMENT))
    assert zeros.verdict is Verdict.WRONG_ANSWER, zeros.detail
    assert honest.verdict is Verdict.OK and not honest.cached, honest.detail


def test_the_same_bytes_are_answered_from_the_result_cache(pipeline: Pipeline) -> None:
    source = twin(HONEST_BODY, SPLICED_COMMENT)
    first, second = (pipeline.evaluate("dgemm", SIZE, source) for _ in range(2))
    assert first.verdict is Verdict.OK and not first.cached
    assert second.cached and second.gflops_median == first.gflops_median


def test_text_that_is_not_unicode_gets_a_verdict_not_an_exception(pipeline: Pipeline) -> None:
    evaluation = pipeline.evaluate("dgemm", SIZE, HONEST_BODY + "/* \ud800 */")  # a lone surrogate (JSON allows it)
    assert evaluation.verdict is Verdict.REJECTED and "Unicode" in evaluation.detail


def test_the_build_key_names_the_target_so_node_kinds_sharing_a_cache_never_swap_binaries(tmp_path: Path) -> None:
    """`-march=native` means another ISA on another node: a binary built on an AVX-512 node and served from a
    shared cache_dir to an AVX2 node would crash, and the crash would be charged to the candidate."""
    from bencher.build import Builder, target_identity
    from bencher.sandbox import Sandbox

    source = (LADDER / "naive_ijk.c").read_text()
    keys = {}
    for march in ("native", "x86-64-v3", "x86-64"):
        config = fast_config(tmp_path, march=march)
        problem = get_problem("dgemm").built_for(march)
        keys[march] = Builder(config, Sandbox()).build_key(problem, source)
    assert len(set(keys.values())) == 3
    assert target_identity("gcc", "native") != target_identity("gcc", "x86-64"), "native resolves to this CPU"
    assert target_identity("gcc", "native") == target_identity("gcc", "native")


def test_a_pinned_march_builds_the_harness_and_the_candidate_for_that_isa(tmp_path: Path) -> None:
    pipeline = Pipeline(fast_config(tmp_path, march="x86-64", peak_gflops=100.0))
    try:
        evaluation = pipeline.evaluate("dgemm", SIZE, (LADDER / "naive_ijk.c").read_text())
        flags = pipeline.builder.harness_flags
    finally:
        pipeline.close()
    assert evaluation.verdict is Verdict.OK, evaluation.detail
    assert "-march=x86-64" in flags
