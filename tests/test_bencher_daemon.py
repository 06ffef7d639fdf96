"""`hpcrl bencher` under the bus: real broker and bencher processes on loopback, candidates in,
measured results out, and no candidate lost to kill -9, a broker restart or SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from bus.schema import Verdict
from tests.bencher_support import CORPUS, reap_orphaned_sandbox_zombies, sandbox_processes
from tests.conftest import BusSite, Processes, free_port, log_of, scrape, wait_for
from tests.proc_support import alive
from tests.test_reliability import client_for, wait_workers

NAIVE = (CORPUS / "ok_naive.c").read_text()
# Correct but slow: about 1.5 s per call at n = 512, a window to kill or stop the bencher mid-run.
SLOW = """
void dgemm(int n, const double *A, const double *B, double *C) {
    for (int repeat = 0; repeat < 5; repeat++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int k = 0; k < n; k++) s += A[i*n+k] * B[k*n+j];
                C[i*n+j] = s;
            }
}
"""


def bencher_env(site: BusSite, **extra: str) -> dict[str, str]:
    env = {
        **site.env,
        "HPCRL_BENCHER__CACHE_DIR": str(site.workdir / "bencher-cache"),
        "HPCRL_BENCHER__RESULT_CACHE": "false",
        "HPCRL_BENCHER__MIN_REPS": "2",
        "HPCRL_BENCHER__MAX_MEASURE_S": "0.2",
        "HPCRL_BENCHER__CALL_TIMEOUT_MAX_S": "5",
        "HPCRL_BENCHER__CALIBRATION_INTERVAL_S": "0",
        "HPCRL_BENCHER__DRAIN_TIMEOUT_S": "10",
    }
    env.update({f"HPCRL_BENCHER__{key.upper()}": value for key, value in extra.items()})
    return env


def start_bencher(processes: Processes, name: str, **extra: str) -> subprocess.Popen[bytes]:
    return processes.start("bencher", "--name", name, env=bencher_env(processes.site, **extra))


def wait_running(site: BusSite, name: str, timeout_s: float = 20.0) -> None:
    wait_for(lambda: "event=candidate" in log_of(site, "bencher"), timeout_s, f"{name} to start a candidate")


def test_the_daemon_measures_candidates_and_reports_where_it_ran(site: BusSite, processes: Processes) -> None:
    metrics_port = free_port()
    processes.broker()
    env = bencher_env(
        processes.site, metrics_port=str(metrics_port), calibration_interval_s="600", calibration_size="128"
    )
    # As if started by `sbatch --cpus-per-task=1`: the job id travels with results, the thread count is obeyed.
    bencher = processes.start(
        "bencher", "--name", "b1", env={**env, "SLURM_JOB_ID": "4242", "SLURM_CPUS_PER_TASK": "1"}
    )
    sources = {
        "ok": NAIVE,
        "compile_error": (CORPUS / "compile_error_missing_semicolon.c").read_text(),
        "rejected": "#include <unistd.h>\n" + NAIVE,
        "wrong_answer": NAIVE.replace("C[i * n + j] = ", "C[i * n + j] = 1.0 + ").replace(
            "C[i*n+j] = ", "C[i*n+j] = 1.0 + "
        ),
    }
    with client_for(site) as client:
        wait_workers(client, 1, timeout_s=30)
        ids = {
            verdict: client.submit(problem="dgemm", size=128, source=src).candidate_id
            for verdict, src in sources.items()
        }
        results = client.wait_results(ids.values(), timeout_s=60)
    assert len(results) == len(sources)
    for verdict, cid in ids.items():
        result = results[cid]
        assert result.verdict.value == verdict, (verdict, result.detail)
        assert result.bencher_id == "b1" and result.host and result.node_class
        assert result.slurm_job_id == "4242" and result.threads == 1
    ok = results[ids["ok"]]
    assert ok.gflops_median > 0 and ok.repetitions >= 2 and ok.calibration_gflops > 0
    samples = scrape(metrics_port)
    assert samples['hpcrl_bencher_candidates_total{verdict="ok"}'] == 2.0  # the candidate and the calibration
    assert samples['hpcrl_bencher_candidates_total{verdict="compile_error"}'] == 1.0
    assert samples["hpcrl_bencher_calibration_gflops"] == ok.calibration_gflops
    assert 0 < samples["hpcrl_bencher_busy_ratio"] <= 1 and samples["hpcrl_bencher_last_ok_gflops"] > 0
    assert processes.stop(bencher) == 0


def test_a_bencher_killed_mid_benchmark_loses_no_candidate(site: BusSite, processes: Processes) -> None:
    processes.broker()
    first = start_bencher(processes, "b1", warmup_reps="0", min_reps="1")
    with client_for(site) as client:
        wait_workers(client, 1, timeout_s=30)
        cid = client.submit(problem="dgemm", size=512, source=SLOW).candidate_id
        wait_running(site, "b1")
        sandboxed = wait_for(lambda: sandbox_processes(first.pid), 10, "the candidate's sandbox to start")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        pids = [line.split(":")[0] for line in sandboxed]  # type: ignore[union-attr]
        # Dead, zombies included: when an earlier test made pytest a child subreaper (an in-process Sandbox),
        # the orphaned sandbox is reparented to pytest, which never reaps it.
        wait_for(lambda: not any(alive(int(pid)) for pid in pids), 10, "the sandbox to die with it")
        reap_orphaned_sandbox_zombies()  # else every later leak check in this session counts them
        start_bencher(processes, "b2", warmup_reps="0", min_reps="1")
        result = client.wait_result(cid, timeout_s=60)
    assert result is not None and result.verdict is Verdict.OK and result.bencher_id == "b2", result


def test_the_bencher_reconnects_after_a_broker_restart(site: BusSite, processes: Processes) -> None:
    broker = processes.broker()
    bencher = start_bencher(processes, "b1")
    with client_for(site) as client:
        wait_workers(client, 1, timeout_s=30)
        first = client.submit(problem="dgemm", size=128, source=NAIVE).candidate_id
        assert client.wait_result(first, timeout_s=30) is not None
        assert processes.stop(broker) == 0
        processes.broker()
        second = client.submit(problem="dgemm", size=128, source=NAIVE + "\n/* again */").candidate_id
        result = client.wait_result(second, timeout_s=60)
    assert result is not None and result.verdict is Verdict.OK and result.bencher_id == "b1"
    assert bencher.poll() is None


def test_sigterm_hands_back_a_run_that_cannot_finish_in_the_drain_time(site: BusSite, processes: Processes) -> None:
    processes.broker()
    first = start_bencher(processes, "b1", warmup_reps="0", min_reps="1", drain_timeout_s="0.2")
    with client_for(site) as client:
        wait_workers(client, 1, timeout_s=30)
        cid = client.submit(problem="dgemm", size=512, source=SLOW).candidate_id
        wait_running(site, "b1")
        sandboxed = wait_for(lambda: sandbox_processes(first.pid), 10, "the candidate's sandbox to start")
        assert processes.stop(first, timeout_s=20) == 0
        assert "event=released" in log_of(site, "bencher")
        assert not any(Path(f"/proc/{line.split(':')[0]}").exists() for line in sandboxed)  # type: ignore[union-attr]
        start_bencher(processes, "b2", warmup_reps="0", min_reps="1")
        result = client.wait_result(cid, timeout_s=60)
    assert result is not None and result.verdict is Verdict.OK and result.bencher_id == "b2"


def test_sigterm_lets_a_short_run_finish_and_report(site: BusSite, processes: Processes) -> None:
    processes.broker()
    bencher = start_bencher(processes, "b1", warmup_reps="0", min_reps="1", drain_timeout_s="20")
    with client_for(site) as client:
        wait_workers(client, 1, timeout_s=30)
        cid = client.submit(problem="dgemm", size=512, source=SLOW).candidate_id
        wait_running(site, "b1")
        assert processes.stop(bencher, timeout_s=30) == 0
        result = client.wait_result(cid, timeout_s=10)
    assert result is not None and result.verdict is Verdict.OK and result.bencher_id == "b1"


def test_the_daemon_survives_hostile_candidates(site: BusSite, processes: Processes) -> None:
    processes.broker()
    bencher = start_bencher(processes, "b1")
    hostile = sorted(p for p in CORPUS.glob("*.c") if not p.name.startswith("ok_"))[:12]
    with client_for(site) as client:
        wait_workers(client, 1, timeout_s=30)
        ids = [client.submit(problem="dgemm", size=128, source=p.read_text()).candidate_id for p in hostile]
        ids.append(client.submit(problem="dgemm", size=128, source=NAIVE).candidate_id)
        results = client.wait_results(ids, timeout_s=120)
    assert len(results) == len(ids)
    assert results[ids[-1]].verdict is Verdict.OK
    assert not any(r.verdict is Verdict.INFRA_ERROR for r in results.values())
    assert bencher.poll() is None


def test_bench_file_prints_json_and_exits_zero_for_any_verdict(tmp_path: Path) -> None:
    env = {**os.environ, "HPCRL_BENCHER__CACHE_DIR": str(tmp_path / "cache"), "HPCRL_BENCHER__MAX_MEASURE_S": "0.1"}
    import json

    from tests.conftest import HPCRL, REPO

    def bench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HPCRL, "bench-file", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
        )

    good = bench(str(CORPUS / "ok_naive.c"), "--size", "128", "--json")
    assert good.returncode == 0, good.stderr
    report = json.loads(good.stdout)
    assert report["verdict"] == "ok" and report["gflops"] > 0 and "detail" in report
    assert report["peak_gflops"] > report["gflops"] and report["isa"] in report["node_class"], "the peak it used"
    assert report["march"] == "native"
    bad = bench(str(CORPUS / "compile_error_missing_semicolon.c"), "--size", "128", "--json")
    assert bad.returncode == 0 and json.loads(bad.stdout)["verdict"] == "compile_error"
    human = bench(str(CORPUS / "ok_naive.c"), "--size", "128")
    assert human.returncode == 0 and "verdict: ok" in human.stdout and "cached: True" in human.stdout
    started = time.monotonic()
    for args, message in [
        ((str(tmp_path / "missing.c"),), "cannot read"),
        ((str(CORPUS / "ok_naive.c"), "--problem", "sgemm"), "unknown problem"),
        ((str(CORPUS / "ok_naive.c"), "--size", "100"), "choose one of"),
    ]:
        usage = bench(*args)
        assert usage.returncode == 2 and message in usage.stderr, usage.stderr
    assert time.monotonic() - started < 60


def test_a_bad_bencher_setting_stops_the_daemon_at_start_with_the_fix(tmp_path: Path) -> None:
    from tests.conftest import HPCRL, REPO

    config = tmp_path / "hpcrl.toml"
    for toml, message in [
        ("[bencher]\nthreads = -1\n", "bencher.threads must be >= 0"),
        ("[bencher]\ncolour = 'red'\n", "unknown setting(s) ['colour']"),
        ("[bencher]\ncompiler = 'icc'\n", "use 'gcc', 'clang'"),
    ]:
        config.write_text(toml)
        for command in ("bencher", "bench-file"):
            args = [command, "--config", str(config)] + (
                [str(CORPUS / "ok_naive.c")] if command == "bench-file" else []
            )
            done = subprocess.run([*HPCRL, *args], capture_output=True, text=True, cwd=REPO, timeout=60)
            assert done.returncode == 2 and message in done.stderr, (command, done.stderr)


def test_a_bencher_on_any_free_port_keeps_its_prometheus_target_file_while_it_runs(
    site: BusSite, processes: Processes
) -> None:
    import json

    sd_dir = site.workdir / "prometheus-targets"
    sd_dir.mkdir()
    processes.broker()
    env = bencher_env(site, metrics_port="-1", metrics_sd_dir=str(sd_dir))
    bencher = processes.start("bencher", "--name", "b1", env={**env, "SLURM_JOB_ID": "4242"})
    target_file = sd_dir / "b1.json"
    wait_for(target_file.exists, 30, "the bencher's target file")
    [group] = json.loads(target_file.read_text())
    [target] = group["targets"]
    host, _, port = target.rpartition(":")
    assert host == "127.0.0.1" and f"port={port}" in log_of(site, "bencher")
    assert group["labels"]["role"] == "bencher" and group["labels"]["bencher"] == "b1"
    assert group["labels"]["slurm_job_id"] == "4242" and group["labels"]["node_class"]
    assert 'hpcrl_bencher_candidates_total{verdict="ok"}' in scrape(int(port))  # the port is really ours
    assert [p.name for p in sd_dir.iterdir()] == ["b1.json"]  # no temporary file left behind
    assert processes.stop(bencher, timeout_s=30) == 0
    assert not target_file.exists()


def test_metrics_settings_that_cannot_work_stop_the_bencher_at_start_with_the_fix(
    site: BusSite, processes: Processes
) -> None:
    sd_dir = site.workdir / "targets"
    sd_dir.mkdir()
    cases = [
        ({"metrics_port": "-1"}, (), "needs bencher.metrics_sd_dir"),
        ({"metrics_sd_dir": str(sd_dir)}, (), "metrics_port = 0 disables it"),
        ({"metrics_port": "-1", "metrics_sd_dir": str(sd_dir / "missing")}, (), "is not a writable directory"),
        ({"metrics_port": "-2"}, (), "is not a TCP port"),
        ({}, ("--metrics-port", "-1"), "needs bencher.metrics_sd_dir"),  # the flag is checked like the setting
    ]
    for settings, flags, message in cases:
        bencher = processes.start("bencher", "--name", "b1", *flags, env=bencher_env(site, **settings))
        assert bencher.wait(30) == 2, settings
        assert message in log_of(site, "bencher"), (settings, log_of(site, "bencher"))
        for log in site.workdir.glob("bencher*.log"):
            log.unlink()


def test_a_target_names_a_host_prometheus_can_dial_and_a_file_it_can_read(tmp_path: Path) -> None:
    import json
    import socket

    from bencher import metrics

    assert metrics.target_host("127.0.0.1") == "127.0.0.1" and metrics.target_host("::1") == "[::1]"
    for wildcard in ("0.0.0.0", "::", ""):  # binds every interface: the node's name, never a wildcard
        assert metrics.target_host(wildcard) in (socket.getfqdn(), socket.gethostname())
    path = metrics.target_path(str(tmp_path), "bencher/../x y")
    assert path == tmp_path / "bencher_.._x_y.json"
    metrics.write_target(path, "node1:9102", {"role": "bencher"})
    assert json.loads(path.read_text()) == [{"targets": ["node1:9102"], "labels": {"role": "bencher"}}]
    assert path.stat().st_mode & 0o777 == 0o644 and [p.name for p in tmp_path.iterdir()] == [path.name]
