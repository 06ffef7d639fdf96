"""`hpcrl bench-demo`: the benchmark side alone (broker, a real bencher, the SQD archive) on eight embedded candidates.

The demo starts `hpcrl bus`, one `hpcrl bencher` (its build and result caches in the run directory; it
measures the reference kernel at start, so every result carries calibration_gflops) and `hpcrl archive`
(its store in the run directory, confirmation on). It reads the current stage from the bus once the
archive has announced stage 1, submits the embedded candidates below at n=256 for that stage, and
prints one line per candidate: its verdict and GFLOPS from the bencher, its cell (the techniques the
archive detected), what adding it did to the archive and whether it uses techniques its stage does not
permit. The set covers what the system does with model-written code: it times correct kernels from
naive to OpenMP, answers a repeated kernel from the result cache, and returns wrong_answer,
compile_error and rejected for the rest. Every would-be best is measured again by the bencher (the
archive's confirmation, past the result cache); the demo waits for those measurements, then stops every
process and prints the elites, the stage and the report PNGs it drew from the store. It writes
summary.json, the logs (bus.log, bencher.log, archive.log), the journal and archive.sqlite into the run
directory and exits 0 when every candidate got its expected verdict and an archive status, every
confirmation came back, and every process exited 0. About 3 s on 2 cores; every wait is bounded, and a
bencher or archive that cannot start (no bubblewrap, no `archive` extra) is reported with its fix.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.cli import first_useful_line
from bus.config import BusConfig, ClientConfig
from bus.schema import AddStatus, Archived, Event, Result, StageChange, Verdict
from ops.cli import missing_packages
from ops.processes import EXTRAS_FIX, Children

if TYPE_CHECKING:
    from bus.client import BusClient

START_TIMEOUT_S = 60.0
"""How long the processes may take to come up (the bencher measures the node's peak first, the archive
announces stage 1)."""
RESULTS_TIMEOUT_S = 120.0
"""How long all results and their archive statuses may take once submitted, calibration included."""
CONFIRMATIONS_TIMEOUT_S = 60.0
"""How long the archive's re-measurements of the would-be bests may take once every result is in."""
POLL_S = 0.5
"""Longest wait for events per turn (bounds the reaction to a dead process or Ctrl-C)."""
BENCHER_DRAIN_TIMEOUT_S = 5.0
"""On stop, how long the bencher may finish an in-flight candidate before handing it back."""
STOP_TIMEOUT_S = BENCHER_DRAIN_TIMEOUT_S + 10.0
"""How long a process may take to exit after SIGTERM before it is killed."""
SIZES = (128, 256, 512)
"""Sizes the demo offers: larger ones make the naive kernel take minutes."""
PROBLEM = "dgemm"
RUN = "demo"
"""The candidates' `run`: the report draws this run."""


@dataclass(frozen=True)
class DemoCandidate:
    name: str
    expected: Verdict
    what: str
    """One line: what the candidate shows."""
    source: str
    duplicate_of: str = ""
    """Name of the candidate this one repeats (comments aside): it must come back from the result cache."""


