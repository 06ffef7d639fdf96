"""`hpcrl demo`, the README's main command: the tiny model trained with GRPO on real measurements by a real
broker, archive and bencher, until it learns; Ctrl-C stops every process and a second run resumes; bad
input gets a clear error. Plus the demo's pieces: the CPU plan, its config file, the training report."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive.config import ArchiveConfig
from bencher.config import BencherConfig
from bus.config import load_config, read_toml, section
from ops.demo import LEARNING_TARGET, STEPS, CpuPlan, bus_endpoints, config_text
from tests.conftest import HPCRL, REPO, TEST_MODEL_CACHE
from tests.proc_support import mentioning, pids_mentioning
from trainer.config import load_trainer_config
from trainer.report import learning
from trainer.steplog import read_log

DEMO_TIMEOUT_S = 600
"""The default demo takes about 2-4 minutes here once the model is built (at test collection)."""
STEP_LINE_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever a demo left running when a test failed or timed out (its children carry the run dir, under
    tmp_path, in their command lines): killed, so no bus or bencher outlives the test."""
    yield
    for pid in pids_mentioning(str(tmp_path)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def demo(run_dir: Path, *args: str) -> list[str]:
    return [*HPCRL, "demo", "--run-dir", str(run_dir), "--model-cache", str(TEST_MODEL_CACHE), *args]


def steps_logged(run_dir: Path) -> list[int]:
    return [record["step"] for record in read_log(run_dir / "trainer")]


@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_demo_learns_from_real_measurements_and_stops_every_process(tiny_model: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(demo(run_dir), cwd=REPO, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"]["dir"] == str(tiny_model)

    # Every step made, every process exited cleanly, nothing left running.
    assert summary["steps"] == summary["steps_planned"] == STEPS
    assert steps_logged(run_dir) == list(range(1, STEPS + 1))
    assert set(summary["exit_codes"]) >= {"bus", "archive", "trainer"} and not any(summary["exit_codes"].values())
    assert not mentioning(str(run_dir))

    # Learning, recomputed from the trainer's own log: the summary reports what happened.
    records = read_log(run_dir / "trainer")
    first5 = sum(r["gflops_mean"] for r in records[:5]) / 5
    last5 = sum(r["gflops_mean"] for r in records[-5:]) / 5
    assert summary["first5_mean_gflops"] == pytest.approx(first5, abs=1e-3)
    assert summary["last5_mean_gflops"] == pytest.approx(last5, abs=1e-3)
    assert summary["learning_ratio"] == pytest.approx(last5 / first5, abs=1e-3)
    assert summary["learning_ratio"] >= LEARNING_TARGET and summary["learned"]
    assert summary["stage_changes"] >= 1 and len(summary["stage_history"]) == summary["stage_changes"]
    assert summary["prompt_stage_changes"], "the stage changes reached the trainer's prompts"
    assert [c["step"] for c in summary["prompt_stage_changes"]] == [
        r["step"] for a, r in itertools.pairwise(records) if r["stage"] != a["stage"]
    ]
    assert summary["verdicts"].get("ok", 0) > 0.8 * STEPS * 8

    # The best elite against OpenBLAS, measured on the same machine in the same way.
    assert summary["best_gflops"] > 0 and summary["openblas_gflops"] > 0
    assert summary["best_vs_openblas"] == pytest.approx(
        summary["best_remeasured_gflops"] / summary["openblas_gflops"], abs=1e-2
    )
    assert summary["comparison_threads"] == 1
    assert summary["best_gflops"] >= max(r["gflops_max"] for r in records[:5])

    # The report: the training plot and the archive's PNGs, real PNG files.
    for path in [summary["training_plot"], *summary["report"]]:
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert sorted(Path(p).name for p in summary["report"]) == [
        f"demo-dgemm-{name}.png" for name in ("cells", "elites", "progress", "verdicts")
    ]
    for key in ("first5_mean_gflops", "last5_mean_gflops", "learning_ratio", "stage_changes", "best_gflops"):
        assert key in summary
    assert summary["wall_s"] > 0 and summary["openblas_gflops"] > 0
    assert "learning: mean GFLOPS" in done.stdout and "of OpenBLAS" in done.stdout
    assert "stage 1 -> 2" in done.stdout

    # Before and after: the base model and the trained adapter on the trained task and the held-out ones.
    assert summary["eval_tasks"] == ["dgemm@256", "dgemm@509", "jacobi2d@255"]
    for name in ("base", "trained"):
        overall = summary[f"eval_{name}"]
        saved = json.loads((run_dir / f"eval-{name}" / "eval.json").read_text())
        assert overall == saved["overall"] and saved["adapter"] == (None if name == "base" else saved["adapter"])
        assert overall["tasks"] == 3 and overall["samples"] == 3 * 6 and overall["dropped"] == 0
        assert overall["pass_at_k"] is not None and 0 <= overall["pass_at_k"] <= 1
    assert json.loads((run_dir / "eval-trained" / "eval.json").read_text())["adapter"].endswith("adapter")
    assert "before (base model) and after (trained adapter)" in done.stdout


@pytest.mark.timeout(STEP_LINE_TIMEOUT_S + 120 + DEMO_TIMEOUT_S + 60)
def test_ctrl_c_stops_every_process_and_a_second_run_resumes_without_repeating_a_step(
    tiny_model: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    steps = "12"
    process = subprocess.Popen(
        demo(run_dir, "--steps", steps), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout or []:
            lines.put(line)
        lines.put(None)  # the end of the output: the demo has exited

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while not any(line.strip().startswith("step    3/") for line in seen):
            line = lines.get(timeout=STEP_LINE_TIMEOUT_S)
            assert line is not None, "the demo ended before its third step:\n" + "".join(seen)[-3000:]
            seen.append(line)
        process.send_signal(signal.SIGINT)
        assert process.wait(120) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(10)
    output = "".join(seen)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["error"] == "interrupted", output
    assert set(summary["exit_codes"]) >= {"bus", "archive", "trainer"}
    assert summary["exit_codes"]["trainer"] == 0, "the trainer stopped between steps and checkpointed"
    assert not mentioning(str(run_dir))
    made = steps_logged(run_dir)
    assert 3 <= len(made) < 12 and made == list(range(1, len(made) + 1))

    # Again in the same run directory: the trainer resumes from its last checkpoint and finishes.
    again = subprocess.run(
        demo(run_dir, "--steps", steps, "--eval-samples", "0"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 12, again.stdout[-3000:]
    assert steps_logged(run_dir) == list(range(1, 13)), "every step logged once across the restart"
    assert not summary.get("error") and not any(summary["exit_codes"].values())
    # 12 steps may or may not show learning; the exit status says which.
    assert again.returncode == (0 if summary["learned"] else 1)
    assert not mentioning(str(run_dir))


def test_a_model_directory_that_is_not_a_model_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = subprocess.run(
        demo(tmp_path / "run", "--model", str(tmp_path)), cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "config.json" in done.stderr and "hpcrl tiny-model" in done.stderr
    assert not (tmp_path / "run" / "bus.log").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--steps", "3"],
        ["--group-size", "1"],
        ["--size", "100"],
        ["--benchers", "-1"],
        ["--eval-samples", "-1"],
        ["--mix", "sort_doubles@10007"],
        ["--mix", "jacobi2d@7"],
    ],
)
def test_bad_demo_arguments_exit_2_with_the_reason(args: list[str], tmp_path: Path) -> None:
    done = subprocess.run(demo(tmp_path / "run", *args), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "hpcrl demo" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- the pieces


def test_cpu_plan_gives_the_trainer_one_cpu_and_each_other_cpu_a_bencher() -> None:
    assert CpuPlan.of([0, 1], max_benchers=8) == CpuPlan(trainer=(0,), benchers=(1,))
    assert CpuPlan.of([3, 1, 2, 0], max_benchers=8) == CpuPlan(trainer=(0,), benchers=(1, 2, 3))
    assert CpuPlan.of(list(range(16)), max_benchers=8).benchers == tuple(range(1, 9)), "no more than a step's samples"
    assert CpuPlan.of(list(range(16)), max_benchers=8, benchers=2).benchers == (1, 2)
    one = CpuPlan.of([5], max_benchers=8)
    assert one == CpuPlan(trainer=(5,), benchers=(5,)) and one.shared
    assert not CpuPlan.of([0, 1], max_benchers=8).shared


def test_the_demo_config_file_is_read_by_every_process_as_written(tmp_path: Path) -> None:
    path = tmp_path / "hpcrl.toml"
    run_dir = tmp_path / 'quoted "dir"'
    endpoints = bus_endpoints(run_dir)
    path.write_text(config_text(run_dir, tmp_path / "model", steps=33, size=128, seed=7, group_size=6, bus=endpoints))
    bus = load_config(str(path), env={})
    assert bus.bus.request_endpoint == f"ipc://{run_dir}/request.sock" == endpoints.request_endpoint
    data = read_toml(path)
    bencher = section(BencherConfig, data, "bencher", env={})
    assert bencher.cache_dir == f"{run_dir}/bencher-cache" and bencher.calibration_size == 128
    archive = section(ArchiveConfig, data, "archive", env={})
    assert archive.db == run_dir / "archive.sqlite" and len(archive.ladder()) >= 2
    trainer = load_trainer_config(str(path), env={})
    assert (trainer.loop.steps, trainer.loop.size, trainer.loop.seed) == (33, 128, 7)
    assert trainer.grpo.group_size == 6 and trainer.policy.model_dir == str(tmp_path / "model")
    assert trainer.loop.run_dir == f"{run_dir}/trainer"


def test_a_run_directory_too_long_for_a_unix_socket_gets_loopback_tcp(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    endpoints = bus_endpoints(deep)
    assert endpoints.request_endpoint.startswith("tcp://127.0.0.1:") and endpoints.event_endpoint.startswith(
        "tcp://127.0.0.1:"
    )
    assert endpoints.request_endpoint != endpoints.event_endpoint


def test_learning_figures_are_the_means_of_the_first_and_last_steps() -> None:
    records = [
        {"step": i, "stage": 1 if i <= 4 else 2, "gflops_mean": float(i), "gflops_max": 2.0 * i} for i in range(1, 11)
    ]
    figures = learning(records, window=3)
    assert figures.first_mean_gflops == 2.0 and figures.last_mean_gflops == 9.0
    assert figures.learning_ratio == 4.5 and figures.best_sample_gflops == 20.0
    assert figures.stage_changes == [(5, 2)] and figures.steps == 10
    assert learning([], window=5).learning_ratio == 0.0
    zero_start = [{**r, "gflops_mean": 0.0} if r["step"] <= 3 else r for r in records]
    assert learning(zero_start, window=3).learning_ratio == 0.0, "no ratio to a first window that measured nothing"


def test_train_report_writes_the_plot_skips_a_torn_last_line_and_refuses_a_directory_without_a_log(
    tmp_path: Path,
) -> None:
    empty = subprocess.run([*HPCRL, "train-report", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "train.jsonl" in empty.stderr
    records = [
        {"step": i, "stage": 1, "reward_mean": i, "reward_std": 1.0, "reward_max": i + 1, "gflops_mean": i,
         "gflops_max": i + 1}
        for i in range(1, 8)
    ]  # fmt: skip
    torn = '{"step": 8, "stage": 1, "gflops_mean": 1e9'  # a live run's half-written line is not a step yet
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + torn)
    done = subprocess.run([*HPCRL, "train-report", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["steps"] == 7 and report["first_mean_gflops"] == 3.0 and report["last_mean_gflops"] == 5.0
    assert Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_the_collapse_measure_is_the_share_of_the_most_frequent_program() -> None:
    from trainer.report import top_program_share

    steps = [{"programs": ["a"] * 8}, {"programs": ["a"] * 7 + ["b"]}]
    assert top_program_share(steps) == pytest.approx(15 / 16)
    assert top_program_share([{"programs": ["a", "b", "c", "d"]}]) == 0.25
    assert top_program_share([{"step": 1}]) == 0.0, "a log from before programs were recorded measures nothing"


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"last5_top_program_share": 0.95}, "collapsed onto one program"),
        ({"trusted_kernel_rejected": "OpenBLAS: rejected: impossible speed"}, "failed its own trusted kernel"),
        ({"openblas_gflops": 0.0, "comparison_error": "rejected: impossible speed"}, "not measured against OpenBLAS"),
    ],
)
def test_a_rising_number_with_an_insane_reward_is_a_failed_demo(
    tmp_path: Path, extra: dict[str, object], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ops.demo import _finish

    summary = {
        "steps": 10,
        "steps_planned": 10,
        "learning_ratio": 4.1,
        "stage_changes": 4,
        "best_gflops": 2.6,
        "openblas_gflops": 40.0,
        "last5_top_program_share": 0.4,
        **extra,
    }
    assert _finish(tmp_path, dict(summary), {"bus": 0, "trainer": 0}, time.monotonic()) == 1
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["learned"] is False and why in written["reward_insane"]
    assert why in capsys.readouterr().out
    sane = {**summary, "last5_top_program_share": 0.4, "openblas_gflops": 40.0}
    sane.pop("trusted_kernel_rejected", None)
    assert _finish(tmp_path, sane, {"bus": 0, "trainer": 0}, time.monotonic()) == 0


def test_the_demo_config_of_a_mix_trains_each_problem_with_speedup_rewards_and_stages_each(tmp_path: Path) -> None:
    path = tmp_path / "hpcrl.toml"
    text = config_text(tmp_path, tmp_path / "model", 20, 256, 0, 4, bus_endpoints(tmp_path), ("jacobi2d@1024",))
    path.write_text(text)
    trainer = load_trainer_config(str(path), env={})
    assert [(t.problem, t.size) for t in trainer.tasks] == [("dgemm", 256), ("jacobi2d", 1024)]
    assert trainer.rewards.preset == "log_speedup" and trainer.loop.prompts_per_step == 2
    assert section(ArchiveConfig, read_toml(path), "archive", env={}).problems == ["dgemm", "jacobi2d"]
