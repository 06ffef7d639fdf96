"""`hpcrl perf bus`: throughput, latency, 500-worker fan-out and CURVE cost of the bus, each next to
raw pyzmq measured in the same run.

Every figure is a round trip of a 4 KiB message: submitter -> worker -> submitter.
  raw      the anchor: a bound PUSH -> N echo connections (PULL, then PUSH back) -> a bound PULL.
  broker   `hpcrl bus` (journal in a temp dir) + BusClient.submit/collect_results + N connections of
           `hpcrl test-worker --delay-s 0`: what a candidate costs through hpcrl's own stack.
Raw and broker measurements alternate (A B A B ...) and the report gives medians, because this
2-core machine has noisy neighbours (docs/performance.md). A measurement counts only after its
sanity check: every round trip returned, with the payload it carried.

`python -m ops.perf_bus echo ...` is the raw echo worker this benchmark starts, and
`python -m ops.perf_bus profile OUT ...` runs an hpcrl subcommand under cProfile (--profile-broker).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import datetime
import json
import logging
import math
import os
import platform
import pstats
import re
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import zmq

from bus.daemon import on_stop_signal, setup_logging
from bus.schema import Verdict
from bus.sockets import generate_keys
from ops.perf import PerfReport
from ops.perf_bus_sites import (
    MESSAGE_BYTES,
    POLL_SLICE_S,
    REPO,
    SOURCE,
    STALL_TIMEOUT_S,
    SWARM_TIMEOUT_S,
    BrokerDriver,
    BrokerSite,
    CpuRoles,
    Driver,
    PerfError,
    Processes,
    RawDriver,
    RawSite,
    cpu_snapshot,
    drain,
    process_stat,
    raise_open_files_limit,
)
from ops.processes import free_port

log = logging.getLogger(__name__)

TARGET_BROKER_RAW_RATIO: Final = 0.5
"""Broker round trips per second over raw ones, same N, same window, same run (issue #2)."""
TARGET_BROKER_ROUND_TRIPS_PER_S: Final = 20_000.0
"""Absolute broker throughput on the 2-core development machine (issue #2)."""
TARGET_P99_ADDED_LATENCY_MS: Final = 2.0
"""Broker p99 minus raw p99 at a paced 1,000 round trips per second (issue #2)."""


@dataclass(frozen=True)
class PerfBusConfig:
    """Sizes of one `hpcrl perf bus` run. FULL is the documented benchmark; QUICK a smoke run."""

    processes: int = 1
    """Worker processes in the throughput and latency runs (raw echo or `hpcrl test-worker`)."""
    connections: int = 16
    """Worker connections per process. N = processes x connections, identical for raw and broker.
    16 in one process: about the fastest broker layout on 2 cores, with raw still near its best
    (the survey is in docs/performance.md)."""
    window: int = 256
    """Round trips in flight at once in the throughput runs (the submitter's bounded window)."""
    repeats: int = 5
    """Interleaved repetitions (raw, broker, broker+CURVE) of the throughput measurement."""
    warmup_s: float = 0.5
    """Seconds of traffic before each throughput measurement starts counting."""
    measure_s: float = 3.0
    """Seconds each throughput measurement counts."""
    latency_rate_per_s: float = 1000.0
    """Paced submission rate of the latency measurement."""
    latency_s: float = 2.0
    """Seconds of one latency measurement (each path, each repeat)."""
    latency_repeats: int = 3
    """Interleaved repetitions (raw, broker) of the latency measurement."""
    swarm_processes: int = 5
    """`hpcrl test-worker` processes of the fan-out run."""
    swarm_connections: int = 100
    """Worker connections per fan-out process (500 workers in all by default)."""
    swarm_candidates: int = 5000
    """Candidates submitted at once in the fan-out run."""
    curve: bool = True
    """Repeat the broker throughput with CURVE on (keys in a temp dir)."""
    latency: bool = True
    """Measure latency at the paced rate."""
    swarm: bool = True
    """Run the many-workers fan-out."""

    def __post_init__(self) -> None:
        if min(self.processes, self.connections, self.window, self.repeats, self.latency_repeats) < 1:
            raise ValueError("--processes, --connections, --window and --repeats must be >= 1")
        if self.swarm_connections > 300:
            # Each connection holds 3 zmq sockets; a context allows 1023 by default.
            raise ValueError("at most 300 connections per fan-out process: raise swarm_processes instead")

    @property
    def workers(self) -> int:
        return self.processes * self.connections

    @property
    def swarm_workers(self) -> int:
        return self.swarm_processes * self.swarm_connections


FULL: Final = PerfBusConfig()
QUICK: Final = PerfBusConfig(
    repeats=1,
    warmup_s=0.2,
    measure_s=0.5,
    latency_rate_per_s=500.0,
    latency_s=0.5,
    latency_repeats=1,
    swarm_processes=2,
    swarm_connections=10,
    swarm_candidates=200,
)


# ---------------------------------------------------------------- measurements


@dataclass
class ThroughputSample:
    round_trips_per_s: float
    round_trips: int
    seconds: float
    cpu_us_per_round_trip: dict[str, float]
    """CPU time (user + system) per round trip, by process role."""
    cores_busy: dict[str, float]
    """CPU seconds per second, by role: 1.0 is one core kept busy the whole measurement."""


def measure_throughput(driver: Driver, cfg: PerfBusConfig, roles: CpuRoles) -> ThroughputSample:
    """Keep `window` round trips in flight; count those completed in the measure_s after warm-up."""
    start = time.monotonic()
    counting_from = start + cfg.warmup_s
    counting = False
    counted = 0
    cpu_before: dict[str, float] = {}
    last_progress = now = start
    while True:
        now = time.monotonic()
        if not counting and now >= counting_from:
            counting, counted, counting_from = True, 0, now
            cpu_before = cpu_snapshot(roles)
        if counting and now >= counting_from + cfg.measure_s:
            break
        while len(driver.outstanding) < cfg.window:
            driver.send()
        done = len(driver.wait(POLL_SLICE_S))
        if done:
            counted += done
            last_progress = now
        elif now - last_progress > STALL_TIMEOUT_S:
            raise PerfError(f"no round trip completed for {STALL_TIMEOUT_S:g} s ({len(driver.outstanding)} in flight)")
    cpu_after = cpu_snapshot(roles)
    seconds = now - counting_from
    drain(driver)
    if driver.invalid:
        raise PerfError(f"{driver.invalid} round trips came back with the wrong payload or verdict")
    return ThroughputSample(
        round_trips_per_s=counted / seconds,
        round_trips=counted,
        seconds=seconds,
        cpu_us_per_round_trip={
            role: 1e6 * (cpu_after[role] - cpu_before[role]) / max(counted, 1) for role in cpu_after
        },
        cores_busy={role: (cpu_after[role] - cpu_before[role]) / seconds for role in cpu_after},
    )


def measure_latency(driver: Driver, rate_per_s: float, seconds: float) -> list[float]:
    """Send one round trip every 1/rate_per_s seconds (on a fixed schedule, so a slow path gets
    bursts rather than a lower rate); returns every round trip's seconds."""
    interval = 1.0 / rate_per_s
    round_trips: list[float] = []
    start = time.monotonic()
    for index in range(int(rate_per_s * seconds)):
        due = start + index * interval
        while (now := time.monotonic()) < due:
            # zmq polls in whole milliseconds and truncates: round up, or this loop would spin and
            # take a core from the processes it measures (a late send is harmless: the schedule is fixed).
            round_trips += driver.wait(min(math.ceil((due - now) * 1000) / 1000, POLL_SLICE_S))
        driver.send()
    round_trips += drain(driver)
    if driver.invalid:
        raise PerfError(f"{driver.invalid} round trips came back with the wrong payload or verdict")
    return round_trips


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------- the run


@dataclass
class Report(PerfReport):
    """Everything `hpcrl perf bus --json` prints (as one JSON object)."""

    benchmark: str = "bus"
    throughput: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    swarm: dict[str, Any] = field(default_factory=dict)
    curve: dict[str, Any] = field(default_factory=dict)
    broker_profile: dict[str, Any] = field(default_factory=dict)


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgspec": msgspec.__version__,
        "sqlite": sqlite3.sqlite_version,
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def run(cfg: PerfBusConfig, quick: bool, profile_broker: Path | None) -> Report:
    started = time.monotonic()
    raise_open_files_limit()
    report = Report(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        commit=git_commit(),
        quick=quick,
        machine=machine_info(),
        settings={"message_bytes": MESSAGE_BYTES, "workers_n": cfg.workers, **dataclasses.asdict(cfg)},
    )
    with tempfile.TemporaryDirectory(prefix="hpcrl-perf-bus-") as tmp:
        workdir = Path(tmp)
        procs = Processes(workdir)
        try:
            _run_throughput_and_latency(cfg, procs, report, profile_broker)
            if cfg.swarm:
                report.swarm = _run_swarm(cfg, procs)
        except PerfError:
            for name, _ in procs.started:
                log.error("log of %s:\n%s", name, procs.log_tail(name))
            raise
        finally:
            procs.stop()
    report.targets = _targets(report)
    report.wall_s = round(time.monotonic() - started, 1)
    return report


def _run_throughput_and_latency(
    cfg: PerfBusConfig, procs: Processes, report: Report, profile_broker: Path | None
) -> None:
    n, p, c = cfg.workers, cfg.processes, cfg.connections
    log.info("starting raw echo, broker%s sites N=%d (%d process(es) x %d)", " and CURVE" if cfg.curve else "", n, p, c)
    raw = RawSite(procs, p, c)
    plain = BrokerSite(procs, "plain", p, c, profile_path=profile_broker)
    secure = None
    if cfg.curve:
        keys = procs.workdir / "keys"
        generate_keys(keys, ["broker", "client"])
        secure = BrokerSite(procs, "curve", p, c, keys_dir=keys)
    me = [process_stat(os.getpid())]
    try:
        samples: dict[str, list[ThroughputSample]] = {"raw": [], "broker": [], "curve": []}
        for repeat in range(cfg.repeats):
            runs: list[tuple[str, Driver, CpuRoles]] = [
                ("raw", RawDriver(raw), {"client": me, **raw.cpu_roles}),
                ("broker", BrokerDriver(plain), {"client": me, **plain.cpu_roles}),
            ]
            if secure is not None:
                runs.append(("curve", BrokerDriver(secure), {"client": me, **secure.cpu_roles}))
            for name, driver, roles in runs:
                sample = measure_throughput(driver, cfg, roles)
                samples[name].append(sample)
                log.info("throughput repeat=%d path=%s round_trips_per_s=%.0f", repeat, name, sample.round_trips_per_s)
        report.throughput = _summarise_throughput(samples)
        if secure is not None:
            plain_rate = report.throughput["broker_round_trips_per_s"]
            curve_rate = statistics.median(s.round_trips_per_s for s in samples["curve"])
            report.curve = {
                "plain_round_trips_per_s": round(plain_rate),
                "curve_round_trips_per_s": round(curve_rate),
                "curve_plain_ratio": round(curve_rate / plain_rate, 3),
                "curve_samples": [round(s.round_trips_per_s) for s in samples["curve"]],
                "cpu_us_per_round_trip": _median_cpu(samples["curve"]),
            }
        if cfg.latency:
            report.latency = _run_latency(cfg, raw, plain)
        if profile_broker is not None:
            plain.close()
            procs.stop([plain.broker])
            handled = _journal_head(procs.workdir / "plain-journal.sqlite")
            report.broker_profile = profile_summary(profile_broker, handled)
    finally:
        raw.close()
        plain.close()
        if secure is not None:
            secure.close()
        procs.stop()


def _median_cpu(samples: list[ThroughputSample]) -> dict[str, float]:
    roles = samples[0].cpu_us_per_round_trip
    cpu = {role: round(statistics.median(s.cpu_us_per_round_trip[role] for s in samples), 1) for role in roles}
    cpu["total"] = round(sum(v for role, v in cpu.items() if not role.endswith("_main_thread")), 1)
    return cpu


def _median_cores(samples: list[ThroughputSample]) -> dict[str, float]:
    roles = samples[0].cores_busy
    return {role: round(statistics.median(s.cores_busy[role] for s in samples), 2) for role in roles}


def _summarise_throughput(samples: dict[str, list[ThroughputSample]]) -> dict[str, Any]:
    raw = statistics.median(s.round_trips_per_s for s in samples["raw"])
    broker = statistics.median(s.round_trips_per_s for s in samples["broker"])
    paired = [b.round_trips_per_s / r.round_trips_per_s for r, b in zip(samples["raw"], samples["broker"], strict=True)]
    return {
        "raw_round_trips_per_s": round(raw),
        "broker_round_trips_per_s": round(broker),
        "broker_raw_ratio": round(broker / raw, 3),
        "broker_raw_ratio_paired_median": round(statistics.median(paired), 3),
        "raw_samples": [round(s.round_trips_per_s) for s in samples["raw"]],
        "broker_samples": [round(s.round_trips_per_s) for s in samples["broker"]],
        "cpu_us_per_round_trip": {"raw": _median_cpu(samples["raw"]), "broker": _median_cpu(samples["broker"])},
        "cores_busy": {"raw": _median_cores(samples["raw"]), "broker": _median_cores(samples["broker"])},
    }


PCTS: Final = ("p50_ms", "p99_ms")


def _run_latency(cfg: PerfBusConfig, raw: RawSite, plain: BrokerSite) -> dict[str, Any]:
    per_repeat: dict[str, list[dict[str, float]]] = {"raw": [], "broker": []}
    for repeat in range(cfg.latency_repeats):
        drivers: list[tuple[str, Driver]] = [("raw", RawDriver(raw)), ("broker", BrokerDriver(plain))]
        for name, driver in drivers:
            round_trips = measure_latency(driver, cfg.latency_rate_per_s, cfg.latency_s)
            figures = {
                "p50_ms": 1e3 * percentile(round_trips, 0.50),
                "p99_ms": 1e3 * percentile(round_trips, 0.99),
                "max_ms": 1e3 * max(round_trips),
                "count": len(round_trips),
            }
            per_repeat[name].append(figures)
            log.info("latency repeat=%d path=%s p50_ms=%.3f p99_ms=%.3f", repeat, name, *[figures[k] for k in PCTS])
    summary: dict[str, Any] = {"rate_per_s": cfg.latency_rate_per_s, "seconds_per_repeat": cfg.latency_s}
    for name, repeats in per_repeat.items():
        summary[name] = {
            "p50_ms": round(statistics.median(f["p50_ms"] for f in repeats), 3),
            "p99_ms": round(statistics.median(f["p99_ms"] for f in repeats), 3),
            "p99_ms_samples": [round(f["p99_ms"], 3) for f in repeats],
            "max_ms": round(max(f["max_ms"] for f in repeats), 3),
            "round_trips": int(sum(f["count"] for f in repeats)),
        }
    summary["p99_added_ms"] = round(summary["broker"]["p99_ms"] - summary["raw"]["p99_ms"], 3)
    summary["p50_added_ms"] = round(summary["broker"]["p50_ms"] - summary["raw"]["p50_ms"], 3)
    return summary


HANDLED = re.compile(r"test worker stopped handled=(\d+)")


def _run_swarm(cfg: PerfBusConfig, procs: Processes) -> dict[str, Any]:
    """Many lightweight workers on one broker: every candidate completes exactly once."""
    count = cfg.swarm_workers
    log.info("fan-out: starting %d workers (%d x %d)", count, cfg.swarm_processes, cfg.swarm_connections)
    started = time.monotonic()
    site = BrokerSite(procs, "swarm", cfg.swarm_processes, cfg.swarm_connections, metrics_port=free_port())
    connect_s = time.monotonic() - started
    try:
        driver = BrokerDriver(site)
        begin = time.monotonic()
        for _ in range(cfg.swarm_candidates):
            driver.send()
        submitted = list(driver.outstanding)
        results = site.bus.wait_results(submitted, SWARM_TIMEOUT_S)
        seconds = time.monotonic() - begin
        metrics = site.scrape()
        site.close()
    finally:
        codes = procs.stop(site.workers)
        codes.update(procs.stop([site.broker]))
    handled = [HANDLED.search(procs.log_text(f"swarm-worker-{p}")) for p in range(cfg.swarm_processes)]
    bencher_ids = {r.bencher_id for r in results.values()}
    wrong = sum(1 for r in results.values() if r.verdict is not Verdict.INFRA_ERROR or r.source != SOURCE)
    requeued = sum(v for k, v in metrics.items() if k.startswith("hpcrl_bus_requeued_candidates_total"))
    return {
        "workers": count,
        "worker_processes": cfg.swarm_processes,
        "connect_s": round(connect_s, 2),
        "candidates": len(submitted),
        "completed": len(results),
        "lost": len(set(submitted) - set(results)),
        "wrong_results": wrong,
        "dispatches": int(metrics.get("hpcrl_bus_dispatches_total", -1)),
        "requeued": int(requeued),
        "worker_runs": sum(int(m.group(1)) for m in handled if m) if all(handled) else None,
        "distinct_workers_used": len(bencher_ids),
        "seconds": round(seconds, 3),
        "candidates_per_s": round(len(results) / seconds),
        "clean_exits": sum(1 for code in codes.values() if code == 0),
    }


def _journal_head(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COALESCE(MAX(bus_seq), 0) FROM events").fetchone()[0])


def profile_summary(path: Path, candidates: int, top: int = 15) -> dict[str, Any]:
    """The broker's top functions by own time, in microseconds per candidate (journaled results).
    zmq's poll is listed apart: its time is mostly the broker waiting for work, not working."""
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tottime, cumtime, calls, f"{Path(filename).name}:{line}({function})"))
    rows.sort(reverse=True)
    per = 1e6 / max(candidates, 1)
    poll = sum(r[0] for r in rows if r[3].endswith("(poll)"))
    busy = [r for r in rows if not r[3].endswith("(poll)")]
    return {
        "profile": str(path),
        "candidates": candidates,
        "busy_us_per_candidate": round(per * sum(r[0] for r in busy), 1),
        "poll_us_per_candidate": round(per * poll, 1),
        "top_by_own_time": [
            {
                "function": name,
                "own_us_per_candidate": round(per * tottime, 2),
                "cumulative_us_per_candidate": round(per * cumtime, 2),
                "calls_per_candidate": round(calls / max(candidates, 1), 2),
            }
            for tottime, cumtime, calls, name in busy[:top]
        ],
    }


def _targets(report: Report) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    if report.throughput:
        ratio = report.throughput["broker_raw_ratio"]
        rate = report.throughput["broker_round_trips_per_s"]
        targets["broker_raw_ratio"] = {
            "value": ratio,
            "target": f">= {TARGET_BROKER_RAW_RATIO}",
            "met": ratio >= TARGET_BROKER_RAW_RATIO,
        }
        targets["broker_round_trips_per_s"] = {
            "value": rate,
            "target": f">= {TARGET_BROKER_ROUND_TRIPS_PER_S:.0f}",
            "met": rate >= TARGET_BROKER_ROUND_TRIPS_PER_S,
        }
    if report.latency:
        added = report.latency["p99_added_ms"]
        targets["p99_added_ms"] = {
            "value": added,
            "target": f"< {TARGET_P99_ADDED_LATENCY_MS}",
            "met": added < TARGET_P99_ADDED_LATENCY_MS,
        }
    if report.swarm:
        swarm = report.swarm
        targets["swarm_no_loss"] = {
            "value": swarm["lost"],
            "target": "0 lost, 0 wrong, each candidate run once",
            "met": swarm["lost"] == 0 and swarm["wrong_results"] == 0 and swarm["worker_runs"] == swarm["candidates"],
        }
    return targets


# ---------------------------------------------------------------- output


def human_table(report: Report) -> str:
    m, t, lat, sw, cu = report.machine, report.throughput, report.latency, report.swarm, report.curve
    lines = [
        f"hpcrl perf bus  {report.date}  {m['nproc']} CPU {m['cpu_model']}  python {m['python']}  "
        f"pyzmq {m['pyzmq']} libzmq {m['libzmq']}{'  (quick)' if report.quick else ''}",
        f"N = {report.settings['workers_n']} worker connections, window {report.settings['window']}, "
        f"{MESSAGE_BYTES} B messages, medians of {report.settings['repeats']} interleaved repeats",
        "",
        f"{'figure':<42}{'value':>18}  target",
    ]

    def row(name: str, value: str, target: str = "") -> None:
        lines.append(f"{name:<42}{value:>18}  {target}".rstrip())

    def verdict(key: str) -> str:
        entry = report.targets.get(key)
        return "" if entry is None else f"{entry['target']}  {'met' if entry['met'] else 'MISSED'}"

    if t:
        row("raw round trips/s", f"{t['raw_round_trips_per_s']:,}")
        row("broker round trips/s", f"{t['broker_round_trips_per_s']:,}", verdict("broker_round_trips_per_s"))
        row("broker / raw", f"{t['broker_raw_ratio']:.3f}", verdict("broker_raw_ratio"))
        raw_cpu, cpu = t["cpu_us_per_round_trip"]["raw"], t["cpu_us_per_round_trip"]["broker"]
        row("raw CPU us/round trip (all processes)", f"{raw_cpu['total']:g}")
        row("broker CPU us/round trip (all processes)", f"{cpu['total']:g}", "client + broker + workers")
        row("  client / broker / workers", f"{cpu['client']:g} / {cpu['broker']:g} / {cpu['workers']:g}")
    if lat:
        row("raw latency p50 / p99 ms", f"{lat['raw']['p50_ms']:.3f} / {lat['raw']['p99_ms']:.3f}")
        row("broker latency p50 / p99 ms", f"{lat['broker']['p50_ms']:.3f} / {lat['broker']['p99_ms']:.3f}")
        row("p99 added latency ms", f"{lat['p99_added_ms']:.3f}", verdict("p99_added_ms"))
    if cu:
        row("CURVE round trips/s", f"{cu['curve_round_trips_per_s']:,}")
        row("CURVE / plain", f"{cu['curve_plain_ratio']:.3f}")
    if sw:
        row(
            f"fan-out: {sw['workers']} workers, {sw['candidates']} cand.",
            f"{sw['completed']} done",
            verdict("swarm_no_loss"),
        )
        row("fan-out: lost / distinct workers used", f"{sw['lost']} / {sw['distinct_workers_used']}")
        row("fan-out: seconds", f"{sw['seconds']:.2f}")
    if report.broker_profile:
        row("profiled broker busy us/candidate", f"{report.broker_profile['busy_us_per_candidate']}")
    lines.append(f"\nwall time {report.wall_s:.0f} s")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl perf bus",
        description="Measure bus throughput, latency, 500-worker fan-out and CURVE cost against raw pyzmq.",
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds), for smoke tests")
    parser.add_argument("--processes", type=int, help="worker processes of the throughput runs")
    parser.add_argument("--connections", type=int, help="worker connections per process (N = processes x this)")
    parser.add_argument("--window", type=int, help="round trips in flight in the throughput runs")
    parser.add_argument("--repeats", type=int, help="interleaved throughput repetitions")
    parser.add_argument("--measure-s", type=float, help="seconds each throughput measurement counts")
    parser.add_argument("--no-curve", action="store_true", help="skip the CURVE throughput")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument("--no-swarm", action="store_true", help="skip the many-workers run")
    parser.add_argument("--profile-broker", type=Path, help="run the plain broker under cProfile, write stats here")
    parser.add_argument("--log-level", default="INFO", help="stderr log level (DEBUG, INFO, WARNING, ERROR)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    overrides = {
        key: value
        for key, value in dict(
            processes=args.processes,
            connections=args.connections,
            window=args.window,
            repeats=args.repeats,
            measure_s=args.measure_s,
        ).items()
        if value is not None
    }
    if args.no_curve:
        overrides["curve"] = False
    if args.no_latency:
        overrides["latency"] = False
    if args.no_swarm:
        overrides["swarm"] = False
    try:
        cfg = dataclasses.replace(QUICK if args.quick else FULL, **overrides)
    except ValueError as error:
        parser.exit(2, f"hpcrl perf bus: {error}\n")
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop every process we started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = run(cfg, args.quick, args.profile_broker.resolve() if args.profile_broker else None)
    except PerfError as error:
        log.error("benchmark failed: %s", error)
        return 1
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print(human_table(report))
    return 0


