"""Prometheus metrics of the bencher, declared once with bounded labels (verdicts and cache kinds)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections import deque
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from bencher.evaluation import Evaluation
from bus.schema import Verdict

BUSY_WINDOW_S = 60.0
"""The busy ratio is the share of the last minute spent evaluating candidates."""
ANY_FREE_PORT = -1
"""bencher.metrics_port value asking the OS for a free port (the target file says which)."""
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
"""Bind addresses that no other host can dial: the target file names this node's FQDN instead."""

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
UNCONFIRMED_IMPOSSIBLE = Counter(
    "hpcrl_bencher_unconfirmed_impossible_total",
    "Results over the node's peak that a re-probe and a second measurement did not confirm (infra_error, not "
    "charged): a peak measured too low, or a noisy node.",
)
TRUSTED_KERNEL_GFLOPS = Gauge(
    "hpcrl_bencher_trusted_kernel_gflops",
    "Fastest call of each trusted kernel at the start-up check, which must stay below the peak.",
    ["kernel"],
)
for _kernel in ("calibration", "openblas"):
    TRUSTED_KERNEL_GFLOPS.labels(_kernel)
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


def serve(port: int, address: str) -> int:
    """Serve /metrics on address:port (ANY_FREE_PORT: one the OS picks); returns the port it listens
    on, 0 when port is 0 (disabled). Raises OSError when the port cannot be bound."""
    if port == 0:
        return 0
    server, _thread = start_http_server(0 if port == ANY_FREE_PORT else port, addr=address)
    return int(server.server_port)


def target_host(address: str) -> str:
    """The host part of this endpoint's Prometheus target: the bind address, or this node's FQDN
    when it binds every interface (Prometheus runs on another host)."""
    host = address
    if address in WILDCARD_ADDRESSES:
        host = socket.getfqdn()
        if host.startswith("localhost"):  # /etc/hosts maps the hostname to loopback only
            host = socket.gethostname()
    return f"[{host}]" if ":" in host else host


def target_path(sd_dir: str, name: str) -> Path:
    """`<sd_dir>/<name>.json`, the name reduced to characters safe in a file name."""
    return Path(sd_dir) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.json"


def write_target(path: Path, target: str, labels: dict[str, str]) -> None:
    """Write a Prometheus file_sd target file atomically (temp file + rename in the same directory),
    so Prometheus never reads half a file; readable by the Prometheus user."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # not matched by the *.json glob
    temporary.write_text(json.dumps([{"targets": [target], "labels": labels}]) + "\n")
    temporary.chmod(0o644)
    os.replace(temporary, path)
