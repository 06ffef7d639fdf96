"""`hpcrl demo`: start a local system on embedded defaults and push a real candidate through it.

Until the bencher, archive and trainer exist (issues 3-5) the system is the broker plus a stand-in
test worker: the demo shows the bus working end to end (submit -> queue -> worker -> journaled
result -> event stream) and leaves the logs and the journal in the run directory.
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
from pathlib import Path

from bus.config import BusConfig, ClientConfig

SAMPLE_DGEMM = """\
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
STOP_TIMEOUT_S = 10.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl demo", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="directory for logs, journal and summary (default: a new temp dir)")
    parser.add_argument("--candidates", type=int, default=8, help="candidates to send through the bus")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="hpcrl-demo-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    bus = BusConfig(request_endpoint=f"ipc://{run_dir}/request.sock", event_endpoint=f"ipc://{run_dir}/event.sock")
    env = {
        **os.environ,
        "HPCRL_BUS__REQUEST_ENDPOINT": bus.request_endpoint,
        "HPCRL_BUS__EVENT_ENDPOINT": bus.event_endpoint,
    }
    hpcrl = [sys.executable, "-m", "ops.cli"]
    started: list[subprocess.Popen[bytes]] = []

    def launch(name: str, *arguments: str) -> None:
        log = open(run_dir / f"{name}.log", "wb")
        started.append(subprocess.Popen([*hpcrl, *arguments], env=env, stdout=log, stderr=subprocess.STDOUT))

    interrupted: list[bool] = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    signal.signal(signal.SIGTERM, lambda *_: interrupted.append(True))
    print(f"hpcrl demo: run directory {run_dir}")
    try:
        launch("bus", "bus", "--journal", str(run_dir / "journal.sqlite"))
        launch("test-worker", "test-worker", "--name", "test-worker-1")
        summary = _exercise(bus, args.candidates, interrupted)
    finally:
        codes = _stop_all(started)
    summary["exit_codes"] = codes
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"hpcrl demo: summary in {run_dir / 'summary.json'}; every process stopped (exit codes {codes})")
    return 0 if summary.get("completed") == args.candidates and not any(codes) else 1


def _exercise(bus: BusConfig, count: int, interrupted: list[bool]) -> dict[str, object]:
    from bus.client import BusClient

    started = time.monotonic()
    with BusClient(bus, ClientConfig(result_timeout_s=30.0), name="demo") as client:
        deadline = time.monotonic() + 30
        while client.workers_alive < 1 and time.monotonic() < deadline and not interrupted:
            client.pump(0.1)
        print(f"  broker up, {client.workers_alive} worker(s) connected")
        ids = [
            client.submit(problem="dgemm", size=256, source=SAMPLE_DGEMM, run="demo").candidate_id for _ in range(count)
        ]
        print(f"  submitted {len(ids)} candidates (naive DGEMM, n=256)")
        results = {}
        while len(results) < len(ids) and time.monotonic() < deadline and not interrupted:
            results.update(client.wait_results(ids, timeout_s=0.5))
        for result in sorted(results.values(), key=lambda r: r.bus_seq)[:3]:
            print(
                f"  result bus_seq={result.bus_seq} candidate={result.candidate_id[:8]} "
                f"verdict={result.verdict.value} worker={result.bencher_id}: {result.detail}"
            )
    wall_s = time.monotonic() - started
    print(f"  {len(results)}/{len(ids)} results back in {wall_s:.2f} s, each journaled and published once")
    print(
        "  (the test worker compiles and runs nothing, so every verdict is an honest infra_error;"
        " the bencher replaces it)"
    )
    return {"submitted": len(ids), "completed": len(results), "wall_s": round(wall_s, 3)}


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> list[int]:
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes = []
    for process in reversed(processes):
        try:
            codes.append(process.wait(STOP_TIMEOUT_S))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes
