"""`hpcrl train` end to end: the tiny model (built once per checkout, tests/conftest.py), a real broker,
bencher and archive on loopback, real measurements as rewards, checkpoints, and a resume that continues
where the run stopped."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bus.client import BusClient
from bus.schema import Result, Role, StageChange, TrainerStep
from tests.conftest import BusSite, Processes, log_of, wait_for
from tests.test_archive_daemon import start_archive, stored, stored_ids
from tests.test_bencher_daemon import start_bencher
from trainer.steplog import read_log

TRAIN_SETTINGS = {
    "HPCRL_TRAINER__SIZE": "128",
    "HPCRL_TRAINER__PROMPTS_PER_STEP": "1",
    "HPCRL_TRAINER__CHECKPOINT_EVERY": "1",
    "HPCRL_TRAINER__THREADS": "1",
    "HPCRL_TRAINER__RESULT_TIMEOUT_S": "120",
    "HPCRL_GRPO__GROUP_SIZE": "4",
    "HPCRL_GRPO__MAX_COMPLETION_TOKENS": "200",
}


@pytest.fixture(scope="module")
def model_dir(tiny_model: Path) -> Path:
    """The tiny model (tests/conftest.py): 95% of its samples are correct programs."""
    return tiny_model


def start_training(processes: Processes, model: Path, run_dir: Path, steps: int) -> subprocess.Popen[bytes]:
    env = {**processes.site.env, **TRAIN_SETTINGS}
    return processes.start("train", "--model", str(model), "--run-dir", str(run_dir), "--steps", str(steps), env=env)


def train(processes: Processes, model: Path, run_dir: Path, steps: int) -> int:
    return start_training(processes, model, run_dir, steps).wait(300)


def journaled_by_step(site: BusSite, attribute: str) -> dict[int, set[Any]]:
    """Step -> the values of `attribute` among the journaled results of that step's candidates."""
    with BusClient(site.bus_config, site.client_config, name="reader", subscribe=["result."], since=0) as reader:
        results = wait_for(
            lambda: [e for e in reader.next_events(0.5) if isinstance(e, Result)] or None, 30, "the journaled results"
        )
    by_step: dict[int, set[Any]] = {}
    for result in results:  # type: ignore[attr-defined]
        step = int(result.candidate_id.split("-s")[1].split("-")[0])
        by_step.setdefault(step, set()).add(getattr(result, attribute))
    return by_step


