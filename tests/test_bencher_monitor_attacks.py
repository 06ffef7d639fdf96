"""The benchmark monitor against a candidate that attacks it, not the problem: code that runs at load
time, predicted check vectors, forged records. Every attack gets a verdict charged to the candidate,
never `ok` and never `infra_error`.

Attacks that the source policy would refuse (an ifunc resolver, a constructor) are built here through
the trusted path (`trusted_libraries`), which skips the policy: the monitor must hold even when a
filter misses one spelling.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import pytest

from bencher.evaluation import Evaluation
from bencher.measure import judge, run_limits
from bencher.node import Node
from bencher.pipeline import Pipeline
from bencher.sandbox import SandboxRun
from bus.problems import get_problem
from bus.schema import Verdict
from tests.bencher_support import CORPUS, fast_config, sandbox_processes

pytestmark = pytest.mark.timeout(300)
ATTACKS = Path(__file__).parent / "bencher_attacks"
NAIVE = (CORPUS / "ok_naive.c").read_text()
UNCHARGED = (Verdict.OK, Verdict.INFRA_ERROR)


def unfiltered(pipeline: Pipeline, source: str, n: int = 128) -> Evaluation:
    """Build without the policy (as if every filter missed the attack) and measure."""
    evaluation = pipeline.evaluate("dgemm", n, source, use_cache=False, trusted_libraries=("-lm",))
    assert sandbox_processes() == []
    return evaluation


# ------------------------------------------------------------------ code that runs at load time

FORGES_RECORDS_FROM_IFUNC_RESOLVER = r"""
#include <stdlib.h>
#include <unistd.h>
static void does_nothing(int n, const double *A, const double *B, double *C) { (void)n; (void)A; (void)B; (void)C; }
static void *resolve(void) {
    static const char forged[] = "rep 0 warm 1.0e-03 0 1 0\nrep 1 timed 1.0e-03 0 1 0\n"
                                 "rep 2 timed 1.0e-03 0 1 0\ndone 2\n";
    const char *fd = getenv("HPCRL_CHANNEL_FD");
    for (int guess = 3; guess < 64; guess++)  /* the variable may be gone: try every descriptor */
        if (write(fd ? atoi(fd) : guess, forged, sizeof forged - 1) > 0 && fd) break;
    _exit(0);
}
void dgemm(int n, const double *A, const double *B, double *C) __attribute__((ifunc("resolve")));
"""


def test_an_ifunc_resolver_cannot_forge_the_timing_records(pipeline: Pipeline) -> None:
    evaluation = unfiltered(pipeline, FORGES_RECORDS_FROM_IFUNC_RESOLVER)
    assert evaluation.verdict not in UNCHARGED, evaluation.detail
    assert evaluation.gflops_median == 0.0


FORGES_RECORDS_FROM_CONSTRUCTOR = r"""
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void forge(void) {
    static const char forged[] = "rep 0 warm 1.0e-03 0 1 0\nrep 1 timed 1.0e-03 0 1 0\n"
                                 "rep 2 timed 1.0e-03 0 1 0\ndone 2\n";
    for (int fd = 3; fd < 64; fd++) (void)!write(fd, forged, sizeof forged - 1);
}
void dgemm(int n, const double *A, const double *B, double *C) { (void)n; (void)A; (void)B; (void)C; }
"""


def test_a_constructor_writing_records_on_every_descriptor_is_not_believed(pipeline: Pipeline) -> None:
    evaluation = unfiltered(pipeline, FORGES_RECORDS_FROM_CONSTRUCTOR)
    assert evaluation.verdict is Verdict.WRONG_ANSWER, evaluation.detail


LOOSENS_TOLERANCE_IN_ARGV = r"""
#include <string.h>
static char loose[] = "tolerance=1e300";
__attribute__((constructor)) static void loosen(int argc, char **argv, char **envp) {
    (void)envp;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "tolerance=", 10) == 0) argv[i] = loose;
}
void dgemm(int n, const double *A, const double *B, double *C) {
    for (int i = 0; i < n; i++)  /* the product's time, so that no peak check stands in for the monitor */
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++) sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
}
"""


def test_code_run_at_load_cannot_rewrite_the_monitors_arguments(pipeline: Pipeline) -> None:
    """C = 0 passes only if the monitor's tolerance became 1e300."""
    evaluation = unfiltered(pipeline, LOOSENS_TOLERANCE_IN_ARGV)
    assert evaluation.verdict is Verdict.WRONG_ANSWER, evaluation.detail


SHRINKS_N_IN_ARGV = (
    r"""
static char small[] = "n=16";
__attribute__((constructor)) static void shrink(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == 'n' && argv[i][1] == '=') argv[i] = small;
}
"""
    + NAIVE
)


