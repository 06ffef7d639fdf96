"""`hpcrl submit`: one C file through a real broker and bencher; exit 0 with any verdict, 1 when no result
came back in time (saying where the candidate is), 2 for usage errors."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from bus.schema import MAX_SOURCE_BYTES
from tests.bencher_support import CORPUS
from tests.conftest import HPCRL, REPO, BusSite, Processes
from tests.test_bencher_daemon import start_bencher
from tests.test_reliability import client_for, wait_workers

SUBMIT_TIMEOUT_S = 30
RUN_TIMEOUT_S = 60
NO_WORKER_TIMEOUT_S = 1.5
START_AND_CLOSE_S = 8.0
"""Generous bound on interpreter start-up and a clean close, on top of --timeout-s."""


def submit(site: BusSite, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HPCRL, "submit", *args], cwd=REPO, env=site.env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


def test_submit_prints_the_verdict_and_gflops_of_a_correct_dgemm_and_compile_error_of_a_broken_one(
    site: BusSite, processes: Processes
) -> None:
    processes.broker()
    start_bencher(processes, "b1")
    with client_for(site) as client:
        wait_workers(client, 1, timeout_s=30)

    ok = submit(site, str(CORPUS / "ok_naive.c"), "--size", "128", "--timeout-s", str(SUBMIT_TIMEOUT_S))
    assert ok.returncode == 0, ok.stderr
    line = ok.stdout.strip()
    assert len(line.splitlines()) == 1, f"one readable line, got {ok.stdout!r}"
    assert line.startswith("ok ") and " GFLOPS " in line and "on b1" in line, line
    assert float(line.split()[1]) > 0

    broken = CORPUS / "compile_error_missing_semicolon.c"
    done = submit(site, str(broken), "--size", "128", "--json", "--run", "cli-test", "--timeout-s", "30")
    assert done.returncode == 0, "a result came back: exit 0 whatever its verdict"
    result = json.loads(done.stdout)
    assert result["kind"] == "result" and result["topic"] == "result.dgemm"
    assert result["verdict"] == "compile_error" and result["gflops_median"] == 0.0
    assert result["run"] == "cli-test" and result["size"] == 128 and result["bencher_id"] == "b1"
    assert result["source"] == broken.read_text()
    assert "error: expected ';'" in result["detail"]

    readable = submit(site, str(broken), "--size", "128", "--candidate-id", result["candidate_id"])
    assert readable.returncode == 0, readable.stderr
    assert readable.stdout.startswith("compile_error "), "a finished candidate id gets its journaled result back"
    assert "error: expected ';'" in readable.stdout, "the readable line shows the compiler's error line"


def test_submit_without_a_worker_exits_1_in_time_and_the_candidate_stays_queued(
    site: BusSite, processes: Processes, tmp_path: Path
) -> None:
    processes.broker()
    source = tmp_path / "mm.c"
    source.write_text((CORPUS / "ok_naive.c").read_text())
    started = time.monotonic()
    done = submit(site, str(source), "--candidate-id", "queued-1", "--timeout-s", str(NO_WORKER_TIMEOUT_S))
    assert time.monotonic() - started < NO_WORKER_TIMEOUT_S + START_AND_CLOSE_S
    assert done.returncode == 1 and done.stdout == ""
    assert "no result within 1.5 s" in done.stderr
    assert "no live worker" in done.stderr
    assert "stays queued" in done.stderr and "queued-1" in done.stderr and "result.dgemm" in done.stderr

    processes.worker("w1")  # the queued candidate goes to the first worker; waiting again finds its result
    again = submit(site, str(source), "--candidate-id", "queued-1", "--json", "--timeout-s", str(SUBMIT_TIMEOUT_S))
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["candidate_id"] == "queued-1" and result["bencher_id"] == "w1"
    assert result["verdict"] == "infra_error"  # the test worker runs nothing


def test_submit_without_a_broker_exits_1_and_says_nothing_was_queued(site: BusSite, tmp_path: Path) -> None:
    source = tmp_path / "mm.c"
    source.write_text("void dgemm(int n, const double *A, const double *B, double *C) {}\n")
    done = submit(site, str(source), "--timeout-s", "1")
    assert done.returncode == 1
    assert "never acknowledged" in done.stderr and "not queued" in done.stderr


def test_submit_exits_2_for_a_missing_or_oversized_file_and_bad_arguments(site: BusSite, tmp_path: Path) -> None:
    source = tmp_path / "mm.c"
    source.write_text("void dgemm(int n, const double *A, const double *B, double *C) {}\n")
    huge = tmp_path / "huge.c"
    huge.write_text("/*" + "x" * MAX_SOURCE_BYTES + "*/\n")
    cases = {
        "cannot read": [str(tmp_path / "missing.c")],
        "a candidate may have": [str(huge)],
        "--size 0": [str(source), "--size", "0"],
        "--problem 'DGEMM.x'": [str(source), "--problem", "DGEMM.x"],
        "--timeout-s must be > 0": [str(source), "--timeout-s", "0"],
    }
    for message, args in cases.items():
        done = submit(site, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert done.stdout == ""
