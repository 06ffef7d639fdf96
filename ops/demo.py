"""`hpcrl demo`: run the broker and a real bencher locally and push a set of DGEMM candidates through them.

The demo starts `hpcrl bus` and one `hpcrl bencher` (its build and result caches in the run directory; it
measures the reference kernel at start, so every result carries calibration_gflops), submits the embedded
candidates below at n=256 and prints one line per result, then a ranking of the correct ones. The set
covers what the system does with model-written code: it times correct kernels from naive to OpenMP,
answers a repeated kernel from the result cache, and returns wrong_answer, compile_error and rejected
for the rest. It writes summary.json and the logs (bus.log, bencher.log) and the journal into the run
directory, stops every process and exits 0 when every candidate got its expected verdict and every
process exited 0. About 10 s on 2 cores; every wait is bounded, and a bencher that cannot start (no
bubblewrap) is reported with its fix.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus.config import BusConfig, ClientConfig
from bus.schema import Result, Verdict

START_TIMEOUT_S = 60.0
"""How long the broker and the bencher may take to come up (the bencher measures the node's peak first)."""
RESULTS_TIMEOUT_S = 120.0
"""How long all results may take once submitted, calibration included (about 10 s on 2 cores)."""
BENCHER_DRAIN_TIMEOUT_S = 5.0
"""On stop, how long the bencher may finish an in-flight candidate before handing it back."""
STOP_TIMEOUT_S = BENCHER_DRAIN_TIMEOUT_S + 10.0
"""How long a process may take to exit after SIGTERM before it is killed."""
SIZES = (128, 256, 512)
"""Sizes the demo offers: larger ones make the naive kernel take minutes."""
SETUP_FIX = "./quickstart setup installs bubblewrap (the bencher's sandbox) and the other system packages"


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
        "the tiled kernel re-commented: same normalized source",
        "/* the tiled kernel again */\n" + TILED,
        duplicate_of="tiled",
    ),
    DemoCandidate("wrong", Verdict.WRONG_ANSWER, "naive with B transposed by mistake", WRONG),
    DemoCandidate("broken", Verdict.COMPILE_ERROR, "a missing semicolon", BROKEN),
    DemoCandidate("cheater", Verdict.REJECTED, "calls clock_gettime", CHEATER),
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl demo", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="directory for logs, journal, caches and summary (default: a new temp dir)")
    parser.add_argument("--size", type=int, default=256, choices=SIZES, help="matrix size n (default: 256)")
    args = parser.parse_args(argv)
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
    }
    hpcrl = [sys.executable, "-m", "ops.cli"]
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def launch(name: str, *arguments: str) -> None:
        with open(run_dir / f"{name}.log", "wb") as log:
            processes[name] = subprocess.Popen([*hpcrl, *arguments], env=env, stdout=log, stderr=subprocess.STDOUT)

    interrupted: list[bool] = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    signal.signal(signal.SIGTERM, lambda *_: interrupted.append(True))
    print(f"hpcrl demo: run directory {run_dir}")
    try:
        launch("bus", "bus", "--journal", str(run_dir / "journal.sqlite"))
        launch("bencher", "bencher", "--name", "bencher-1")
        summary = _exercise(bus, args.size, processes, run_dir, interrupted)
    finally:
        codes = _stop_all(processes)
    summary["exit_codes"] = codes
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    success = bool(summary["as_expected"]) and not any(codes.values())
    print(f"hpcrl demo: summary in {run_dir / 'summary.json'}; every process stopped (exit codes {codes})")
    if not success:
        print("hpcrl demo: FAILED (see above and the logs in the run directory)")
    return 0 if success else 1


def _exercise(
    bus: BusConfig,
    size: int,
    processes: dict[str, subprocess.Popen[bytes]],
    run_dir: Path,
    interrupted: list[bool],
) -> dict[str, object]:
    from bus.client import BusClient

    started = time.monotonic()
    summary: dict[str, object] = {"size": size, "submitted": 0, "completed": 0, "as_expected": False}
    with BusClient(bus, ClientConfig(result_timeout_s=RESULTS_TIMEOUT_S), name="demo") as client:
        # 1. Wait for the bencher to connect (it measures the node's peak first), or for it to die.
        print("  broker started; waiting for the bencher (peak probe at start) ...")
        deadline = time.monotonic() + START_TIMEOUT_S
        while client.workers_alive < 1 and not interrupted:
            problem = _dead_process(processes, run_dir)
            if problem is None and time.monotonic() > deadline:
                problem = f"the bencher did not connect within {START_TIMEOUT_S:.0f} s; see {run_dir / 'bencher.log'}"
            if problem is not None:
                print(f"hpcrl demo: {problem}")
                summary["error"] = problem
                return summary
            client.pump(0.1)
        if interrupted:
            summary["error"] = "interrupted"
            return summary
        print(f"  bencher connected after {time.monotonic() - started:.1f} s; it calibrates, then takes candidates")

        # 2. Submit every candidate; one bencher takes them in order, so the duplicate comes after its original.
        by_id = {
            client.submit(problem="dgemm", size=size, source=c.source, run="demo").candidate_id: c for c in CANDIDATES
        }
        summary["submitted"] = len(by_id)
        print(f"  submitted {len(by_id)} DGEMM candidates at n={size}:")
        for candidate in CANDIDATES:
            print(f"    {candidate.name:<12} {candidate.what}")
        print()

        # 3. Print each result as it arrives.
        results: dict[str, Result] = {}
        deadline = time.monotonic() + RESULTS_TIMEOUT_S
        while len(results) < len(by_id) and not interrupted:
            problem = _dead_process(processes, run_dir)
            if problem is None and time.monotonic() > deadline:
                problem = f"{len(by_id) - len(results)} result(s) missing after {RESULTS_TIMEOUT_S:.0f} s"
            if problem is not None:
                print(f"hpcrl demo: {problem}")
                summary["error"] = problem
                break
            missing = [cid for cid in by_id if cid not in results]
            arrived = client.wait_results(missing, timeout_s=0.5)
            for cid, result in sorted(arrived.items(), key=lambda item: item[1].bus_seq):
                if not results:
                    print(
                        f"  {result.bencher_id}: {result.threads} thread(s) on {result.node_class!r}, "
                        f"reference kernel {result.calibration_gflops:.2f} GFLOPS at n={size} (calibration)"
                    )
                results[cid] = result
                print(_result_line(by_id[cid], result))
    wall_s = time.monotonic() - started

    # 4. Rank the distinct correct kernels and check every expectation.
    rows = [_row(candidate, results.get(cid)) for cid, candidate in by_id.items()]
    ranking = sorted(
        (row for row in rows if row["verdict"] == Verdict.OK and not row["duplicate_of"]),
        key=lambda row: -row["gflops_median"],
    )
    naive_gflops = next((row["gflops_median"] for row in rows if row["name"] == "naive"), 0.0)
    if ranking:
        print(f"\n  ranking of the correct kernels (n={size}):")
    for place, row in enumerate(ranking, 1):
        gflops = row["gflops_median"]
        speedup = f"  {gflops / naive_gflops:5.1f}x naive" if naive_gflops > 0 else ""
        print(f"    {place}. {row['name']:<12} {gflops:8.2f} GFLOPS{speedup}")
    surprises = [row["name"] for row in rows if not row["as_expected"]]
    counts = Counter(str(row["verdict"]) for row in rows)
    print(
        f"\n  {len(results)}/{len(by_id)} results in {wall_s:.1f} s: "
        + ", ".join(f"{count} {verdict}" for verdict, count in sorted(counts.items()))
        + ("; every verdict as expected" if not surprises else f"; NOT as expected: {', '.join(surprises)}")
    )
    summary.update(
        completed=len(results),
        wall_s=round(wall_s, 3),
        calibration_gflops=max((r.calibration_gflops for r in results.values()), default=0.0),
        counts=dict(counts),
        ranking=[row["name"] for row in ranking],
        as_expected=len(results) == len(by_id) and not surprises,
        candidates=rows,
    )
    return summary


def _row(candidate: DemoCandidate, result: Result | None) -> dict[str, Any]:
    """A candidate's entry in summary.json: what was expected and what came back."""
    verdict = result.verdict.value if result else "missing"
    cached = bool(result and result.cached)
    return {
        "name": candidate.name,
        "expected": candidate.expected.value,
        "verdict": verdict,
        "as_expected": verdict == candidate.expected and (cached or not candidate.duplicate_of),
        "gflops_median": result.gflops_median if result else 0.0,
        "cv": result.cv if result else 0.0,
        "repetitions": result.repetitions if result else 0,
        "cached": cached,
        "duplicate_of": candidate.duplicate_of,
        "detail": result.detail if result else "",
    }


def _result_line(candidate: DemoCandidate, result: Result) -> str:
    gflops = f"{result.gflops_median:8.2f} GFLOPS  cv {result.cv:5.1%}" if result.verdict is Verdict.OK else ""
    line = f"  {candidate.name:<12} {result.verdict.value:<14} {gflops:<26} {'cached' if result.cached else '':<6}  "
    line += _short(result.detail)
    if result.verdict is not candidate.expected:
        line += f"  <- expected {candidate.expected.value}"
    elif candidate.duplicate_of and not result.cached:
        line += f"  <- expected from the result cache (a repeat of {candidate.duplicate_of})"
    return line


def _short(detail: str, width: int = 100) -> str:
    """The line of a detail that says the most (a compiler's first error), cut to width."""
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    line = next((line for line in lines if "error" in line), lines[0] if lines else "")
    return line if len(line) <= width else line[: width - 3] + "..."


def _dead_process(processes: dict[str, subprocess.Popen[bytes]], run_dir: Path) -> str | None:
    """Why the demo cannot go on if a process has exited (with the fix when we know it), else None."""
    for name, process in processes.items():
        code = process.poll()
        if code is None:
            continue
        log = run_dir / f"{name}.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        reason = next((line.split("error=", 1)[-1] for line in lines if "event=cannot_start" in line), None)
        if reason is None:
            return f"{name} exited with status {code}; the end of its log ({log}):\n    " + "\n    ".join(lines[-5:])
        message = f"the {name} could not start (exit status {code}): {reason}"
        if name == "bencher" and ("not found" in reason or "not installed" in reason):
            message += f"\n  fix: {SETUP_FIX}"
        return message + f"\n  log: {log}"
    return None


def _stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> dict[str, int]:
    """SIGTERM every process (the last started first), wait for each, kill what does not stop."""
    names = list(reversed(processes))
    for name in names:
        if processes[name].poll() is None:
            processes[name].send_signal(signal.SIGTERM)
    codes = {}
    for name in names:
        try:
            codes[name] = processes[name].wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            processes[name].kill()
            codes[name] = processes[name].wait()
    return codes
