"""ops/slurm on a real single-node SLURM cluster (slurmctld + slurmd on localhost, tests/slurm_support.py):
bencher jobs (array and multi-task) take candidates from a real broker on 127.0.0.1, scancel drains them
without losing or repeating a candidate, launch-run submits a whole run with the trainer's dependency, and
the vLLM server job starts its server (a stand-in command: vLLM itself never ran here) and announces its URL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.schema import Result, Verdict
from tests.bencher_support import SANDBOX_UID
from tests.conftest import REPO, BusSite, Processes, skip_unless_required, wait_for
from tests.proc_support import alive, uid
from tests.slurm_support import SlurmCluster, job_processes, slurm_missing
from tests.test_bencher_daemon import NAIVE, SLOW, bencher_env, start_bencher
from tests.test_reliability import client_for, journaled_results, wait_workers
from trainer.steplog import read_log

pytestmark = skip_unless_required(slurm_missing())

SLURM_DIR = REPO / "ops" / "slurm"
BENCHER_SBATCH = SLURM_DIR / "bencher.sbatch"
TRAINER_SBATCH = SLURM_DIR / "trainer.sbatch"
SERVER_SBATCH = SLURM_DIR / "vllm-server.sbatch"
LAUNCH_RUN = SLURM_DIR / "launch-run"
HPCRL_BIN = Path(sys.executable).with_name("hpcrl")
"""The venv's console script: what the jobs run (`HPCRL`)."""
START_TIMEOUT_S = 40.0
"""Bound on a bencher job's start: scheduling (about 1 s), Python start-up and the peak probe."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    slurm = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    slurm.start()
    try:
        yield slurm
    finally:
        leftovers = slurm.stop()
        assert not leftovers, f"processes or jobs the tests left behind: {leftovers}"


@pytest.fixture
def slurm(cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The cluster, emptied after each test (scancel, then a bounded wait), so a failed test leaves no job."""
    try:
        yield cluster
    finally:
        cluster.run("scancel", "--partition=debug", check=False)
        assert cluster.wait_empty(), f"jobs did not end after scancel: {cluster.queue()}"
        wait_for(lambda: not cluster.stepd_pids(), 20, "every slurmstepd to exit")


def job_env(site: BusSite, **bencher_settings: str) -> dict[str, str]:
    """A bencher job's environment (sbatch exports it): the test bus's endpoints and fast bencher settings."""
    env = {k: v for k, v in bencher_env(site, **bencher_settings).items() if not k.startswith("SLURM_")}
    env["HPCRL"] = str(HPCRL_BIN)
    return env


def task_job_ids(slurm: SlurmCluster, array_job: str) -> dict[str, str]:
    """Array task id -> its own SLURM job id (what SLURM_JOB_ID says inside the task)."""
    text = slurm.show_job(array_job)
    return dict(
        (task, job) for job, task in re.findall(r"JobId=(\d+) ArrayJobId=\d+ ArrayTaskId=(\d+)", text, re.MULTILINE)
    )


def started_cpus(output: str) -> dict[str, str]:
    """Bencher name -> the CPUs it logged at start."""
    return dict(re.findall(r"event=started name=(\S+) .*? cpus=(\S+)", output))


def sandboxed(processes: dict[int, str]) -> list[int]:
    """The processes among `processes` that run as the sandbox uid (bwrap, the candidate)."""
    return [pid for pid in processes if uid(pid) == SANDBOX_UID]


