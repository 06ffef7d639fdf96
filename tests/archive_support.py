"""Helpers shared by the archive tests: results built like a bencher builds them, and sources whose
techniques are known."""

from __future__ import annotations

import itertools
from typing import Any

from bus.schema import Result, Stamper, Verdict

stamper = Stamper("test-bencher")
_ids = itertools.count()

NAIVE = """
void dgemm(int n, const double *A, const double *B, double *C) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += A[i*n+k] * B[k*n+j];
            C[i*n+j] = s;
        }
}
"""
"""No technique."""
IKJ = """
void dgemm(int n, const double *A, const double *B, double *C) {
    for (int i = 0; i < n * n; i++) C[i] = 0.0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double a = A[i*n+k];
            for (int j = 0; j < n; j++) C[i*n+j] += a * B[k*n+j];
        }
}
"""
"""loop_order."""
OPENMP_IKJ = IKJ.replace(
    "    for (int i = 0; i < n; i++)\n        for (int k",
    "    #pragma omp parallel for\n    for (int i = 0; i < n; i++)\n        for (int k",
)
"""loop_order + openmp."""


def result(
    source: str = NAIVE,
    verdict: Verdict = Verdict.OK,
    gflops: float = 1.0,
    problem: str = "dgemm",
    size: int = 512,
    stage: int = 1,
    run: str = "test-run",
    candidate_id: str | None = None,
    **extra: Any,
) -> Result:
    """A result as a bencher would send it (each call a new candidate unless candidate_id is given)."""
    ok = verdict is Verdict.OK
    return stamper.make(
        Result,
        candidate_id=candidate_id or f"cand-{next(_ids)}",
        run=run,
        problem=problem,
        size=size,
        stage=stage,
        source=source,
        verdict=verdict,
        gflops_median=gflops if ok else 0.0,
        gflops_min=gflops * 0.98 if ok else 0.0,
        gflops_max=gflops * 1.01 if ok else 0.0,
        repetitions=3 if ok else 0,
        bencher_id="b1",
        host="node1",
        **extra,
    )
