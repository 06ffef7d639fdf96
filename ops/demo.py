"""`hpcrl demo`: the whole system on this machine, learning to write faster DGEMM from real measurements.

1. The policy: the tiny model (`hpcrl tiny-model`), built once and cached under ~/.cache/hpcrl/tiny-model
   (4.5-6 minutes on 2 Intel AVX-512 cores, 13-20 on AMD Zen 3), or the model given with --model.
2. The processes, each an `hpcrl` subcommand reading one config file the demo writes (`hpcrl.toml` in the
   run directory): the broker, the SQD archive (the default stage ladder with short plateaus, so stages
   change within minutes), one single-threaded bencher per CPU left over, and the GRPO trainer. The trainer
   and each bencher are pinned to their own CPUs (taskset), so generation does not disturb measurements.
3. Training: the trainer starts once every bencher is up and the archive has announced stage 1; the demo
   follows its `trainer.step` and `stage.dgemm` events on the bus and shows a progress line per step
   (step, stage, reward, GFLOPS, verdict mix).
4. The end: every process is stopped (SIGTERM, the trainer first); the best elite is measured again
   next to OpenBLAS's DGEMM, alternately, three times, on a bencher's CPU, with the same threads and
   pipeline; the run directory gets `summary.json`, `training.png` (reward and GFLOPS per step with the
   stage changes), the archive's report PNGs, the logs, the journal, the archive and the checkpoints.

The demo succeeds (exit 0) when the trainer made every step, every process exited cleanly, and the run
learned: the mean measured GFLOPS of the last 5 steps at least LEARNING_TARGET times that of the first 5,
with at least one stage change, and the reward was sane. A rising number is not enough, because a wrong
reward also moves it (a peak measured too low once taught the policy to avoid fast code and still showed
"4.1x"). Sane means: the best elite was measured against OpenBLAS (the summary carries it as a fraction of
OpenBLAS on the same core), no trusted kernel (the benchers' calibration kernel, OpenBLAS) was failed by
the bencher, and the policy did not collapse onto one program: the most frequent program takes less than
COLLAPSE_SHARE of the last 5 steps' samples. Ctrl-C (or SIGTERM) stops every process cleanly and still
writes the summary of the steps made. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bus.config import BusConfig
from bus.problems import load_registry, parse_task
from ops.cli import missing_packages
from ops.demo_eval import evaluate_before_and_after
from ops.demo_model import MODEL_CACHE, ensure_tiny_model
from ops.demo_progress import follow_training
from ops.demo_results import compare_with_openblas, read_archive, read_training, trusted_kernel_failures
from ops.processes import EXTRAS_FIX, Children, free_port
from trainer import corpus
from trainer.checkpoint import latest as latest_checkpoint
from trainer.report import WINDOW

PROBLEM: Final = "dgemm"
RUN: Final = "demo"
"""The trainer's run id: candidates carry it and the archive's report draws it."""
STEPS: Final = 150
"""GRPO steps by default: about 2 minutes on 2 cores once the model is built (docs/trainer.md)."""
SIZE: Final = 256
SIZES: Final = (128, 256, 512)
"""Sizes offered: n=256 separates the technique ladder (naive ~1.5, i-k-j ~15, register-blocked ~30
GFLOPS on one core) while a naive candidate still takes milliseconds per call."""
LEARNING_TARGET: Final = 2.0
"""Required ratio of the last 5 steps' mean GFLOPS to the first 5 steps'."""
BENCHER_DRAIN_TIMEOUT_S: Final = 5.0
STOP_TIMEOUT_S: Final = 30.0
"""How long a process may take to exit after SIGTERM (the trainer writes its last checkpoint) before a kill."""
MAX_SOCKET_PATH: Final = 107
COMPARISON_ROUNDS: Final = 3
"""Alternating measurements of the best elite and OpenBLAS at the end (medians are reported)."""
COLLAPSE_SHARE: Final = 0.9
"""The policy has collapsed when one program is this share of the last 5 steps' samples or more."""
EVAL_SAMPLES: Final = 6
"""Completions per task when the base model and the trained adapter are evaluated after training (k = 1)."""


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs the trainer and the benchers run on: the trainer gets the first, each other CPU one
    single-threaded bencher (at most one per sample of a step: more would idle)."""

    trainer: tuple[int, ...]
    benchers: tuple[int, ...]

    @classmethod
    def of(cls, cpus: list[int], max_benchers: int, benchers: int = 0) -> CpuPlan:
        cpus = sorted(cpus)
        if len(cpus) == 1:
            return cls(trainer=(cpus[0],), benchers=(cpus[0],))  # they share it: measurements will be noisy
        spare = cpus[1:][: max(1, min(benchers or max_benchers, max_benchers))]
        return cls(trainer=(cpus[0],), benchers=tuple(spare))

    @property
    def shared(self) -> bool:
        return bool(set(self.trainer) & set(self.benchers))


def bus_endpoints(run_dir: Path) -> BusConfig:
    """Unix sockets in the run directory; loopback TCP on free ports when its path is too long for one
    (a socket path holds at most 107 bytes)."""
    if len(str(run_dir / "request.sock").encode()) <= MAX_SOCKET_PATH:
        return BusConfig(request_endpoint=f"ipc://{run_dir}/request.sock", event_endpoint=f"ipc://{run_dir}/event.sock")
    return BusConfig(request_endpoint=f"tcp://127.0.0.1:{free_port()}", event_endpoint=f"tcp://127.0.0.1:{free_port()}")


def config_text(
    run_dir: Path,
    model_dir: Path,
    steps: int,
    size: int,
    seed: int,
    group_size: int,
    bus: BusConfig,
    mix: tuple[str, ...] = (),
) -> str:
    """The demo's `hpcrl.toml`: every process reads it, and a user can re-run any piece with it. `mix`: other
    `id@size` tasks to train on beside dgemm at `size` (then rewarded by log speedup, docs/trainer.md)."""
    text = json.dumps  # a JSON string is a TOML basic string: paths with quotes or backslashes stay intact
    tasks = [f"{PROBLEM}@{size}", *mix]
    problems = sorted({task.split("@")[0] for task in tasks})
    trained = (
        f"problems = {text(tasks)}\nprompts_per_step = {len(tasks)}"
        if mix
        else f'problem = "{PROBLEM}"\nsize = {size}\nprompts_per_step = 1'
    )
    rewards = '\n[rewards]\npreset = "log_speedup"     # a mix: rates of different problems compare as speedups\n'
    return f"""\