def test_an_array_of_pinned_benchers_takes_candidates_and_reports_its_slurm_job(
    site: BusSite, processes: Processes, slurm: SlurmCluster
) -> None:
    processes.broker()
    array = slurm.sbatch(
        "--array=0-1", "--cpus-per-task=1", f"--output={site.workdir}/%x-%A_%a.out", str(BENCHER_SBATCH),
        env=job_env(site),
    )  # fmt: skip
    with client_for(site) as client:
        wait_workers(client, 2, timeout_s=START_TIMEOUT_S)
        ids = [client.submit(problem="dgemm", size=128, source=f"{NAIVE}\n/* {i} */").candidate_id for i in range(8)]
        results = client.wait_results(ids, timeout_s=90)
    tasks = task_job_ids(slurm, array)
    assert sorted(tasks) == ["0", "1"]
    assert len(results) == 8 and {r.verdict for r in results.values()} == {Verdict.OK}
    assert {r.bencher_id for r in results.values()} == {f"bencher-{array}_0", f"bencher-{array}_1"}
    assert {r.slurm_job_id for r in results.values()} == set(tasks.values())
    assert {r.threads for r in results.values()} == {1}
    output = "".join(p.read_text() for p in site.workdir.glob("hpcrl-bencher-*.out"))
    cpus = started_cpus(output)
    assert len(cpus) == 2 and all(c.isdigit() for c in cpus.values()), output[-2000:]
    assert len(set(cpus.values())) == 2, f"the two benchers share a core: {cpus}"
    # The graceful stop: SIGTERM to each bencher alone, which drains and exits 0.
    slurm.run("scancel", "--state=RUNNING", "--batch", "--signal=TERM", array)
    assert slurm.wait_states(array, ["COMPLETED"], 2, timeout_s=30) == ["COMPLETED", "COMPLETED"]
    assert re.findall(r"ExitCode=(\S+)", slurm.show_job(array)) == ["0:0", "0:0"]


def test_a_multi_task_job_starts_one_bencher_per_task_on_its_own_core(
    site: BusSite, processes: Processes, slurm: SlurmCluster
) -> None:
    processes.broker()
    job = slurm.sbatch(
        "--ntasks=2", "--cpus-per-task=1", f"--output={site.workdir}/%x-%j.out", str(BENCHER_SBATCH),
        env=job_env(site),
    )  # fmt: skip
    with client_for(site) as client:
        wait_workers(client, 2, timeout_s=START_TIMEOUT_S)
        ids = [client.submit(problem="dgemm", size=128, source=f"{NAIVE}\n/* {i} */").candidate_id for i in range(4)]
        results = client.wait_results(ids, timeout_s=90)
    assert {r.verdict for r in results.values()} == {Verdict.OK}
    assert {r.bencher_id for r in results.values()} <= {f"bencher-{job}.0", f"bencher-{job}.1"}
    assert {r.slurm_job_id for r in results.values()} == {job} and {r.threads for r in results.values()} == {1}
    output = (site.workdir / f"hpcrl-bencher-{job}.out").read_text()
    cpus = started_cpus(output)
    assert set(cpus) == {f"bencher-{job}.0", f"bencher-{job}.1"}, output[-2000:]
    assert len(set(cpus.values())) == 2 and all(c.isdigit() for c in cpus.values()), cpus
    # srun would SIGKILL its step on SIGTERM: the batch shell turns the signal into a drain of every task.
    slurm.run("scancel", "--batch", "--signal=TERM", job)
    assert slurm.wait_states(job, ["COMPLETED"], 1, timeout_s=30) == ["COMPLETED"]
    final = (site.workdir / f"hpcrl-bencher-{job}.out").read_text()
    assert final.count("event=stopped") == 2 and "Killed" not in final, final[-2000:]