# ---------------------------------------------------------------- the raw echo worker


def echo_main(argv: list[str]) -> int:
    """Connect `connections` PULL/PUSH pairs and send back every message as it came."""
    parser = argparse.ArgumentParser(prog="python -m ops.perf_bus echo")
    parser.add_argument("--dispatch", required=True, help="endpoint of the benchmark's PUSH")
    parser.add_argument("--collect", required=True, help="endpoint of the benchmark's PULL")
    parser.add_argument("--connections", type=int, default=1)
    args = parser.parse_args(argv)
    stop: list[bool] = []
    on_stop_signal(lambda: stop.append(True))
    parent = os.getppid()
    ctx: zmq.Context[Any] = zmq.Context.instance()
    pairs = []
    poller = zmq.Poller()
    for _ in range(args.connections):
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        for sock in (pull, push):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100_000)
            sock.setsockopt(zmq.RCVHWM, 100_000)
        pull.connect(args.dispatch)
        push.connect(args.collect)
        poller.register(pull, zmq.POLLIN)
        pairs.append((pull, push))
    outlet = dict(pairs)
    while not stop and os.getppid() == parent:
        for pull, _ in poller.poll(int(POLL_SLICE_S * 1000)):
            for _ in range(512):
                try:
                    message = pull.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                outlet[pull].send(message)
    for pull, push in pairs:
        pull.close()
        push.close()
    return 0


def profile_main(argv: list[str]) -> int:
    """Run `hpcrl ARGS...` under cProfile, timing by the main thread's CPU time (not wall time: on
    2 busy cores wall time would charge waiting for a core to whatever function was running)."""
    from ops.cli import main as hpcrl_main

    profiler = cProfile.Profile(time.thread_time)
    try:
        profiler.enable()
        return hpcrl_main(argv[1:])
    finally:
        profiler.disable()
        profiler.dump_stats(argv[0])


if __name__ == "__main__":
    helpers = {"echo": echo_main, "profile": profile_main}
    if sys.argv[1:2] and sys.argv[1] in helpers:
        sys.exit(helpers[sys.argv[1]](sys.argv[2:]))
    sys.exit(
        "usage: python -m ops.perf_bus echo --dispatch EP --collect EP [--connections N]\n"
        "       python -m ops.perf_bus profile OUT.prof HPCRL_SUBCOMMAND [ARGS...]"
    )