def test_code_run_at_load_cannot_shrink_the_problem_it_is_paid_for(pipeline: Pipeline) -> None:
    """A verified 16 x 16 product must not be timed as the 128 x 128 one it claims: the rewrite has no
    effect, and the honest 128 x 128 product is measured."""
    evaluation = unfiltered(pipeline, SHRINKS_N_IN_ARGV)
    assert evaluation.verdict is Verdict.OK, evaluation.detail


RAISES_OPENMP_LIMITS_FROM_IFUNC_RESOLVER = r"""
#include <omp.h>
#include <stdlib.h>
#include <string.h>
static int allocated = -1;
static void multiply(int n, const double *A, const double *B, double *C) {
    if (omp_get_thread_limit() > allocated || omp_get_max_threads() > allocated) {
        memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);  /* the attack worked: say so */
        return;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++) sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
}
static void *resolve(void) {
    const char *limit = getenv("OMP_THREAD_LIMIT");
    allocated = limit ? atoi(limit) : 1;
    setenv("OMP_THREAD_LIMIT", "4096", 1);
    setenv("OMP_NUM_THREADS", "4096", 1);
    return (void *)multiply;
}
void dgemm(int n, const double *A, const double *B, double *C) __attribute__((ifunc("resolve")));
"""


def test_code_run_at_load_cannot_raise_openmp_threads_beyond_the_allocation(pipeline: Pipeline) -> None:
    """The candidate answers correctly only while OpenMP still holds the allocation's limits."""
    evaluation = unfiltered(pipeline, RAISES_OPENMP_LIMITS_FROM_IFUNC_RESOLVER)
    assert evaluation.verdict is Verdict.OK, evaluation.detail


KILLS_ITS_MONITOR = r"""
#include <signal.h>
#include <unistd.h>
void dgemm(int n, const double *A, const double *B, double *C) {
    (void)n; (void)A; (void)B; (void)C;
    kill(getppid(), SIGKILL);
    kill(0, SIGKILL);
}
"""


def test_a_candidate_that_kills_its_monitor_is_charged(pipeline: Pipeline) -> None:
    evaluation = unfiltered(pipeline, KILLS_ITS_MONITOR)
    assert evaluation.verdict not in UNCHARGED, evaluation.detail


# ------------------------------------------------------------------ predictable checks


def test_freivalds_vectors_cannot_be_predicted_from_the_inputs(pipeline: Pipeline) -> None:
    """The attack solves for the generator state behind the inputs' fill and answers a rank-2 C that
    satisfies exactly the two check vectors it predicts; it computes no product."""
    source = (ATTACKS / "freivalds_predicts_check_vectors.c").read_text()
    evaluation = unfiltered(pipeline, source, n=256)
    assert evaluation.verdict is Verdict.WRONG_ANSWER, evaluation.detail


PRECOMPUTES_THE_NEXT_CALL = r"""
#include <stdlib.h>
#include <string.h>
/* Remembers every call's A and B; a call whose inputs equal a stored pair's answers from the store.
   Guards against a monitor that replays or derives a later call's inputs from an earlier one. */
static double *seen_a[64], *seen_b[64];
static int seen;
void dgemm(int n, const double *A, const double *B, double *C) {
    size_t bytes = sizeof(double) * (size_t)n * (size_t)n;
    for (int s = 0; s < seen; s++)
        if (memcmp(seen_a[s], A, bytes) == 0 || memcmp(seen_b[s], B, bytes) == 0 ||
            memcmp(seen_a[s], B, bytes) == 0 || memcmp(seen_b[s], A, bytes) == 0) {
            memset(C, 0, bytes);  /* inputs seen before: a replay */
            return;
        }
    if (seen < 64) {
        seen_a[seen] = malloc(bytes), seen_b[seen] = malloc(bytes);
        memcpy(seen_a[seen], A, bytes), memcpy(seen_b[seen], B, bytes);
        seen++;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++) sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
}
"""


def test_no_call_repeats_an_earlier_calls_inputs(pipeline: Pipeline) -> None:
    evaluation = unfiltered(pipeline, PRECOMPUTES_THE_NEXT_CALL)
    assert evaluation.verdict is Verdict.OK, evaluation.detail


# ------------------------------------------------------------------ forged or malformed records


def run_with(channel: str, exit_code: int | None = 0, signal: int | None = None) -> SandboxRun:
    return SandboxRun(
        exit_code=exit_code,
        signal=signal,
        timed_out=False,
        cancelled=False,
        wall_s=1.0,
        stdout=b"",
        stderr=b"",
        channel=channel.encode(),
        cpu_s=0.1,
    )