def test_scancel_mid_run_stops_every_bencher_and_loses_or_repeats_no_candidate(
    site: BusSite, processes: Processes, slurm: SlurmCluster
) -> None:
    processes.broker()
    env = job_env(site, warmup_reps="0", min_reps="1", drain_timeout_s="1")
    array = slurm.sbatch("--array=0-1", "--cpus-per-task=1", f"--output={site.workdir}/%x-%A_%a.out",
                         str(BENCHER_SBATCH), env=env)  # fmt: skip
    with client_for(site) as client:
        wait_workers(client, 2, timeout_s=START_TIMEOUT_S)
        # Slow candidates (seconds each at n = 512): two in flight, two queued at the broker.
        ids = [client.submit(problem="dgemm", size=512, source=f"{SLOW}\n/* {i} */").candidate_id for i in range(4)]
        tasks = task_job_ids(slurm, array)
        running: dict[int, str] = {}

        def both_running() -> bool:
            running.clear()
            for job in tasks.values():
                mine = job_processes(slurm, job)
                if not sandboxed(mine):
                    return False
                running.update(mine)
            return True

        wait_for(both_running, 30, "both benchers to run a candidate in their sandbox")
        assert any("bencher" in command for command in running.values())
        # Task 0: the graceful stop (SIGTERM to the bencher alone); task 1: a plain scancel (every process).
        slurm.run("scancel", "--batch", "--signal=TERM", f"{array}_0")
        slurm.run("scancel", f"{array}_1")
        wait_for(lambda: not any(alive(pid) for pid in running), 30, "every bencher and sandbox process to exit")
        assert slurm.wait_states(array, ["COMPLETED", "CANCELLED"], 2, timeout_s=20)
        assert sorted(slurm.job_states(array)) == ["CANCELLED", "COMPLETED"]
        # A new bencher comes and takes what was handed back or never started.
        rescue = slurm.sbatch("--cpus-per-task=1", f"--output={site.workdir}/%x-%j.out", str(BENCHER_SBATCH), env=env)
        results: dict[str, Result] = client.wait_results(ids, timeout_s=90)
    assert set(results) == set(ids), "a candidate got no result"
    assert sorted(journaled_results(site.journal)) == sorted(ids), "each candidate has exactly one result"
    outputs = {p.name: p.read_text() for p in site.workdir.glob("hpcrl-bencher-*.out")}
    graceful = outputs[f"hpcrl-bencher-{array}_0.out"]
    assert "event=draining" in graceful and "event=stopped" in graceful
    assert "event=draining" in outputs[f"hpcrl-bencher-{array}_1.out"]
    # The gracefully stopped bencher finished or handed back its run: no candidate of it failed.
    verdicts = {cid: r.verdict for cid, r in results.items()}
    from_graceful = {cid for cid, r in results.items() if r.bencher_id == f"bencher-{array}_0"}
    assert all(verdicts[cid] is Verdict.OK for cid in from_graceful), results
    # A plain scancel signals the sandbox too: the run in flight there dies with the bencher's stop, so the
    # bencher hands it back rather than report it, and the rescuer measures it.
    assert set(verdicts.values()) == {Verdict.OK}, results
    assert any(r.bencher_id == f"bencher-{rescue}.0" for r in results.values())
    assert "event=released" in outputs[f"hpcrl-bencher-{array}_1.out"]


def write_run_config(site: BusSite, run_dir: Path, model: Path) -> Path:
    """The shared config file of a launched run: everything a job needs, nothing from the environment."""
    config = site.workdir / "hpcrl.toml"
    config.write_text(
        f"""
[bus]
request_endpoint = "tcp://127.0.0.1:{site.request_port}"
event_endpoint = "tcp://127.0.0.1:{site.event_port}"
heartbeat_interval_s = 0.2
linger_s = 0.2

[bencher]
cache_dir = "{site.workdir / "bencher-cache"}"
min_reps = 2
max_measure_s = 0.2
calibration_interval_s = 0

[trainer]
run = "slurm-test"
run_dir = "{run_dir}"
size = 128
steps = 2
prompts_per_step = 1
checkpoint_every = 1
threads = 1
archive_wait_s = 0
result_timeout_s = 120

[grpo]
group_size = 4
max_completion_tokens = 200

[policy]
model_dir = "{model}"
"""
    )
    return config


def launch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LAUNCH_RUN), *args], capture_output=True, text=True, env=env, timeout=60)


def clean_env(slurm: SlurmCluster) -> dict[str, str]:
    """No HPCRL_* settings: a launched run must get everything from its config file."""
    return {k: v for k, v in slurm.env.items() if not k.startswith("HPCRL")}