# Written by `hpcrl demo`: the configuration of every process of this run.

[bus]
request_endpoint = {text(bus.request_endpoint)}
event_endpoint = {text(bus.event_endpoint)}

[bencher]
cache_dir = {text(f"{run_dir}/bencher-cache")}
calibration_size = {size}
calibration_interval_s = 3600.0     # once at start: the demo is shorter
drain_timeout_s = {BENCHER_DRAIN_TIMEOUT_S}

[archive]
db_path = {text(f"{run_dir}/archive.sqlite")}
problems = {text(problems)}
# The default stage ladder, with plateaus short enough for a few minutes: a stage ends when its best
# improved by less than 5% over the last 64 results (8 steps), or after 200 results.
plateau_window = 64
plateau_improvement = 0.05
min_coverage = 0.0
max_results = 200

[trainer]
run = "{RUN}"
run_dir = {text(f"{run_dir}/trainer")}
{trained}
steps = {steps}
threads = 1
checkpoint_every = 10
seed = {seed}
result_timeout_s = 120.0

[policy]
model_dir = {text(str(model_dir))}

[grpo]
group_size = {group_size}
# A tiny model's LoRA adapter needs a far larger step than a 14B model's 1e-5.
learning_rate = 1e-3
max_completion_tokens = 200
{rewards if mix else ""}"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run-dir", help="directory for logs, journal, archive, checkpoints and summary (default: new)"
    )
    parser.add_argument("--steps", type=int, default=STEPS, help=f"GRPO steps (default {STEPS})")
    parser.add_argument("--size", type=int, default=SIZE, choices=SIZES, help=f"matrix size n (default {SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="the trainer's seed (default 0)")
    parser.add_argument("--group-size", type=int, default=8, help="samples per step, one GRPO group (default 8)")
    parser.add_argument("--benchers", type=int, default=0, help="benchers to start (default: one per spare CPU)")
    parser.add_argument(
        "--mix",
        default="",
        help="train on these id@size tasks too, beside dgemm (e.g. jacobi2d@1024; the tiny model knows dgemm and "
        "jacobi2d); rewards become log speedups over each node's naive code",
    )
    parser.add_argument(
        "--eval-samples",
        type=int,
        default=EVAL_SAMPLES,
        help=f"completions per task in the before/after evaluation (default {EVAL_SAMPLES}; 0: none)",
    )
    parser.add_argument("--model", help="a local Hugging Face model directory to train instead of the tiny model")
    parser.add_argument(
        "--model-cache", default=MODEL_CACHE, help=f"where the tiny model is built and kept (default {MODEL_CACHE})"
    )
    args = parser.parse_args(argv)
    if args.steps < 2 * WINDOW:
        parser.exit(2, f"{parser.prog}: --steps must be >= {2 * WINDOW} (the first and last {WINDOW} are compared)\n")
    if args.group_size < 2 or args.benchers < 0 or args.eval_samples < 0:
        parser.exit(2, f"{parser.prog}: --group-size must be >= 2, --benchers and --eval-samples >= 0\n")
    try:
        mix = _mix(args.mix, known=None if args.model else corpus.SIGNATURES)  # what the tiny model was taught
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: --mix: {error}\n")
    if args.model and not (Path(args.model) / "config.json").is_file():
        parser.exit(
            2,
            f"{parser.prog}: --model {args.model} is not a Hugging Face model directory (no config.json); leave "
            "--model out to use the tiny model, or build one with `hpcrl tiny-model --out DIR`\n",
        )
    missing = missing_packages("archive", "train")
    if missing:
        print(f"hpcrl demo: needs the Python packages {', '.join(missing)}\n  fix: {EXTRAS_FIX}")
        return 1

    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="hpcrl-demo-")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    interrupted: list[bool] = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    signal.signal(signal.SIGTERM, lambda *_: interrupted.append(True))
    started = time.monotonic()
    plan = CpuPlan.of(sorted(os.sched_getaffinity(0)), args.group_size, args.benchers)
    print(f"hpcrl demo: run directory {run_dir}")
    print(
        f"  trainer on CPU {','.join(map(str, plan.trainer))}; {len(plan.benchers)} single-threaded bencher(s) on "
        f"CPU {','.join(map(str, plan.benchers))}"
        + ("  (one CPU only: trainer and bencher share it, measurements will be noisy)" if plan.shared else "")
    )
    summary: dict[str, Any] = {"run_dir": str(run_dir), "steps_planned": args.steps, "size": args.size}

    model_dir, model_note = (
        (Path(args.model).resolve(), "given")
        if args.model
        else ensure_tiny_model(
            Path(args.model_cache).expanduser(), run_dir, len(set(plan.trainer + plan.benchers)), interrupted
        )
    )
    summary["model"] = {"dir": str(model_dir or ""), "source": model_note}
    if model_dir is None or interrupted:
        summary["error"] = model_note if model_dir is None else "interrupted"
        return _finish(run_dir, summary, {}, started)
    config = run_dir / "hpcrl.toml"
    bus = bus_endpoints(run_dir)
    config.write_text(config_text(run_dir, model_dir, args.steps, args.size, args.seed, args.group_size, bus, mix))
    # The file decides: HPCRL_* variables left in the shell by other runs must not change the demo.
    children = Children(run_dir, {k: v for k, v in os.environ.items() if not k.startswith("HPCRL_")})

    train_started = time.monotonic()
    try:
        children.start("bus", "bus", "--config", str(config), "--journal", str(run_dir / "journal.sqlite"))
        children.start("archive", "archive", "--config", str(config))
        for cpu in plan.benchers:
            children.start(f"bencher-{cpu}", "bencher", "--config", str(config), "--name", f"bencher-{cpu}", cpus=[cpu])
        summary.update(
            follow_training(
                bus, children, config, plan.trainer, len(plan.benchers), RUN, PROBLEM, args.steps, interrupted
            )
        )
        if args.eval_samples and not interrupted and not summary.get("error"):
            summary["eval_planned"] = True
            adapter = latest_checkpoint(run_dir / "trainer")
            summary.update(
                evaluate_before_and_after(
                    children,
                    config,
                    model_dir,
                    adapter / "adapter" if adapter else None,
                    [f"{PROBLEM}@{args.size}", *mix],
                    args.eval_samples,
                    plan.trainer,
                )
            )
    finally:
        codes = children.stop_all(STOP_TIMEOUT_S)
    summary["train_wall_s"] = round(time.monotonic() - train_started, 1)
    summary["exit_codes"] = codes

    summary.update(read_training(run_dir / "trainer", WINDOW, run_dir))
    summary.update(read_archive(run_dir / "archive.sqlite", RUN, PROBLEM, run_dir))
    if summary.get("best_source") and not interrupted:
        try:
            summary.update(
                compare_with_openblas(config, summary["best_source"], args.size, plan.benchers[0], COMPARISON_ROUNDS)
            )
        except Exception as error:  # the run's summary must be written whatever the comparison hit
            summary["comparison_error"] = f"{type(error).__name__}: {error}"
    calibration_failures = trusted_kernel_failures(run_dir)
    if calibration_failures and "trusted_kernel_rejected" not in summary:
        summary["trusted_kernel_rejected"] = calibration_failures[0]
    return _finish(run_dir, summary, codes, started)