def test_the_trainer_learns_from_real_measurements_and_resumes_from_its_checkpoint(
    site: BusSite, processes: Processes, model_dir: Path
) -> None:
    processes.broker()
    start_bencher(processes, "b1", result_cache="true")
    start_archive(processes, confirm="false")
    run_dir = site.workdir / "run"
    with BusClient(site.bus_config, site.client_config, name="watcher", subscribe=["trainer."], since=0) as watcher:
        assert train(processes, model_dir, run_dir, steps=2) == 0
        steps = wait_for(
            lambda: [e for e in watcher.next_events(0.2) if isinstance(e, TrainerStep)], 20, "trainer.step events"
        )
    first = read_log(run_dir)
    assert [r["step"] for r in first] == [1, 2]
    assert [e.step for e in steps] == [1, 2]  # type: ignore[attr-defined]
    verdicts: dict[str, int] = {}
    for record in first:
        for verdict, count in record["verdicts"].items():
            verdicts[verdict] = verdicts.get(verdict, 0) + count
    assert sum(verdicts.values()) == 8 and verdicts.get("ok", 0) >= 1, verdicts
    assert any(r["gflops_max"] > 0 for r in first)
    assert (run_dir / "checkpoints" / "step-000002" / "adapter" / "adapter_config.json").is_file()
    submitted = sum(count for verdict, count in verdicts.items() if verdict != "no_code")
    wait_for(lambda: stored(site) >= submitted, 30, "the archive to store every measured candidate")
    # A second run continues at step 3 from the checkpoint: no step is done twice.
    assert train(processes, model_dir, run_dir, steps=3) == 0
    assert [r["step"] for r in read_log(run_dir)] == [1, 2, 3]
    assert read_log(run_dir)[-1]["policy_version"] >= first[-1]["policy_version"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["loop"]["steps"] == 3 and config["grpo"]["group_size"] == 4


def test_a_trainer_killed_mid_run_resumes_from_its_last_checkpoint_and_logs_each_step_once(
    site: BusSite, processes: Processes, model_dir: Path
) -> None:
    processes.broker()
    start_bencher(processes, "b1", result_cache="true")
    start_archive(processes, confirm="false")
    run_dir = site.workdir / "run"
    first = start_training(processes, model_dir, run_dir, steps=4)
    wait_for(lambda: (run_dir / "checkpoints" / "latest").is_file(), 120, "the first checkpoint")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    with (run_dir / "train.jsonl").open("a") as log:
        log.write('{"step": 3, "loss": 0.')  # as if the kill had come mid-write: the resume must not trip on it
    checkpoints = run_dir / "checkpoints"
    resumed_from = json.loads((checkpoints / (checkpoints / "latest").read_text().strip() / "state.json").read_text())
    pending = [sample["candidate_id"] for sample in resumed_from["pending"]["samples"] if sample["code"]]
    assert resumed_from["pending"]["step"] == resumed_from["step"] + 1 and pending
    assert train(processes, model_dir, run_dir, steps=4) == 0
    steps = [r["step"] for r in read_log(run_dir)]
    assert steps == [1, 2, 3, 4], steps
    assert "event=resumed" in log_of(site, "train")
    # The resumed run submitted the checkpoint's pending batch as it was: the same candidate ids.
    wait_for(lambda: set(stored_ids(site)) >= set(pending), 30, "the pending batch's results in the archive")
    # ... and no other batch for that step (the killed run may have submitted these ids already).
    pending_step = f"-s{resumed_from['pending']['step']}-"
    assert {cid for cid in stored_ids(site) if pending_step in cid} == set(pending)


def test_stage_events_change_the_prompts_of_the_next_batches(
    site: BusSite, processes: Processes, model_dir: Path
) -> None:
    """The archive's role played by the test: stage 1 is journaled before the trainer starts (it asks the
    bus for the current stages), stage 2 is published after its first step."""
    processes.broker()
    start_bencher(processes, "b1", result_cache="true")
    run_dir = site.workdir / "run"
    env = {**processes.site.env, **TRAIN_SETTINGS, "HPCRL_TRAINER__ARCHIVE_WAIT_S": "0.2"}
    stage_2 = ["loop_order", "tiling", "transpose"]
    with BusClient(site.bus_config, site.client_config, name="stand-in-archive", role=Role.ARCHIVE) as archive:
        archive.publish(StageChange, problem="dgemm", from_stage=0, to_stage=1, techniques=["loop_order"])
        assert archive.flush(10)
        trainer = processes.start(
            "train", "--model", str(model_dir), "--run-dir", str(run_dir), "--steps", "5", env=env
        )
        wait_for(lambda: read_log(run_dir), 300, "the first step")
        archive.publish(StageChange, problem="dgemm", from_stage=1, to_stage=2, techniques=stage_2)
        assert archive.flush(10)
        assert trainer.wait(300) == 0
    stages = [r["stage"] for r in read_log(run_dir)]
    # A batch is generated one step ahead (max_staleness 1), and the event may land after the next one began:
    # stage 2 reaches the prompts of step 4 at the latest.
    assert stages[0] == 1 and stages[-2:] == [2, 2] and stages == sorted(stages), stages
    assert "event=stage problem=dgemm stage=2" in log_of(site, "train")
    # The candidates carry the stage they were generated for (the archive judges them by it).
    by_step = journaled_by_step(site, "stage")
    assert by_step[1] == {1} and by_step[5] == {2}, by_step


def test_a_mix_of_problems_trains_on_each_with_its_own_stage_and_a_speedup_reward(
    site: BusSite, processes: Processes, model_dir: Path
) -> None:
    """Two problems, 2:1: each step's two prompts are one of each or two of dgemm, as the schedule says; each
    candidate is submitted for its group's problem and size, carries that problem's own stage (only jacobi2d
    is staged here), and its reward is ln(speedup over the naive code measured on the bencher's node)."""
    processes.broker()
    start_bencher(processes, "b1", result_cache="true")
    run_dir = site.workdir / "mix"
    env = {
        **processes.site.env,
        **TRAIN_SETTINGS,
        "HPCRL_TRAINER__PROMPTS_PER_STEP": "2",
        "HPCRL_TRAINER__PROBLEMS": '["dgemm@99", "jacobi2d@255"]',
        "HPCRL_TRAINER__PROBLEM_WEIGHTS": "[2, 1]",
        "HPCRL_TRAINER__ARCHIVE_WAIT_S": "0.2",
        "HPCRL_REWARDS__PRESET": "log_speedup",
    }
    with BusClient(site.bus_config, site.client_config, name="stand-in-archive", role=Role.ARCHIVE) as archive:
        archive.publish(StageChange, problem="jacobi2d", from_stage=0, to_stage=3, techniques=["openmp"])
        assert archive.flush(10)
        trainer = processes.start(
            "train", "--model", str(model_dir), "--run-dir", str(run_dir), "--steps", "2", env=env
        )
        assert trainer.wait(300) == 0, log_of(site, "train")[-3000:]
    with BusClient(site.bus_config, site.client_config, name="reader", subscribe=["result."], since=0) as reader:
        results = wait_for(
            lambda: [e for e in reader.next_events(0.5) if isinstance(e, Result)] or None, 30, "the journaled results"
        )
    by_problem: dict[str, list[Result]] = {}
    for result in results:  # type: ignore[attr-defined]
        by_problem.setdefault(result.problem, []).append(result)
    assert set(by_problem) == {"dgemm", "jacobi2d"}
    assert {r.size for r in by_problem["dgemm"]} == {99} and {r.size for r in by_problem["jacobi2d"]} == {255}
    assert {r.stage for r in by_problem["dgemm"]} == {0} and {r.stage for r in by_problem["jacobi2d"]} == {3}
    # The schedule (2:1, 2 prompts a step, 4 samples a prompt): steps 1 and 2 hold 3 dgemm and 1 jacobi2d groups.
    assert len(by_problem["dgemm"]) <= 12 and len(by_problem["jacobi2d"]) <= 4
    assert all("void jacobi2d" in r.source for r in by_problem["jacobi2d"] if r.verdict == "ok")
    ok = [r for r in results if r.verdict == "ok"]  # type: ignore[attr-defined]
    assert ok and all(r.naive_rate > 0 and r.metric == "gflops" for r in ok)
    records = read_log(run_dir)
    assert [r["step"] for r in records] == [1, 2]
    # Speedup rewards are logs of ratios near 1-20, never GFLOPS: a correct sample scores in (-4.7, 5).
    assert all(r["reward_max"] < 5.0 for r in records) and max(r["reward_max"] for r in records) > -4.7, records
    config = json.loads((run_dir / "config.json").read_text())
    assert [t["problem"] for t in config["tasks"]] == ["dgemm", "jacobi2d"]