def test_launch_run_dry_run_prints_sbatch_commands_that_sbatch_accepts(
    site: BusSite, slurm: SlurmCluster, tmp_path: Path
) -> None:
    config = write_run_config(site, tmp_path / "run", tmp_path / "model")
    env = clean_env(slurm)
    common = ["--config", str(config), "--benchers", "2", "--bencher-cpus", "1", "--trainer-cpus", "1"]
    common += ["--log-dir", str(tmp_path / "logs"), "--hpcrl", str(HPCRL_BIN), "--dry-run"]
    array = launch(*common, "--trainer-time", "1:00:00", "--", "--steps", "3", env=env)
    tasks = launch(*common, "--bencher-mode", "tasks", "--trainer-gres", "none", env=env)
    ranked = launch(*common, "--trainer-nodes", "2", "--trainer-ranks-per-node", "4", env=env)
    served = launch(*common, "--server-gpus", "1", "--server-model", str(tmp_path / "model"), "--server-cpus", "1",
                    "--server-time", "2:00:00", env=env)  # fmt: skip
    assert array.returncode == 0 and tasks.returncode == 0 and served.returncode == 0, array.stderr + tasks.stderr
    assert not list(tmp_path.glob("logs")), "a dry run submits and creates nothing"
    lines = [line for line in array.stdout.splitlines() if "sbatch" in line]
    assert len(lines) == 2
    assert "--array=0-1" in lines[0] and "--cpus-per-task=1" in lines[0] and str(BENCHER_SBATCH) in lines[0]
    assert f"--config {config}" in lines[0]
    assert "--dependency=after:${bencher_job%%;*}_0" in lines[1] and "--gres=gpu:1" in lines[1]
    assert "--time=1:00:00" in lines[1] and lines[1].endswith(f"--config {config} --steps 3")
    tasks_lines = [line for line in tasks.stdout.splitlines() if "sbatch" in line]
    assert "--ntasks=2" in tasks_lines[0] and "--array" not in tasks_lines[0]
    assert "--dependency=after:${bencher_job%%;*} " in tasks_lines[1] and "--gres=none" in tasks_lines[1]
    assert ranked.returncode == 0, ranked.stderr
    trainer_line = next(line for line in ranked.stdout.splitlines() if "trainer.sbatch" in line)
    assert "--nodes=2 --ntasks-per-node=4" in trainer_line and "--gres=gpu:4" in trainer_line, trainer_line
    served_lines = [line for line in served.stdout.splitlines() if "sbatch" in line]
    url_file = tmp_path / "logs" / "hpcrl-hpcrl-vllm-server.url"
    assert (
        str(SERVER_SBATCH) in served_lines[1]
        and "--gres=gpu:1" in served_lines[1]
        and "--time=2:00:00" in served_lines[1]
    )
    assert f"--model {tmp_path / 'model'} --url-file {url_file}" in served_lines[1]
    # The trainer waits for the first bencher and the server, and alone learns where the server is.
    assert "--dependency=after:${bencher_job%%;*}_0,after:${server_job%%;*} " in served_lines[2]
    assert f"HPCRL_TRAINER__BACKEND=vllm_server\\,HPCRL_VLLM_SERVER__URL_FILE={url_file}" in served_lines[2]
    assert "HPCRL_VLLM" not in served_lines[0] + served_lines[1]
    # The printed script runs as it stands; sbatch --test-only validates each command without submitting.
    held = slurm.sbatch("--hold", "--array=0-1", "--output=/dev/null", "--wrap", "true")
    shim = f'sbatch() {{ command sbatch --test-only "$@" >&2 || exit 9; echo "{held};hpcrltest"; }}\n'
    for printed, jobs in ((array.stdout, 2), (tasks.stdout, 2), (served.stdout, 3)):
        done = subprocess.run(
            ["bash", "-euc", shim + printed], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("to start at") == jobs, done.stderr


def test_scripts_parse_and_sbatch_accepts_the_trainer_job(slurm: SlurmCluster, tmp_path: Path) -> None:
    for script in (BENCHER_SBATCH, TRAINER_SBATCH, SERVER_SBATCH, LAUNCH_RUN):
        assert os.access(script, os.X_OK), f"{script} is not executable"
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=10)
        assert syntax.returncode == 0, syntax.stderr
    for script in (TRAINER_SBATCH, BENCHER_SBATCH, SERVER_SBATCH):
        # The #SBATCH header as written (a GPU, 8 CPUs: this node has a pretend GPU but fewer CPUs).
        test = slurm.run("sbatch", "--test-only", "--cpus-per-task=1", str(script), check=False)
        assert test.returncode == 0 and "to start at" in test.stderr, test.stderr
    header = TRAINER_SBATCH.read_text()
    assert "#SBATCH --gres=gpu:1" in header and "#SBATCH --signal=B:TERM@" in header
    assert "#SBATCH --signal=B:TERM@" in BENCHER_SBATCH.read_text()
    usage = subprocess.run([str(LAUNCH_RUN), "--benchers", "2"], capture_output=True, text=True, timeout=10)
    assert usage.returncode == 2 and "--config FILE is required" in usage.stderr
    config = tmp_path / "hpcrl.toml"
    config.write_text("")
    no_model = subprocess.run([str(LAUNCH_RUN), "--config", str(config), "--server-gpus", "2", "--dry-run"],
                              capture_output=True, text=True, timeout=10)  # fmt: skip
    assert no_model.returncode == 2 and "--server-gpus needs --server-model DIR" in no_model.stderr