def _mix(text: str, known: Collection[str] | None) -> tuple[str, ...]:
    """`--mix`'s tasks, checked against the problem registry (and, for the tiny model, what it was taught)."""
    registry = load_registry()
    tasks = [parse_task(entry.strip(), registry) for entry in text.split(",") if entry.strip()]
    unknown = sorted({t.problem for t in tasks} - set(known)) if known is not None else []
    if unknown:
        raise ValueError(f"the tiny model was taught {sorted(known or ())} only, not {unknown}: use --model DIR")
    return tuple(f"{t.problem}@{t.size}" for t in tasks)


def _finish(run_dir: Path, summary: dict[str, Any], codes: dict[str, int], started: float) -> int:
    summary["wall_s"] = round(time.monotonic() - started, 1)
    summary.pop("best_source", None)
    insane = _insane_reward(summary)
    if insane:
        summary["reward_insane"] = insane
    learned = (
        summary.get("learning_ratio", 0.0) >= LEARNING_TARGET and summary.get("stage_changes", 0) >= 1 and not insane
    )
    complete = summary.get("steps", 0) >= summary.get("steps_planned", 1)
    if summary.get("eval_planned") and not summary.get("eval_trained") and not summary.get("eval_error"):
        summary["eval_error"] = "the evaluation did not run"
    summary["learned"] = learned
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary)
    ok = (
        learned
        and complete
        and not summary.get("error")
        and not summary.get("eval_error")
        and bool(codes)
        and not any(codes.values())
    )
    print(f"\nhpcrl demo: summary in {run_dir / 'summary.json'}; every process stopped (exit codes {codes or 'none'})")
    if not ok:
        print("hpcrl demo: FAILED: " + _why_failed(summary, codes, learned, complete))
    return 0 if ok else 1


