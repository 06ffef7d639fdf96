"""Prometheus metrics of the bencher, declared once with bounded labels (verdicts and cache kinds)."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from bus.schema import Verdict

if TYPE_CHECKING:
    from bencher.pipeline import Evaluation

BUSY_WINDOW_S = 60.0
"""The busy ratio is the share of the last minute spent evaluating candidates."""

CANDIDATES = Counter("hpcrl_bencher_candidates_total", "Candidates evaluated, by verdict.", ["verdict"])
for _verdict in Verdict:
    CANDIDATES.labels(_verdict.value)
COMPILE_SECONDS = Histogram(
    "hpcrl_bencher_compile_seconds",
    "Seconds to check, compile and link a candidate in the sandbox (cache misses only).",
    buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
)
RUN_SECONDS = Histogram(
    "hpcrl_bencher_run_seconds",
    "Seconds of one sandboxed benchmark run (warm-up, timed calls and verification).",
    buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60),
)
EVALUATION_SECONDS = Histogram(
    "hpcrl_bencher_evaluation_seconds",
    "Seconds from receiving a candidate to its verdict, cache hits included.",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60),
)
LAST_OK_GFLOPS = Gauge("hpcrl_bencher_last_ok_gflops", "Median GFLOPS of the latest candidate with verdict ok.")
CACHE_HITS = Counter("hpcrl_bencher_cache_hits_total", "Candidates answered from a cache, by cache.", ["cache"])
for _cache in ("result", "build"):
    CACHE_HITS.labels(_cache)
CALIBRATION_GFLOPS = Gauge(
    "hpcrl_bencher_calibration_gflops", "GFLOPS of the fixed reference kernel at its latest calibration."
)
CALIBRATION_TIMESTAMP = Gauge(
    "hpcrl_bencher_calibration_timestamp_seconds", "Unix time of the latest calibration of the reference kernel."
)
BUSY_SECONDS = Counter("hpcrl_bencher_busy_seconds_total", "Seconds spent evaluating candidates.")
BUSY_RATIO = Gauge("hpcrl_bencher_busy_ratio", "Share of the last minute spent evaluating candidates.")
PEAK_GFLOPS = Gauge("hpcrl_bencher_peak_gflops", "The node's double-precision peak used to reject impossible results.")
THREADS = Gauge("hpcrl_bencher_threads", "Threads (cores) each candidate may use on this node.")

_busy_spans: deque[tuple[float, float]] = deque()


def observe(evaluation: Evaluation, seconds: float) -> None:
    CANDIDATES.labels(evaluation.verdict.value).inc()
    EVALUATION_SECONDS.observe(seconds)
    if evaluation.verdict is Verdict.OK:
        LAST_OK_GFLOPS.set(evaluation.gflops_median)
    BUSY_SECONDS.inc(seconds)
    now = time.monotonic()
    _busy_spans.append((now - seconds, now))
    update_busy_ratio(now)


def update_busy_ratio(now: float | None = None) -> None:
    """Recompute the busy ratio over the last BUSY_WINDOW_S (call it when idle too, so it decays)."""
    now = time.monotonic() if now is None else now
    start = now - BUSY_WINDOW_S
    while _busy_spans and _busy_spans[0][1] < start:
        _busy_spans.popleft()
    busy = sum(end - max(begin, start) for begin, end in _busy_spans)
    BUSY_RATIO.set(min(1.0, busy / BUSY_WINDOW_S))