def test_the_server_job_starts_vllm_with_runtime_lora_announces_its_url_and_stops_on_sigterm(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    """`vllm` is a stand-in that records how it was started: the job's plumbing, not vLLM, is under test."""
    started = tmp_path / "vllm-started"
    fake = tmp_path / "vllm"
    fake.write_text(f"""#!/bin/bash
echo "VLLM_ALLOW_RUNTIME_LORA_UPDATING=$VLLM_ALLOW_RUNTIME_LORA_UPDATING $*" > {started}
trap 'exit 0' TERM
while :; do sleep 0.1; done
""")
    fake.chmod(0o755)
    url_file = tmp_path / "shared" / "vllm-server.url"
    job = slurm.sbatch(
        "--cpus-per-task=1", f"--output={tmp_path}/%x-%j.out", str(SERVER_SBATCH), "--model", "/models/base",
        "--url-file", str(url_file), "--port", "8123", "--", "--max-model-len", "4096",
        env={**clean_env(slurm), "VLLM": str(fake)},
    )  # fmt: skip
    wait_for(lambda: url_file.is_file() and started.is_file(), 30, "the server job to start vllm and write its URL")
    host = subprocess.run(["hostname", "-f"], capture_output=True, text=True, check=True).stdout.strip()
    assert url_file.read_text() == f"http://{host}:8123\n"
    assert started.read_text().split() == [
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True", "serve", "/models/base", "--host", "0.0.0.0", "--port", "8123",
        "--tensor-parallel-size", "1", "--gpu-memory-utilization", "0.9", "--enable-lora", "--max-lora-rank", "16",
        "--logprobs-mode", "processed_logprobs", "--max-model-len", "4096",
    ]  # fmt: skip
    slurm.run("scancel", "--batch", "--signal=TERM", job)
    assert slurm.wait_states(job, ["COMPLETED", "FAILED", "CANCELLED"], 1, timeout_s=30) == ["COMPLETED"]
    assert not url_file.exists(), "a stopped server's URL must not send the next trainer to a dead port"
    log = (tmp_path / f"hpcrl-vllm-server-{job}.out").read_text()
    assert f"serving /models/base at http://{host}:8123" in log and "exited with status 0" in log


def test_launch_run_submits_benchers_and_a_trainer_that_waits_for_them_then_trains(
    site: BusSite, processes: Processes, slurm: SlurmCluster, tiny_model: Path, tmp_path: Path
) -> None:
    processes.broker()
    run_dir = tmp_path / "run"
    config = write_run_config(site, run_dir, tiny_model)
    # Every CPU is taken, so the benchers wait and the trainer's dependency is seen unfulfilled.
    blocker = slurm.sbatch(f"--cpus-per-task={slurm.cpus}", "--output=/dev/null", "--wrap", "sleep 120")
    slurm.wait_states(blocker, ["RUNNING"], 1, timeout_s=20)
    launched = launch(
        "--config", str(config), "--name", "t", "--benchers", "1", "--bencher-cpus", "1",
        "--trainer-cpus", "1", "--trainer-gres", "gpu:1", "--log-dir", str(tmp_path / "logs"),
        "--hpcrl", str(HPCRL_BIN), env=clean_env(slurm),
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr
    bencher = re.search(r"^bencher job: (\d+)", launched.stdout, re.MULTILINE)
    trainer = re.search(r"^trainer job: (\d+)", launched.stdout, re.MULTILINE)
    assert bencher and trainer, launched.stdout
    bencher_job, trainer_job = bencher.group(1), trainer.group(1)
    for hint in ("squeue -j", "hpcrl tail", "hpcrl stages", f"hpcrl-t-trainer-{trainer_job}.out", "scancel"):
        assert hint in launched.stdout, f"{hint!r} missing from:\n{launched.stdout}"
    shown = slurm.show_job(trainer_job)
    assert f"Dependency=after:{bencher_job}_0(unfulfilled)" in shown, shown
    assert "Reason=Dependency" in shown and f"Command={TRAINER_SBATCH}" in shown
    assert re.search(r"(TresPerNode|Gres)=\S*gpu:1", shown), shown
    slurm.run("scancel", blocker)
    with client_for(site, "watcher") as client:
        wait_workers(client, 1, timeout_s=START_TIMEOUT_S)
        assert slurm.wait_states(trainer_job, ["COMPLETED", "FAILED", "CANCELLED"], 1, timeout_s=150) == [
            "COMPLETED"
        ], (tmp_path / "logs" / f"hpcrl-t-trainer-{trainer_job}.out").read_text()[-3000:]
    steps = [line for line in (run_dir / "train.jsonl").read_text().splitlines() if line.strip()]
    assert len(steps) == 2
    assert (run_dir / "checkpoints" / "step-000002").is_dir()
    trainer_log = (tmp_path / "logs" / f"hpcrl-t-trainer-{trainer_job}.out").read_text()
    assert f"hpcrl-trainer job {trainer_job}" in trainer_log and "GPUs 0" in trainer_log
    slurm.run("scancel", "--batch", "--signal=TERM", bencher_job)
    assert slurm.wait_states(bencher_job, ["COMPLETED"], 1, timeout_s=30) == ["COMPLETED"]


def test_a_two_rank_trainer_job_trains_on_real_measurements_and_resumes_after_kill_9(
    site: BusSite, processes: Processes, slurm: SlurmCluster, tiny_model: Path, tmp_path: Path
) -> None:
    """trainer.sbatch with --ntasks=2: srun starts two ranks (gloo on loopback), rank 0 talks to a real broker
    and bencher; SIGKILL of the whole job after a checkpoint, then the same job again, logs each step once."""
    processes.broker()
    start_bencher(processes, "b1", result_cache="true")
    run_dir = tmp_path / "run"
    config = write_run_config(site, run_dir, tiny_model)
    # Two groups a step, so both ranks sample; gloo kept on the loopback interface.
    env = {**clean_env(slurm), "HPCRL": str(HPCRL_BIN), "HPCRL_TRAINER__PROMPTS_PER_STEP": "2"}
    env["GLOO_SOCKET_IFNAME"] = "lo"

    def submit(steps: int) -> tuple[str, Path]:
        job = slurm.sbatch("--ntasks=2", "--cpus-per-task=1", f"--output={tmp_path}/trainer-%j.out",
                           str(TRAINER_SBATCH), "--config", str(config), "--steps", str(steps), env=env)  # fmt: skip
        return job, tmp_path / f"trainer-{job}.out"

    first, first_log = submit(steps=4)
    wait_for(lambda: (run_dir / "checkpoints" / "latest").is_file(), 240, "the 2-rank job's first checkpoint")
    slurm.run("scancel", "--full", "--signal=KILL", first)
    slurm.wait_states(first, ["FAILED", "CANCELLED", "COMPLETED"], 1, timeout_s=60)
    output = first_log.read_text()
    assert "2 ranks, rendezvous localhost:" in output, output[-3000:]
    assert output.count("event=process_group") == 2, output[-3000:]

    again, again_log = submit(steps=3)
    states = slurm.wait_states(again, ["COMPLETED", "FAILED", "CANCELLED"], 1, timeout_s=300)
    assert states == ["COMPLETED"], again_log.read_text()[-3000:]
    records = read_log(run_dir)
    assert [r["step"] for r in records] == [1, 2, 3], "a step logged twice or lost across the kill"
    assert all(sum(r["verdicts"].values()) == 8 for r in records), [r["verdicts"] for r in records]
    # Rank 1's samples carry the policy version they were drawn from, as rank 0's do.
    assert all(r["staleness"] <= 1 for r in records), [(r["policy_version"], r["staleness"]) for r in records]
    assert "event=resumed" in again_log.read_text()


FAKE_HPCRL = """#!/bin/bash
# A rank: announces itself, exits 0 on SIGTERM (as rank 0 does after its checkpoint), records a SIGKILL by absence.
out={out}
echo "start rank=${{SLURM_PROCID:-?}} ntasks=${{SLURM_NTASKS:-?}}" >> "$out"
trap 'echo "term rank=${{SLURM_PROCID:-?}}" >> "$out"; exit 0' TERM
while true; do sleep 0.1; done
"""


def fake_hpcrl(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "ranks.txt"
    script = tmp_path / "hpcrl"
    script.write_text(FAKE_HPCRL.format(out=out))
    script.chmod(0o755)
    return script, out


def test_ntasks_per_node_as_launch_run_passes_it_starts_that_many_ranks(slurm: SlurmCluster, tmp_path: Path) -> None:
    """launch-run submits `--nodes=N --ntasks-per-node=R`; the script's own `#SBATCH --ntasks=1` takes precedence."""
    script, out = fake_hpcrl(tmp_path)
    env = {**clean_env(slurm), "HPCRL": str(script)}
    job = slurm.sbatch("--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--gres=gpu:1",
                       f"--output={tmp_path}/job.out", str(TRAINER_SBATCH), env=env)  # fmt: skip
    wait_for(lambda: out.is_file() and out.read_text().count("start") >= 1, 30, "a rank to start")
    time.sleep(2)
    starts = [line for line in out.read_text().splitlines() if line.startswith("start")]
    slurm.run("scancel", job)
    assert len(starts) == 2, f"{starts}\n{(tmp_path / 'job.out').read_text()}"


def test_sigterm_to_the_batch_step_reaches_rank_0_as_sigterm(slurm: SlurmCluster, tmp_path: Path) -> None:
    """--signal=B:TERM and `scancel --batch --signal=TERM` signal the batch shell, which `exec`s srun: rank 0 must
    get SIGTERM (to finish its step and checkpoint), not the SIGKILL srun sends its step on SIGTERM."""
    script, out = fake_hpcrl(tmp_path)
    env = {**clean_env(slurm), "HPCRL": str(script)}
    job = slurm.sbatch("--ntasks=2", "--cpus-per-task=1", f"--output={tmp_path}/job.out", str(TRAINER_SBATCH),
                       env=env)  # fmt: skip
    wait_for(lambda: out.is_file() and out.read_text().count("start") == 2, 30, "both ranks to start")
    slurm.run("scancel", "--batch", "--signal=TERM", job)
    slurm.wait_states(job, ["COMPLETED", "FAILED", "CANCELLED"], 1, timeout_s=40)
    ranks = out.read_text()
    assert "term rank=0" in ranks, f"{ranks}\n{(tmp_path / 'job.out').read_text()}"