def _insane_reward(summary: dict[str, Any]) -> str:
    """Why the run's reward cannot be trusted, or "" (see the module docstring)."""
    if summary.get("trusted_kernel_rejected"):
        return f"the bencher failed its own trusted kernel: {summary['trusted_kernel_rejected']}"
    share = summary.get(f"last{WINDOW}_top_program_share", 0.0)
    if share >= COLLAPSE_SHARE:
        return (
            f"the policy collapsed onto one program ({share:.0%} of the last {WINDOW} steps' samples, limit "
            f"{COLLAPSE_SHARE:.0%}): the reward is teaching it one thing only"
        )
    if summary.get("best_gflops") and not summary.get("openblas_gflops"):
        return f"the best elite was not measured against OpenBLAS: {summary.get('comparison_error', 'not run')}"
    return ""


def _why_failed(summary: dict[str, Any], codes: dict[str, int], learned: bool, complete: bool) -> str:
    if summary.get("error"):
        return str(summary["error"])
    if summary.get("eval_error"):
        return f"the before/after evaluation failed: {summary['eval_error']}"
    if not complete:
        return f"the trainer made {summary.get('steps', 0)} of {summary.get('steps_planned')} steps"
    if codes and any(codes.values()):
        return f"a process exited with an error: {codes} (see its log in the run directory)"
    if summary.get("reward_insane"):
        return f"the reward was not sane: {summary['reward_insane']}"
    return (
        f"no learning shown: last/first {WINDOW}-step GFLOPS ratio {summary.get('learning_ratio', 0):.2f} "
        f"(target >= {LEARNING_TARGET}) with {summary.get('stage_changes', 0)} stage change(s) (target >= 1)"
    )