GOOD = "rep 0 warm 1.0e-03 0 1 0\nrep 1 timed 1.0e-03 0 1 0\nrep 2 timed 1.0e-03 0 1 0\ndone 2\n"
MALFORMED = {
    "not a number": GOOD.replace("rep 1 timed 1.0e-03", "rep 1 timed fast"),
    "NaN seconds": GOOD.replace("rep 1 timed 1.0e-03", "rep 1 timed nan"),
    "infinite seconds": GOOD.replace("rep 1 timed 1.0e-03", "rep 1 timed inf"),
    "negative seconds": GOOD.replace("rep 1 timed 1.0e-03", "rep 1 timed -1.0e-03"),
    "zero seconds": GOOD.replace("rep 1 timed 1.0e-03", "rep 1 timed 0"),
    "negative outside CPU": GOOD.replace("rep 2 timed 1.0e-03 0 1 0", "rep 2 timed 1.0e-03 0 1 -5"),
    "error above its bound": GOOD.replace("rep 2 timed 1.0e-03 0 1 0", "rep 2 timed 1.0e-03 2 1 0"),
    "NaN error": GOOD.replace("rep 2 timed 1.0e-03 0 1 0", "rep 2 timed 1.0e-03 nan 1 0"),
    "duplicated repetition": GOOD.replace("rep 2 timed", "rep 1 timed"),
    "repetition out of order": GOOD.replace("rep 0 warm", "rep 1 warm", 1).replace("rep 1 timed", "rep 0 timed"),
    "missing warm-up": "rep 0 timed 1.0e-03 0 1 0\nrep 1 timed 1.0e-03 0 1 0\ndone 2\n",
    "unknown kind of call": GOOD.replace("rep 1 timed", "rep 1 cold"),
    "too few fields": GOOD.replace("rep 1 timed 1.0e-03 0 1 0", "rep 1 timed 1.0e-03 0 1"),
    "too many fields": GOOD.replace("rep 1 timed 1.0e-03 0 1 0", "rep 1 timed 1.0e-03 0 1 0 0"),
    "huge index": GOOD.replace("rep 1 timed", "rep 99999999999999999999999 timed"),
    "done count differs": GOOD.replace("done 2", "done 3"),
    "done twice": GOOD + "done 2\n",
    "record after done": GOOD + "rep 3 timed 1.0e-03 0 1 0\n",
    "no done": GOOD.replace("done 2\n", ""),
    "too few timed calls": "rep 0 warm 1.0e-03 0 1 0\nrep 1 timed 1.0e-03 0 1 0\ndone 1\n",
    "unknown record": GOOD.replace("done 2", "hello 2"),
    "empty line": GOOD.replace("\ndone", "\n\ndone"),
    "binary junk": GOOD.replace("done 2", "\x00\xff\x7f"),
    "fail ok": "rep 0 warm 1.0e-03 0 1 0\nfail ok faster than light\n",
    "fail with an unknown verdict": "fail splendid\n",
    "fail infra_error from a monitor that exited 0": "fail infra_error it was not me\n",
    "fail without a verdict": "fail\n",
    "two fails": "fail crash one\nfail timeout two\n",
    "record after fail": "fail crash one\ndone 0\n",
    "empty channel": "",
    "half a line": GOOD.rstrip("\n") + " 1",
}


@pytest.mark.parametrize("channel", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_record_is_charged_to_the_candidate_and_never_raises(
    channel: str, node: Node, tmp_path: Path
) -> None:
    config = fast_config(tmp_path, warmup_reps=1, min_reps=2, max_reps=10)
    measurement = judge(run_with(channel), 1e6, config, node)
    assert measurement.verdict not in UNCHARGED, measurement.detail
    assert measurement.detail


def test_no_mutation_of_a_channel_makes_judge_raise_or_blame_the_bencher(node: Node, tmp_path: Path) -> None:
    config = fast_config(tmp_path, warmup_reps=1, min_reps=2, max_reps=10)
    rng = random.Random(11)
    alphabet = b"rep warm timed done fail ok infra_error 0123456789.e+-nainf \n\x00\xff"
    for _ in range(2000):
        channel = bytearray(GOOD.encode())
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(channel) + 1)
            action = rng.choice(("insert", "delete", "replace"))
            if action == "insert":
                channel[at:at] = bytes(rng.choices(alphabet, k=rng.randint(1, 8)))
            elif action == "delete":
                del channel[at : at + rng.randint(1, 8)]
            else:
                channel[at : at + 1] = bytes([rng.choice(alphabet)])
        run = run_with("")
        measurement = judge(replace(run, channel=bytes(channel)), 1e6, config, node)
        assert measurement.verdict is not Verdict.INFRA_ERROR, bytes(channel)
        if measurement.verdict is Verdict.OK:
            assert all(s > 0 and math.isfinite(s) for s in measurement.seconds), bytes(channel)
            assert 2 <= len(measurement.seconds) <= 10, bytes(channel)


