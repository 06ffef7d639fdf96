"""`hpcrl perf BENCHMARK`: measure one part of the system and print its figures as JSON.

Each benchmark lives in its own module and is imported only when it runs, like the subcommands of
`hpcrl`. What every figure means, and the latest numbers, are in docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ops.cli import CommandTable, dispatch

BENCHMARKS: CommandTable = {
    "bus": ("ops.perf_bus", "main", "broker throughput, latency, 500-worker fan-out and CURVE cost vs raw pyzmq"),
    "archive": ("ops.perf_archive", "main", "archive ingest rate, technique detection time, query latency"),
    "trainer": ("ops.perf_trainer", "main", "trainer step time split, synchronous vs pipelined, tokens/s"),
    "update": ("ops.perf_update", "main", "update peak memory by batch size vs hpcrl plan, micro-batches vs one pass"),
    "eval": ("ops.perf_eval", "main", "hpcrl eval's cost per sample: generation, measurement, overhead"),
    "peak": ("ops.perf_peak", "main", "the peak probe on every ISA this CPU runs, vs theory and trusted kernels"),
    "bencher": (
        "ops.perf_bencher",
        "main",
        "overhead per candidate, fidelity vs a standalone timer, ladder vs OpenBLAS, cache and daemon rates",
    ),
}


@dataclass
class PerfReport:
    """What every `hpcrl perf BENCHMARK --json` report starts with; each benchmark adds its figures."""

    benchmark: str = ""
    date: str = ""
    commit: str = ""
    """`git describe --always --dirty` of the code measured (empty outside a git checkout)."""
    quick: bool = False
    machine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


def main(argv: list[str]) -> int:
    return dispatch(
        "hpcrl perf",
        "benchmark",
        "usage: hpcrl perf BENCHMARK [--json] [--quick] [options]   (hpcrl perf BENCHMARK --help)",
        BENCHMARKS,
        argv,
    )