NAIVE = """\
void dgemm(int n, const double *A, const double *B, double *C) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++)
                sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
}
"""
IKJ = """\
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C) {
    memset(C, 0, sizeof(double) * n * n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double a = A[i * n + k];
            for (int j = 0; j < n; j++)
                C[i * n + j] += a * B[k * n + j];
        }
}
"""
# The tiled kernel, and the OpenMP one built from it: TK rows of B stay in cache while the TI rows
# of C of a block reuse them; four rows of B are folded into each pass over a row of C.
_TILED_TEMPLATE = """\
#include <string.h>

enum { TI = @TI@, TK = 128 };

/* C[i0:i1, :] += A[i0:i1, k0:k1] * B[k0:k1, :] */
static void block(int n, int i0, int i1, int k0, int k1, const double *A, const double *B, double *C) {
    for (int i = i0; i < i1; i++) {
        double *restrict c = C + (size_t)i * n;
        const double *a = A + (size_t)i * n;
        int k = k0;
        for (; k + 4 <= k1; k += 4) {
            const double *restrict b = B + (size_t)k * n;
            for (int j = 0; j < n; j++)
                c[j] += a[k] * b[j] + a[k + 1] * b[j + n] + a[k + 2] * b[j + 2 * n] + a[k + 3] * b[j + 3 * n];
        }
        for (; k < k1; k++)
            for (int j = 0; j < n; j++)
                c[j] += a[k] * B[(size_t)k * n + j];
    }
}

void dgemm(int n, const double *A, const double *B, double *C) {
    memset(C, 0, sizeof(double) * n * n);@PRAGMA@
    for (int i0 = 0; i0 < n; i0 += TI)
        for (int k0 = 0; k0 < n; k0 += TK)
            block(n, i0, i0 + TI < n ? i0 + TI : n, k0, k0 + TK < n ? k0 + TK : n, A, B, C);
}
"""
TILED = _TILED_TEMPLATE.replace("@TI@", "64").replace("@PRAGMA@", "")
OPENMP = _TILED_TEMPLATE.replace("@TI@", "16").replace("@PRAGMA@", "\n    #pragma omp parallel for schedule(dynamic)")
WRONG = NAIVE.replace("B[k * n + j]", "B[j * n + k]")  # B read transposed
BROKEN = """\
void dgemm(int n, const double *A, const double *B, double *C) {
    for (int i = 0; i < n * n; i++)
        C[i] = A[i] * B[i]
}
"""
CHEATER = """\
struct timespec { long tv_sec, tv_nsec; };
int clock_gettime(int clock, struct timespec *t); /* declared by hand: no header to refuse */

void dgemm(int n, const double *A, const double *B, double *C) {
    struct timespec t;
    clock_gettime(1, &t); /* a kernel that reads the clock can tell warm-up calls from timed ones */
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0;
}
"""
CANDIDATES = (
    DemoCandidate("naive", Verdict.OK, "i-j-k loops, B walked down its columns", NAIVE),
    DemoCandidate("ikj", Verdict.OK, "loops interchanged: rows of B and C streamed", IKJ),
    DemoCandidate("tiled", Verdict.OK, "cache tiles, four rows of B per pass", TILED),
    DemoCandidate("openmp", Verdict.OK, "the tiled kernel over every core", OPENMP),
    DemoCandidate(
        "tiled-again",
        Verdict.OK,
        "the tiled kernel again, byte for byte",
        TILED,
        duplicate_of="tiled",
    ),
    DemoCandidate("wrong", Verdict.WRONG_ANSWER, "naive with B transposed by mistake", WRONG),
    DemoCandidate("broken", Verdict.COMPILE_ERROR, "a missing semicolon", BROKEN),
    DemoCandidate("cheater", Verdict.REJECTED, "calls clock_gettime", CHEATER),
)