def _print_summary(summary: dict[str, Any]) -> None:
    if "first5_mean_gflops" not in summary:
        return
    print(
        f"\n  learning: mean GFLOPS of the sampled candidates, first {WINDOW} steps "
        f"{summary['first5_mean_gflops']:.2f}, last {WINDOW} steps {summary['last5_mean_gflops']:.2f}: "
        f"{summary['learning_ratio']:.2f}x (target >= {LEARNING_TARGET}x)"
    )
    for change in summary.get("stage_history", []):
        print(
            f"  stage {change['from_stage']} -> {change['to_stage']} after {change['results_in_stage']} results: "
            f"{change['reason']}"
        )
    for stage, elites in sorted(summary.get("elites_per_stage", {}).items()):
        best = max(elites, key=lambda e: e["objective"])
        print(f"  elites found in stage {stage}: {len(elites)}, best {best['objective']:.2f} GFLOPS in {best['cell']}")
    if summary.get("openblas_gflops"):
        print(
            f"  best elite {summary['best_gflops']:.2f} GFLOPS (archive); measured again next to OpenBLAS "
            f"({summary['comparison_threads']} thread(s), n={summary['size']}, {COMPARISON_ROUNDS} rounds): "
            f"{summary['best_remeasured_gflops']:.2f} vs OpenBLAS {summary['openblas_gflops']:.2f} GFLOPS "
            f"= {summary['best_vs_openblas']:.2f} of OpenBLAS"
        )
    elif summary.get("comparison_error"):
        print(f"  best elite vs OpenBLAS: not measured: {summary['comparison_error']}")
    if summary.get(f"last{WINDOW}_top_program_share"):
        print(
            f"  diversity: the most frequent program is {summary[f'last{WINDOW}_top_program_share']:.0%} of the "
            f"last {WINDOW} steps' samples (collapse at >= {COLLAPSE_SHARE:.0%})"
        )
    if summary.get("trainer_idle_ratio_mean") is not None:
        print(
            f"  idle: trainer {summary['trainer_idle_ratio_mean']:.0%} of its step time waiting for results, "
            f"benchers {summary['bencher_idle_ratio_mean']:.0%} of theirs without a fresh candidate"
        )
    if summary.get("report"):
        print(f"  report: {', '.join(Path(p).name for p in summary['report'])}")
    if summary.get("eval_comparison"):
        print(f"\n  before (base model) and after (trained adapter), {', '.join(summary['eval_tasks'])}:")
        print("    " + summary["eval_comparison"].replace("\n", "\n    "))