def test_every_record_of_max_reps_calls_fits_the_channels_capture(tmp_path: Path) -> None:
    config = fast_config(tmp_path, warmup_reps=100, max_reps=10_000)
    longest = "rep 10099 timed 1.234567890e+00 1.234e-300 1.234e+300 1.234567e+300\n"
    capture = run_limits(get_problem("dgemm"), 512, config, 1).output_bytes
    assert capture >= len(longest) * (config.warmup_reps + config.max_reps) + len("done 10000\n")


def test_well_formed_records_are_accepted(node: Node, tmp_path: Path) -> None:
    config = fast_config(tmp_path, warmup_reps=1, min_reps=2, max_reps=10)
    measurement = judge(run_with(GOOD), 1e6, config, node)
    assert measurement.verdict is Verdict.OK, measurement.detail
    assert measurement.seconds == (1e-3, 1e-3) and math.isclose(measurement.calls_s, 3e-3)


def test_the_monitors_own_failure_stays_infra_error(node: Node, tmp_path: Path) -> None:
    config = fast_config(tmp_path)
    assert (
        judge(run_with("fail infra_error pipe failed\n", exit_code=2), 1e6, config, node).verdict is Verdict.INFRA_ERROR
    )
    assert judge(run_with("", exit_code=2), 1e6, config, node).verdict is Verdict.INFRA_ERROR


def test_a_monitor_killed_by_a_signal_is_charged(node: Node, tmp_path: Path) -> None:
    """Only the candidate's process shares the sandbox (and the uid) with the monitor."""
    measurement = judge(
        run_with("rep 0 warm 1.0e-03 0 1 0\n", exit_code=None, signal=9), 1e6, fast_config(tmp_path), node
    )
    assert measurement.verdict not in UNCHARGED, measurement.detail


def test_the_monitors_own_verdicts_pass_through(node: Node, tmp_path: Path) -> None:
    config = fast_config(tmp_path)
    wrong = "rep 0 warm 1.0e-03 nan 1.0e-10 0\nfail wrong_answer repetition 0: max error nan\n"
    assert judge(run_with(wrong), 1e6, config, node).verdict is Verdict.WRONG_ANSWER
    assert judge(run_with("fail timeout a call took longer than 1 s\n"), 1e6, config, node).verdict is Verdict.TIMEOUT


def test_each_calls_error_is_held_to_its_own_bound(node: Node, tmp_path: Path) -> None:
    """Bounds that depend on the inputs differ by call: a small error under a large bound, then a smaller
    error under a smaller bound, is two correct calls (the reader once held the running maximum error to
    the latest bound, and charged this as a malformed channel)."""
    config = fast_config(tmp_path, warmup_reps=1, min_reps=2, max_reps=10)
    varying = "rep 0 warm 1.0e-03 1.0e-10 1.0e-09 0\nrep 1 timed 1.0e-03 1.0e-12 1.0e-11 0\n"
    varying += "rep 2 timed 1.0e-03 1.0e-13 1.0e-12 0\ndone 2\n"
    assert judge(run_with(varying), 1e6, config, node).verdict is Verdict.OK


def test_a_single_precision_problem_is_held_to_twice_the_double_precision_peak(node: Node, tmp_path: Path) -> None:
    config = fast_config(tmp_path, warmup_reps=1, min_reps=2, max_reps=10)
    cap = node.peak_gflops * config.peak_margin * 1e9 * 1e-3  # flops a 1 ms call may do at the peak
    between = judge(run_with(GOOD), 1.5 * cap, config, node, peak_scale=2.0)
    assert between.verdict is Verdict.OK, between.detail
    assert judge(run_with(GOOD), 1.5 * cap, config, node).over_peak  # as double precision: impossible
    assert judge(run_with(GOOD), 2.5 * cap, config, node, peak_scale=2.0).over_peak


EXITS_WITH_THE_UNCONFINED_STATUS_AT_LOAD = r"""
#include <unistd.h>
__attribute__((constructor)) static void bail(void) { _exit(5); }
void dgemm(int n, const double *A, const double *B, double *C) { (void)n; (void)A; (void)B; (void)C; }
"""


def test_load_time_code_cannot_forge_the_monitors_own_failure_for_a_free_retry(pipeline: Pipeline) -> None:
    """Found by a red-team review: exit status 5 while loading meant "the second seccomp filter failed, our
    fault", but the candidate's constructors run inside that load and exited with it: an uncharged infra_error
    on demand. A kernel that took the first filter takes the second; only load-time code can make it fail."""
    evaluation = unfiltered(pipeline, EXITS_WITH_THE_UNCONFINED_STATUS_AT_LOAD)
    assert evaluation.verdict is Verdict.CRASH, evaluation.detail
