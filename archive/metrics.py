"""Prometheus metrics of the archive, declared once; problem labels are the configured problems'."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from bus.schema import Result, Verdict

if TYPE_CHECKING:
    from archive.ingest import Archive
    from archive.store import ArchiveStore, Record

RESULTS_STORED = Counter(
    "hpcrl_archive_results_stored_total", "Results stored (exactly once each), by verdict.", ["verdict"]
)
for _verdict in Verdict:
    RESULTS_STORED.labels(_verdict.value)
ELITES = Gauge("hpcrl_archive_elites", "Cells holding an elite, by problem.", ["problem"])
COVERAGE = Gauge("hpcrl_archive_coverage_ratio", "Share of technique sets with an elite, by problem.", ["problem"])
QD_SCORE = Gauge(
    "hpcrl_archive_qd_score_gflops", "Sum of the elites' GFLOPS, by problem (problems rated in GFLOPS).", ["problem"]
)
BEST_GFLOPS = Gauge(
    "hpcrl_archive_best_gflops", "Best elite GFLOPS, by problem (problems rated in GFLOPS).", ["problem"]
)
QD_SCORE_GBPS = Gauge(
    "hpcrl_archive_qd_score_gbps", "Sum of the elites' GB/s, by problem (problems rated in GB/s).", ["problem"]
)
BEST_GBPS = Gauge("hpcrl_archive_best_gbps", "Best elite GB/s, by problem (problems rated in GB/s).", ["problem"])
_OBJECTIVE_GAUGES = {"gflops": (QD_SCORE, BEST_GFLOPS), "gbps": (QD_SCORE_GBPS, BEST_GBPS)}
"""A problem's elites are rated in its metric: each problem's figures go to the pair of gauges of that unit
(a GB/s figure under a GFLOPS name would mislead every dashboard that sums or compares them)."""
STAGE = Gauge("hpcrl_archive_stage", "Current stage, by problem.", ["problem"])
INGEST_LAG = Gauge(
    "hpcrl_archive_ingest_lag_seconds", "Seconds between a bencher sending its result and the archive storing it."
)
INGEST_SECONDS = Histogram(
    "hpcrl_archive_ingest_seconds",
    "Seconds to analyse, store (one commit per batch) and publish one batch of results.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
)
CONFIRMATIONS = Counter("hpcrl_archive_confirmations_total", "Confirmation measurements, by outcome.", ["outcome"])
for _outcome in ("sent", "confirmed", "refuted"):
    CONFIRMATIONS.labels(_outcome)


def observe(records: Iterable[Record]) -> None:
    for record in records:
        RESULTS_STORED.labels(record.result.verdict.value).inc()
        if record.confirmation_of:
            confirmed = record.result.verdict is Verdict.OK
            CONFIRMATIONS.labels("confirmed" if confirmed else "refuted").inc()


def update_lag(results: list[Result]) -> None:
    """Lag of the newest result of a batch: how far behind the stream the archive is."""
    if results:
        INGEST_LAG.set(max(0.0, time.time() - max(r.sent_at for r in results)))


def refresh(store: ArchiveStore, archive: Archive) -> None:
    for problem in archive.config.problems:
        stats = archive.grid.stats(problem)
        ELITES.labels(problem).set(stats.num_elites)
        COVERAGE.labels(problem).set(stats.coverage)
        qd_score, best = _OBJECTIVE_GAUGES.get(store.metric(problem), _OBJECTIVE_GAUGES["gflops"])
        qd_score.labels(problem).set(stats.qd_score)
        best.labels(problem).set(stats.obj_max)
        STAGE.labels(problem).set(archive.stage_of(problem))
