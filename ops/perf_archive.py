"""`hpcrl perf archive`: how fast the archive stores results, detects techniques and answers queries.

  ingest      results per second through `Archive.ingest` + one durable SQLite commit per batch, on
              a GRPO-like stream (groups share sources, so technique analyses repeat) and on a
              stream where every source is new (every result parsed); every result must be stored.
  bus         the same, end to end: results published on a real bus (`hpcrl bus`) and stored by a
              real `hpcrl archive`, from the first publication to the last row committed.
  descriptors technique detection time per candidate (tree-sitter parse + analysis, no cache) over
              the ladder and the adversarial corpus.
  queries     latency of `elites`, `count` and `stage_counts` on a store holding N results.
Each figure has its sanity check (counts match); figures are medians of repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
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

from archive.config import ArchiveConfig
from archive.ingest import Archive
from archive.store import ArchiveStore, Batch, Elite, Record
from archive.techniques import analyze
from bus.client import BusClient
from bus.config import BusConfig, ClientConfig
from bus.daemon import setup_logging
from bus.schema import AddStatus, Result, Role, Stamper, Verdict
from ops.perf import PerfReport
from ops.perf_bus import git_commit, machine_info
from ops.perf_bus_sites import HPCRL, REPO
from ops.processes import free_port

log = logging.getLogger(__name__)

TARGET_INGEST_PER_S: Final = 5000.0
"""Results stored per second, batched, durable commits (issue #4)."""
TARGET_DESCRIPTOR_MS: Final = 5.0
"""Median technique-detection time per candidate (issue #4)."""
SOURCES: Final = sorted((REPO / "tests" / "bencher_ladder").glob("*.c")) + sorted(
    (REPO / "tests" / "bencher_corpus").glob("ok_*.c")
)
BATCH: Final = 500
"""Results per transaction: the daemon's default archive.batch_max."""


@dataclass(frozen=True)
class PerfArchiveConfig:
    ingest_results: int = 20_000
    """Results per ingest measurement."""
    group_size: int = 8
    """Results per distinct source in the GRPO-like stream."""
    bus_results: int = 5_000
    """Results sent through the real bus."""
    query_results: int = 1_000_000
    """Stored results behind the query latencies."""
    repeats: int = 3

    def __post_init__(self) -> None:
        if min(self.ingest_results, self.group_size, self.bus_results, self.query_results, self.repeats) < 1:
            raise ValueError("every setting must be >= 1")


FULL = PerfArchiveConfig()
QUICK = PerfArchiveConfig(ingest_results=1_000, bus_results=300, query_results=10_000, repeats=1)


@dataclass
class Report(PerfReport):
    benchmark: str = "archive"
    ingest: dict[str, Any] = field(default_factory=dict)
    bus: dict[str, Any] = field(default_factory=dict)
    descriptors: dict[str, Any] = field(default_factory=dict)
    queries: dict[str, Any] = field(default_factory=dict)


stamper = Stamper("perf-bencher")


def stream(count: int, group_size: int, tag: str) -> list[Result]:
    """`count` ok results; every `group_size` consecutive ones share a source (a GRPO group that
    produced duplicates); each group's source differs from all others by a constant."""
    bases = [path.read_text() for path in SOURCES]
    results = []
    for i in range(count):
        group = i // group_size
        source = bases[group % len(bases)] + f"\nstatic const int perf_variant_{tag}_{group} = {group};\n"
        results.append(
            stamper.make(
                Result,
                candidate_id=f"{tag}-{i}",
                run="perf",
                problem="dgemm",
                size=512,
                stage=1,
                source=source,
                verdict=Verdict.OK if i % 5 else Verdict.WRONG_ANSWER,
                gflops_median=float(1 + (i * 7919) % 100) if i % 5 else 0.0,
            )
        )
    return results


def measure_ingest(results: list[Result], workdir: Path) -> dict[str, float]:
    store = ArchiveStore(workdir / f"ingest-{time.monotonic_ns()}.sqlite")
    config = ArchiveConfig(db_path=str(store.path), confirm=False)
    archive = Archive(config, store)
    store.write(Batch([], [], archive.start(), [], 0))
    started = time.perf_counter()
    for start in range(0, len(results), BATCH):
        chunk = results[start : start + BATCH]
        store.write(archive.ingest(chunk, cursor=start + len(chunk)).batch)
    seconds = time.perf_counter() - started
    stored = store.count()
    archive.close()
    store.close()
    if stored != len(results):
        raise RuntimeError(f"ingest stored {stored} of {len(results)} results")
    return {"results": len(results), "seconds": round(seconds, 3), "results_per_s": round(len(results) / seconds, 1)}


def measure_bus(cfg: PerfArchiveConfig, workdir: Path) -> dict[str, Any]:
    ports = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HPCRL_")},
        "HPCRL_BUS__REQUEST_ENDPOINT": f"tcp://127.0.0.1:{ports[0]}",
        "HPCRL_BUS__EVENT_ENDPOINT": f"tcp://127.0.0.1:{ports[1]}",
        "HPCRL_ARCHIVE__DB_PATH": str(workdir / "bus-archive.sqlite"),
        "HPCRL_ARCHIVE__CONFIRM": "false",
    }
    logs = [open(workdir / f"{name}.log", "wb") for name in ("bus", "archive")]
    processes = [
        subprocess.Popen(
            [*HPCRL, "bus", "--journal", str(workdir / "journal.sqlite")], env=env, stdout=logs[0], stderr=logs[0]
        ),
        subprocess.Popen([*HPCRL, "archive"], env=env, stdout=logs[1], stderr=logs[1]),
    ]
    try:
        bus = BusConfig(
            request_endpoint=env["HPCRL_BUS__REQUEST_ENDPOINT"], event_endpoint=env["HPCRL_BUS__EVENT_ENDPOINT"]
        )
        results = stream(cfg.bus_results, cfg.group_size, "bus")
        names = set(Result.__struct_fields__) - {"id", "sender", "seq", "sent_at", "bus_seq", "topic_seq", "v"}
        with BusClient(bus, ClientConfig(), name="perf-publisher", role=Role.CLIENT, results=False) as client:
            started = time.perf_counter()
            for r in results:
                client.publish(Result, **{name: getattr(r, name) for name in names})
                client.pump(0.0)
            if not client.flush(120):
                raise RuntimeError("the broker did not acknowledge every result")
            published = time.perf_counter() - started
            deadline = time.monotonic() + 120
            while _stored(workdir / "bus-archive.sqlite") < len(results):
                if time.monotonic() > deadline:
                    raise RuntimeError("the archive did not store every result within 120 s")
                time.sleep(0.05)
            seconds = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
        codes = [process.wait(15) for process in processes]
        for handle in logs:
            handle.close()
    return {
        "results": len(results),
        "seconds": round(seconds, 3),
        "results_per_s": round(len(results) / seconds, 1),
        "publish_seconds": round(published, 3),
        "exit_codes": codes,
    }