@dataclass
class _Seen:
    """What the demo has heard on the bus: results (its own and the archive's confirmations) and
    archived events, by candidate id; the first of each (a re-delivered event changes nothing)."""

    results: dict[str, Result] = field(default_factory=dict)
    archived: dict[str, Archived] = field(default_factory=dict)

    def take(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Result):
                self.results.setdefault(event.candidate_id, event)
            elif isinstance(event, Archived):
                self.archived.setdefault(event.candidate_id, event)

    def confirmation_of(self, candidate_id: str) -> Archived | None:
        return next((a for a in self.archived.values() if a.confirmation_of == candidate_id), None)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl bench-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="directory for logs, journal, caches, archive and summary (default: new)")
    parser.add_argument("--size", type=int, default=256, choices=SIZES, help="matrix size n (default: 256)")
    args = parser.parse_args(argv)
    missing = missing_packages("archive")
    if missing:
        print(f"hpcrl bench-demo: the archive needs the Python packages {', '.join(missing)}\n  fix: {EXTRAS_FIX}")
        return 1
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="hpcrl-demo-")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    bus = BusConfig(request_endpoint=f"ipc://{run_dir}/request.sock", event_endpoint=f"ipc://{run_dir}/event.sock")
    env = {
        **os.environ,
        "HPCRL_BUS__REQUEST_ENDPOINT": bus.request_endpoint,
        "HPCRL_BUS__EVENT_ENDPOINT": bus.event_endpoint,
        "HPCRL_BENCHER__CACHE_DIR": str(run_dir / "bencher-cache"),
        "HPCRL_BENCHER__CALIBRATION_SIZE": str(args.size),
        "HPCRL_BENCHER__CALIBRATION_INTERVAL_S": "3600",  # once at start: the demo is shorter
        "HPCRL_BENCHER__DRAIN_TIMEOUT_S": str(BENCHER_DRAIN_TIMEOUT_S),
        "HPCRL_BENCHER__METRICS_PORT": "0",
        "HPCRL_ARCHIVE__DB_PATH": str(run_dir / "archive.sqlite"),
        "HPCRL_ARCHIVE__CONFIRM": "true",
        "HPCRL_ARCHIVE__METRICS_PORT": "0",
    }
    children = Children(run_dir, env)
    interrupted: list[bool] = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    signal.signal(signal.SIGTERM, lambda *_: interrupted.append(True))
    print(f"hpcrl bench-demo: run directory {run_dir}")
    started = time.monotonic()
    try:
        children.start("bus", "bus", "--journal", str(run_dir / "journal.sqlite"))
        children.start("bencher", "bencher", "--name", "bencher-1")
        children.start("archive", "archive")
        summary = _exercise(bus, args.size, children, run_dir, interrupted)
    finally:
        codes = children.stop_all(STOP_TIMEOUT_S)
    summary["exit_codes"] = codes
    if (run_dir / "archive.sqlite").exists():
        _show_archive(run_dir, summary)
    summary["total_wall_s"] = round(time.monotonic() - started, 3)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    success = bool(summary["as_expected"]) and not summary.get("error") and not any(codes.values())
    print(f"\nhpcrl bench-demo: summary in {run_dir / 'summary.json'}; every process stopped (exit codes {codes})")
    if not success:
        print("hpcrl bench-demo: FAILED (see above and the logs in the run directory)")
    return 0 if success else 1


