"""`hpcrl train` end to end: the tiny model (built once per checkout, tests/conftest.py), a real broker,
bencher and archive on loopback, real measurements as rewards, checkpoints, and a resume that continues
where the run stopped."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from bus.client import BusClient
from bus.schema import TrainerStep
from tests.conftest import BusSite, Processes, log_of, wait_for
from tests.test_archive_daemon import start_archive, stored
from tests.test_bencher_daemon import start_bencher

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


def train(processes: Processes, model: Path, run_dir: Path, steps: int) -> int:
    env = {**processes.site.env, **TRAIN_SETTINGS}
    trainer = processes.start("train", "--model", str(model), "--run-dir", str(run_dir), "--steps", str(steps), env=env)
    return trainer.wait(300)


def records(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]


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
    first = records(run_dir)
    assert [r["step"] for r in first] == [1, 2]
    assert [e.step for e in steps] == [1, 2]  # type: ignore[attr-defined]
    verdicts: dict[str, int] = {}
    for record in first:
        for verdict, count in record["verdicts"].items():  # type: ignore[attr-defined]
            verdicts[verdict] = verdicts.get(verdict, 0) + count
    assert sum(verdicts.values()) == 8 and verdicts.get("ok", 0) >= 1, verdicts
    assert any(r["gflops_max"] > 0 for r in first)  # type: ignore[operator]
    assert (run_dir / "checkpoints" / "step-000002" / "adapter" / "adapter_config.json").is_file()
    submitted = sum(count for verdict, count in verdicts.items() if verdict != "no_code")
    wait_for(lambda: stored(site) >= submitted, 30, "the archive to store every measured candidate")
    # A second run continues at step 3 from the checkpoint: no step is done twice.
    assert train(processes, model_dir, run_dir, steps=3) == 0
    assert [r["step"] for r in records(run_dir)] == [1, 2, 3]
    assert records(run_dir)[-1]["policy_version"] >= first[-1]["policy_version"]  # type: ignore[operator]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["loop"]["steps"] == 3 and config["grpo"]["group_size"] == 4


def test_a_trainer_killed_mid_run_resumes_from_its_last_checkpoint_and_logs_each_step_once(
    site: BusSite, processes: Processes, model_dir: Path
) -> None:
    processes.broker()
    start_bencher(processes, "b1", result_cache="true")
    start_archive(processes, confirm="false")
    run_dir = site.workdir / "run"
    env = {**processes.site.env, **TRAIN_SETTINGS}
    args = ("train", "--model", str(model_dir), "--run-dir", str(run_dir), "--steps", "4")
    first = processes.start(*args, env=env)
    wait_for(lambda: (run_dir / "checkpoints" / "latest").is_file(), 120, "the first checkpoint")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert processes.start(*args, env=env).wait(300) == 0
    steps = [r["step"] for r in records(run_dir)]
    assert steps == [1, 2, 3, 4], steps
    assert "event=resumed" in log_of(site, "train")
