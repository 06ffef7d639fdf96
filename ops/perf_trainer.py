"""`hpcrl perf trainer`: the trainer's step time split, with and without pipelining, on the demo problem.

A real `hpcrl bus` and `hpcrl bencher` on loopback and the tiny model (`--model DIR`, else the demo's
cached one, built first if missing; `--quick` builds a toy one); laid out as the demo lays them out (this
process pinned to the first CPU, one single-threaded bencher on the next). The trainer runs in this
process, first synchronously (max_staleness 0: the
wait is the benchers' time for a step), then pipelined (max_staleness 1: the next step is generated
during the wait). Target (issue 5): the pipelined step is within 15% of
max(generate + update, benchmark), the part no schedule can hide.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bus.config import BusConfig, ClientConfig, load_config
from bus.daemon import setup_logging
from ops.demo import CpuPlan
from ops.demo_model import benchmark_model
from ops.perf import PerfReport
from ops.perf_bus import git_commit, machine_info
from ops.processes import Children, free_port
from trainer.steplog import read_log

SIZE: Final = 128
STOP_TIMEOUT_S: Final = 15.0
TARGET_PIPELINE_RATIO: Final = 1.15
"""Pipelined step time over max(generate + update, benchmark) (issue #5)."""


@dataclass
class Report(PerfReport):
    benchmark: str = "trainer"
    synchronous: dict[str, Any] = field(default_factory=dict)
    pipelined: dict[str, Any] = field(default_factory=dict)


def _trainer_config(model: Path, run_dir: Path, steps: int, staleness: int, size: int) -> Any:
    from trainer.config import LoopConfig, TrainerConfig
    from trainer.grpo import GRPOConfig
    from trainer.policy import PolicyConfig
    from trainer.rewards import RewardConfig

    return TrainerConfig(
        loop=LoopConfig(
            run=f"perf-{staleness}", run_dir=str(run_dir), size=size, steps=steps, prompts_per_step=2,
            max_staleness=staleness, checkpoint_every=1000, threads=1, result_timeout_s=300,
        ),
        policy=PolicyConfig(model_dir=str(model)),
        rewards=RewardConfig(),
        grpo=GRPOConfig(group_size=4, max_completion_tokens=200),
    )  # fmt: skip


def _summary(run_dir: Path) -> dict[str, float]:
    records = read_log(run_dir)[1:]  # warm-up out

    def mean(key: str) -> float:
        return round(statistics.fmean(float(r[key]) for r in records), 4)

    samples = sum(sum(r["verdicts"].values()) for r in records)
    update_s = sum(float(r["update_s"]) for r in records)
    return {
        "steps_measured": len(records),
        "step_s": mean("step_s"),
        "generate_s": mean("generate_s"),
        "wait_s": mean("wait_s"),
        "update_s": mean("update_s"),
        "tokens_per_s": mean("tokens_per_s"),
        "update_samples_per_s": round(samples / update_s, 1) if update_s else 0.0,
        "idle_ratio": mean("idle_ratio"),
        "bencher_idle_ratio": mean("bencher_idle_ratio"),
    }


def run(model: Path | None, steps: int, quick: bool) -> Report:
    from trainer.loop import Trainer

    # The demo's layout: the trainer on the first CPU, one single-threaded bencher on the next.
    plan = CpuPlan.of(sorted(os.sched_getaffinity(0)), max_benchers=1)
    report = Report(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        commit=git_commit(),
        quick=quick,
        machine=machine_info(),
        settings={
            "steps": steps, "size": SIZE, "prompts_per_step": 2, "group_size": 4,
            "trainer_cpus": list(plan.trainer), "bencher_cpus": list(plan.benchers),
        },
    )  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpcrl-perf-trainer-") as tmp:
        work = Path(tmp)
        model = benchmark_model(model, quick, work, len(plan.trainer))
        ports = free_port(), free_port()
        bus = BusConfig(request_endpoint=f"tcp://127.0.0.1:{ports[0]}", event_endpoint=f"tcp://127.0.0.1:{ports[1]}")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HPCRL_")},
            "HPCRL_BUS__REQUEST_ENDPOINT": bus.request_endpoint,
            "HPCRL_BUS__EVENT_ENDPOINT": bus.event_endpoint,
            "HPCRL_BENCHER__CALIBRATION_INTERVAL_S": "0",
            # Every sample measured: the two modes must not differ by cache hits on repeated programs.
            "HPCRL_BENCHER__RESULT_CACHE": "false",
        }
        children = Children(work, env)
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, set(plan.trainer))
        try:
            children.start("bus", "bus", "--journal", str(work / "j.sqlite"))
            hpcrl = dataclasses.replace(load_config(None, env={}), bus=bus, client=ClientConfig())
            for staleness, name in ((0, "synchronous"), (1, "pipelined")):
                # A fresh bencher and cache per mode: the second mode must not find the first's builds.
                children.env["HPCRL_BENCHER__CACHE_DIR"] = str(work / f"bencher-cache-{name}")
                children.start(f"bencher-{name}", "bencher", "--name", f"perf-{name}", cpus=plan.benchers)
                try:
                    run_dir = work / name
                    Trainer(hpcrl, _trainer_config(model, run_dir, steps, staleness, SIZE)).run()
                    setattr(report, name, _summary(run_dir))
                finally:
                    children.stop([f"bencher-{name}"], STOP_TIMEOUT_S)
        finally:
            os.sched_setaffinity(0, affinity)
            children.stop_all(STOP_TIMEOUT_S)
    sync, piped = report.synchronous, report.pipelined
    unavoidable = max(sync["generate_s"] + sync["update_s"], sync["wait_s"])
    ratio = piped["step_s"] / unavoidable if unavoidable else 0.0
    report.targets = {
        "pipelined_vs_unavoidable": {
            "value": round(ratio, 3),
            "unavoidable_s": round(unavoidable, 4),
            "target": f"<= {TARGET_PIPELINE_RATIO}",
            "met": ratio <= TARGET_PIPELINE_RATIO,
        }
    }
    report.wall_s = round(time.perf_counter() - started, 1)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl perf trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a tiny run, for smoke tests")
    parser.add_argument("--model", type=Path, help="model directory (default: the demo's cached tiny model)")
    parser.add_argument("--steps", type=int, help="steps per mode (default 8; quick 3)")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    report = run(args.model, args.steps or (3 if args.quick else 8), args.quick)
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
    else:
        for section in ("synchronous", "pipelined", "targets"):
            print(f"{section}: {json.dumps(getattr(report, section))}")
    return 0