def _exercise(
    bus: BusConfig,
    size: int,
    children: Children,
    run_dir: Path,
    interrupted: list[bool],
) -> dict[str, Any]:
    from bus.client import BusClient

    started = time.monotonic()
    summary: dict[str, Any] = {"size": size, "submitted": 0, "completed": 0, "as_expected": False}
    seen = _Seen()
    subscribe = ["archive.", "result."]
    with BusClient(bus, ClientConfig(result_timeout_s=RESULTS_TIMEOUT_S), name="demo", subscribe=subscribe) as client:
        # 1. Wait for the bencher to connect (it measures the node's peak first) and for the archive to
        #    announce the first stage; the current stage is the newest `stage.dgemm` the broker journaled.
        print("  broker started; waiting for the bencher (peak probe at start) and the archive (stage 1) ...")
        stage: StageChange | None = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while (client.workers_alive < 1 or stage is None) and not interrupted:
            problem = children.dead()
            if problem is None and time.monotonic() > deadline:
                late = "the bencher did not connect" if client.workers_alive < 1 else "the archive announced no stage"
                problem = f"{late} within {START_TIMEOUT_S:.0f} s; see the logs in {run_dir}"
            if problem is not None:
                print(f"hpcrl bench-demo: {problem}")
                summary["error"] = problem
                return summary
            if stage is None:
                latest = client.latest(["stage."], timeout_s=POLL_S) or []
                stage = next((e for e in latest if isinstance(e, StageChange) and e.problem == PROBLEM), None)
            client.pump(0.1)
        if interrupted or stage is None:
            summary["error"] = "interrupted"
            return summary
        permitted = sorted(stage.techniques)
        summary.update(stage=stage.to_stage, stage_techniques=permitted)
        print(
            f"  bencher and archive up after {time.monotonic() - started:.1f} s; "
            f"{PROBLEM} is in stage {stage.to_stage}, which permits {', '.join(permitted) or 'nothing'}"
        )

        # 2. Submit every candidate for that stage; one bencher takes them in order, so the duplicate
        #    comes after its original and the archive's confirmations after all of them.
        by_id = {
            client.submit(problem=PROBLEM, size=size, source=c.source, run=RUN, stage=stage.to_stage).candidate_id: c
            for c in CANDIDATES
        }
        summary["submitted"] = len(by_id)
        print(f"  submitted {len(by_id)} DGEMM candidates at n={size} for stage {stage.to_stage}:")
        for candidate in CANDIDATES:
            print(f"    {candidate.name:<12} {candidate.what}")
        print()

        # 3. One line per candidate once both its result and its archive status are in.
        shown: list[str] = []

        def show_candidates() -> None:
            for cid in [cid for cid in seen.archived if cid in by_id and cid in seen.results and cid not in shown]:
                result = seen.results[cid]
                if not shown:
                    print(
                        f"  {result.bencher_id}: {result.threads} thread(s) on {result.node_class!r}, reference "
                        f"kernel {result.calibration_gflops:.2f} GFLOPS at n={size} (calibration)\n\n"
                        f"  {'candidate':<12} {'verdict':<14} {'GFLOPS':>8}  {'cell (problem/size/techniques)':<45} "
                        f"{'archive status':<22} outside stage {stage.to_stage}?"
                    )
                shown.append(cid)
                print(_candidate_line(by_id[cid], result, seen.archived[cid], stage))

        error = _follow(
            client,
            seen,
            lambda: [by_id[cid].name for cid in by_id if cid not in seen.archived or cid not in seen.results],
            "result or archive status",
            RESULTS_TIMEOUT_S,
            show_candidates,
            children,
            interrupted,
        )

        # 4. The archive re-measures every would-be best (the bencher bypasses its result cache for them).
        awaiting = [cid for cid in shown if seen.archived[cid].status is AddStatus.AWAITING_CONFIRMATION]
        ranking = sorted(
            (cid for cid in shown if seen.results[cid].verdict is Verdict.OK and not by_id[cid].duplicate_of),
            key=lambda cid: -seen.results[cid].gflops_median,
        )
        best = ranking[0] if ranking else ""
        if awaiting and error is None:
            print(
                f"\n  confirmations: {len(awaiting)} would-be best(s) measured again, the bencher's cache bypassed; "
                "an elite keeps the lower figure:"
            )
            confirmed: list[str] = []

            def show_confirmations() -> None:
                for cid in awaiting:
                    archived = seen.confirmation_of(cid)
                    if cid in confirmed or archived is None or archived.candidate_id not in seen.results:
                        continue
                    confirmed.append(cid)
                    result = seen.results[archived.candidate_id]
                    print(_confirmation_line(by_id[cid], seen.results[cid], result, archived, cid == best))

            error = _follow(
                client,
                seen,
                lambda: [by_id[cid].name for cid in awaiting if cid not in confirmed],
                "confirmation",
                CONFIRMATIONS_TIMEOUT_S,
                show_confirmations,
                children,
                interrupted,
            )
        if error is not None:
            print(f"hpcrl bench-demo: {error}")
            summary["error"] = error
    wall_s = time.monotonic() - started

    # 5. Rank the distinct correct kernels and check every expectation.
    rows = [_row(candidate, cid, seen) for cid, candidate in by_id.items()]
    naive_gflops = next((row["gflops_median"] for row in rows if row["name"] == "naive"), 0.0)
    if ranking:
        print(f"\n  ranking of the correct kernels (n={size}):")
    for place, cid in enumerate(ranking, 1):
        gflops = seen.results[cid].gflops_median
        speedup = f"  {gflops / naive_gflops:5.1f}x naive" if naive_gflops > 0 else ""
        print(f"    {place}. {by_id[cid].name:<12} {gflops:8.2f} GFLOPS{speedup}")
    surprises = [row["name"] for row in rows if not row["as_expected"]]
    counts = Counter(row["verdict"] for row in rows)
    completed = sum(cid in seen.results for cid in by_id)
    confirmations = sum(row["confirmation"] is not None for row in rows)
    print(
        f"\n  {completed}/{len(by_id)} results and {confirmations} confirmations in {wall_s:.1f} s: "
        + ", ".join(f"{count} {verdict}" for verdict, count in sorted(counts.items()))
        + ("; every verdict as expected" if not surprises else f"; NOT as expected: {', '.join(surprises)}")
    )
    summary.update(
        completed=completed,
        wall_s=round(wall_s, 3),
        calibration_gflops=max((seen.results[cid].calibration_gflops for cid in shown), default=0.0),
        counts=dict(counts),
        ranking=[by_id[cid].name for cid in ranking],
        as_expected=completed == len(by_id) and not surprises,
        candidates=rows,
    )
    return summary