def _stored(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def measure_descriptors() -> dict[str, Any]:
    sources = [path.read_text() for path in SOURCES] + [
        p.read_text() for p in sorted((REPO / "tests" / "bencher_corpus").glob("*.c"))
    ]
    for source in sources[:5]:
        analyze(source)  # the parser's one-time set-up
    times = []
    for source in sources:
        started = time.perf_counter()
        analyze(source)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "candidates": len(sources),
        "median_ms": round(statistics.median(times), 3),
        "p90_ms": round(sorted(times)[int(0.9 * len(times))], 3),
        "max_ms": round(max(times), 3),
    }


def measure_queries(count: int, workdir: Path) -> dict[str, Any]:
    """Fill a store with `count` results (the insert path of the daemon, large batches) and time queries."""
    store = ArchiveStore(workdir / "queries.sqlite")
    template = stream(1, 1, "q")[0]
    started = time.perf_counter()
    cells = [f"dgemm/512/{'+'.join(sorted(s))}" for s in (("loop_order",), ("tiling",), ("loop_order", "tiling"), ())]
    for start in range(0, count, 10_000):
        records = [
            Record(
                msgspec.structs.replace(template, candidate_id=f"q-{i}", source="void dgemm(void){}"),
                (),
                "",
                cells[i % len(cells)],
                AddStatus.NOT_ADDED,
                float(i % 100),
                False,
                1 + i % 5,
            )
            for i in range(start, min(count, start + 10_000))
        ]
        store.write(Batch(records, [], [], [], start))
    fill_s = time.perf_counter() - started
    store.write(
        Batch([], [Elite("dgemm", 512, c, f"q-{i}", 99.0, (), 1, 0.0) for i, c in enumerate(cells)], [], [], count)
    )
    timings: dict[str, float] = {}
    for name, query in (
        ("elites_ms", lambda: store.elites("dgemm")),
        ("count_ms", lambda: store.count("dgemm")),
        ("stage_counts_ms", store.stage_counts),
        ("record_by_id_ms", lambda: store.record(f"q-{count // 2}")),
    ):
        samples = []
        for _ in range(5):
            begin = time.perf_counter()
            query()
            samples.append((time.perf_counter() - begin) * 1000)
        timings[name] = round(statistics.median(samples), 3)
    if store.count() != count:
        raise RuntimeError(f"the query store holds {store.count()} results, not {count}")
    store.close()
    return {"stored_results": count, "fill_seconds": round(fill_s, 2), **timings}


def run(cfg: PerfArchiveConfig, quick: bool) -> Report:
    report = Report(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        commit=git_commit(),
        quick=quick,
        machine=machine_info(),
        settings=dataclasses.asdict(cfg),
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpcrl-perf-archive-") as tmp:
        workdir = Path(tmp)
        grouped = [
            measure_ingest(stream(cfg.ingest_results, cfg.group_size, f"g{r}"), workdir) for r in range(cfg.repeats)
        ]
        distinct = [measure_ingest(stream(cfg.ingest_results // 4, 1, f"d{r}"), workdir) for r in range(cfg.repeats)]
        report.ingest = {
            "batch": BATCH,
            "grpo_like": {**grouped[0], "results_per_s": statistics.median(g["results_per_s"] for g in grouped)},
            "every_source_new": {
                **distinct[0],
                "results_per_s": statistics.median(d["results_per_s"] for d in distinct),
            },
            "group_size": cfg.group_size,
        }
        report.descriptors = measure_descriptors()
        report.bus = measure_bus(cfg, workdir)
        report.queries = measure_queries(cfg.query_results, workdir)
    report.targets = {
        "ingest_per_s": {
            "value": report.ingest["grpo_like"]["results_per_s"],
            "target": f">= {TARGET_INGEST_PER_S:.0f}",
            "met": report.ingest["grpo_like"]["results_per_s"] >= TARGET_INGEST_PER_S,
        },
        "descriptor_median_ms": {
            "value": report.descriptors["median_ms"],
            "target": f"< {TARGET_DESCRIPTOR_MS}",
            "met": report.descriptors["median_ms"] < TARGET_DESCRIPTOR_MS,
        },
    }
    report.wall_s = round(time.perf_counter() - started, 1)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl perf archive", description="Measure archive ingest, technique detection and query latency."
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds), for smoke tests")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    report = run(QUICK if args.quick else FULL, args.quick)
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
    else:
        for section in ("ingest", "bus", "descriptors", "queries", "targets"):
            print(f"{section}: {json.dumps(getattr(report, section))}")
    sys.stdout.flush()
    return 0