def _follow(
    client: BusClient,
    seen: _Seen,
    missing: Callable[[], list[str]],
    what: str,
    timeout_s: float,
    show: Callable[[], None],
    children: Children,
    interrupted: list[bool],
) -> str | None:
    """Take the bus's events and show them until nothing is missing; why not, if it came to that."""
    deadline = time.monotonic() + timeout_s
    while missing():
        if interrupted:
            return "interrupted"
        problem = children.dead()
        if problem is None and time.monotonic() > deadline:
            problem = f"no {what} after {timeout_s:.0f} s for: {', '.join(missing())}"
        if problem is not None:
            return problem
        seen.take(client.next_events(POLL_S))
        show()
    return None


def _show_archive(run_dir: Path, summary: dict[str, Any]) -> None:
    """The archive's store after the run, read-only: what `hpcrl elites`, `hpcrl stages` and
    `hpcrl archive report` show."""
    from archive.report import write_report
    from archive.store import ArchiveStore, StoreError

    db = run_dir / "archive.sqlite"
    try:
        store = ArchiveStore(db, readonly=True)
    except StoreError as error:
        print(f"hpcrl bench-demo: cannot read the archive: {error}")
        summary["error"] = summary.get("error") or str(error)
        return
    try:
        names = {row["candidate_id"]: row["name"] for row in summary.get("candidates", [])}
        elites = store.elites(PROBLEM)
        print(f"\n  elites (hpcrl elites --db {db}):")
        for elite in elites:
            name = names.get(elite.candidate_id, elite.candidate_id)
            print(f"    {elite.objective:10.2f} GFLOPS  {elite.cell:<45} {name}  (stage {elite.stage})")
        changes = store.stage_changes(PROBLEM)
        current = changes[-1] if changes else None
        if current is not None:
            in_stage = store.stage_counts().get((PROBLEM, current.to_stage), 0)
            print(
                f"  stage (hpcrl stages): {PROBLEM} in stage {current.to_stage} ({current.reason}) with {in_stage} "
                f"results stored; it permits {', '.join(current.techniques) or 'nothing'}"
            )
        paths = write_report(store, RUN, run_dir)
    finally:
        store.close()
    print(f"  report (hpcrl archive report {RUN}): {', '.join(path.name for path in paths) or 'nothing to draw'}")
    summary.update(
        elites=[
            {
                "name": names.get(elite.candidate_id, ""),
                "candidate_id": elite.candidate_id,
                "cell": elite.cell,
                "techniques": list(elite.techniques),
                "objective": elite.objective,
                "stage": elite.stage,
            }
            for elite in elites
        ],
        current_stage=current.to_stage if current else 0,
        report=[str(path) for path in paths],
    )
    # The best kernel's cell must hold an elite (its own, or its duplicate's if that measured higher).
    best = next((row for row in summary.get("candidates", []) if row["name"] in summary.get("ranking", [])[:1]), None)
    if summary.get("error"):
        return
    if not paths or best is None or best["cell"] not in {elite.cell for elite in elites}:
        summary["as_expected"] = False
        print("hpcrl bench-demo: the best kernel's cell holds no elite, or the report is empty")


def _row(candidate: DemoCandidate, candidate_id: str, seen: _Seen) -> dict[str, Any]:
    """A candidate's entry in summary.json: what was expected, what the bencher and the archive said."""
    result = seen.results.get(candidate_id)
    archived = seen.archived.get(candidate_id)
    confirmation = seen.confirmation_of(candidate_id)
    remeasured = seen.results.get(confirmation.candidate_id) if confirmation else None
    verdict = result.verdict.value if result else "missing"
    cached = bool(result and result.cached)
    awaiting = archived is not None and archived.status is AddStatus.AWAITING_CONFIRMATION
    confirmed_fresh = not awaiting or (remeasured is not None and not remeasured.cached)
    return {
        "name": candidate.name,
        "candidate_id": candidate_id,
        "expected": candidate.expected.value,
        "verdict": verdict,
        "as_expected": verdict == candidate.expected
        and (cached or not candidate.duplicate_of)
        and archived is not None
        and confirmed_fresh,
        "gflops_median": result.gflops_median if result else 0.0,
        "cv": result.cv if result else 0.0,
        "repetitions": result.repetitions if result else 0,
        "cached": cached,
        "duplicate_of": candidate.duplicate_of,
        "detail": result.detail if result else "",
        "techniques": list(archived.techniques) if archived else [],
        "parse_error": archived.parse_error if archived else "",
        "cell": archived.cell if archived else "",
        "status": archived.status.value if archived else "missing",
        "outside_stage": archived.outside_stage if archived else False,
        "confirmation": None
        if confirmation is None
        else {
            "candidate_id": confirmation.candidate_id,
            "verdict": confirmation.verdict.value,
            "gflops_median": remeasured.gflops_median if remeasured else 0.0,
            "cached": bool(remeasured and remeasured.cached),
            "status": confirmation.status.value,
            "objective": confirmation.objective,
        },
    }


def _candidate_line(candidate: DemoCandidate, result: Result, archived: Archived, stage: StageChange) -> str:
    verdict = result.verdict.value + (" (cached)" if result.cached else "")
    gflops = f"{result.gflops_median:8.2f}" if result.verdict is Verdict.OK else ""
    outside = ""
    if archived.outside_stage:
        outside = "yes: " + (", ".join(sorted(set(archived.techniques) - set(stage.techniques))) or "?")
    status = archived.status.value
    line = f"  {candidate.name:<12} {verdict:<14} {gflops:>8}  {archived.cell:<45} {status:<22} {outside}".rstrip()
    if result.verdict is not candidate.expected:
        line += f"  <- expected {candidate.expected.value}"
    elif candidate.duplicate_of and not result.cached:
        line += f"  <- expected from the result cache (a repeat of {candidate.duplicate_of})"
    if result.verdict is not Verdict.OK:
        line += f"\n  {'':<12} {_short(result.detail)}"
    return line


def _confirmation_line(candidate: DemoCandidate, first: Result, again: Result, archived: Archived, best: bool) -> str:
    if again.verdict is Verdict.OK:
        measured = f"{again.gflops_median:8.2f} GFLOPS (first {first.gflops_median:.2f})"
    else:
        measured = f"{again.verdict.value} (first ok at {first.gflops_median:.2f} GFLOPS)"
    if archived.status in (AddStatus.NEW, AddStatus.IMPROVE_EXISTING):
        outcome = f"elite at {archived.objective:.2f} GFLOPS ({archived.status.value})"
    elif again.verdict is Verdict.OK:
        outcome = "not_added: its cell holds a better elite"
    else:
        outcome = "not_added: refuted"
    line = f"    {candidate.name:<12} {measured:<38} -> {outcome}"
    if again.cached:
        line += "  <- answered from the result cache, expected a fresh measurement"
    return line + ("  <- the best" if best else "")


def _short(detail: str, width: int = 100) -> str:
    """The line of a detail that says the most (a compiler's first error), cut to width."""
    line = first_useful_line(detail)
    return line if len(line) <= width else line[: width - 3] + "..."
