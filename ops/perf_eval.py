"""`hpcrl perf eval`: what one sample of `hpcrl eval` costs, and where the time goes.

A real `hpcrl bus` and one single-threaded `hpcrl bencher` on loopback, laid out as the demo lays them out
(the evaluation on the first CPU, the bencher on the next), with the result cache off so every program is
measured; `hpcrl eval --json` of the tiny model (`--model DIR`, else the demo's cached one, built first if
missing; `--quick` builds a toy one) on the demo's three tasks (dgemm at 256 and 509, jacobi2d at 255). The
anchor is the work no evaluation can avoid: generating the samples and the benchers' own seconds on them;
`overhead_ratio` is the wall time per sample over that.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bus.daemon import setup_logging
from ops.demo import CpuPlan
from ops.demo_model import benchmark_model
from ops.perf import PerfReport
from ops.perf_bus import git_commit, machine_info
from ops.processes import HPCRL, Children, free_port

TASKS: Final = "dgemm@256,dgemm@509,jacobi2d@255"
STOP_TIMEOUT_S: Final = 15.0
EVAL_TIMEOUT_S: Final = 1200.0


@dataclass
class Report(PerfReport):
    benchmark: str = "eval"
    cost: dict[str, Any] = field(default_factory=dict)
    """eval.json's `cost`: samples, generate_s, measure_wait_s, bencher_s, per_sample_s, cached_results."""
    figures: dict[str, Any] = field(default_factory=dict)


def run(model: Path | None, samples: int, quick: bool) -> Report:
    plan = CpuPlan.of(sorted(os.sched_getaffinity(0)), max_benchers=1)
    report = Report(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        commit=git_commit(),
        quick=quick,
        machine=machine_info(),
        settings={
            "tasks": TASKS, "samples_per_task": samples, "max_completion_tokens": 200,
            "eval_cpus": list(plan.trainer), "bencher_cpus": list(plan.benchers), "result_cache": False,
        },
    )  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpcrl-perf-eval-") as tmp:
        work = Path(tmp)
        model = benchmark_model(model, quick, work, len(plan.trainer))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HPCRL_")},
            "HPCRL_BUS__REQUEST_ENDPOINT": f"tcp://127.0.0.1:{free_port()}",
            "HPCRL_BUS__EVENT_ENDPOINT": f"tcp://127.0.0.1:{free_port()}",
            "HPCRL_BENCHER__CALIBRATION_INTERVAL_S": "0",
            "HPCRL_BENCHER__RESULT_CACHE": "false",
            "HPCRL_BENCHER__CACHE_DIR": str(work / "bencher-cache"),
            "HPCRL_GRPO__MAX_COMPLETION_TOKENS": "200",
            "HPCRL_TRAINER__THREADS": "1",
        }
        children = Children(work, env)
        try:
            children.start("bus", "bus", "--journal", str(work / "j.sqlite"))
            children.start("bencher", "bencher", "--name", "perf-eval", cpus=plan.benchers)
            pin = ["taskset", "--cpu-list", ",".join(map(str, plan.trainer))]
            command = [*pin, *HPCRL, "eval", "--model", str(model), "--problems", TASKS, "--k", "1"]
            command += ["--samples", str(samples), "--out", str(work / "eval"), "--json"]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=EVAL_TIMEOUT_S)
            if done.returncode != 0:
                raise RuntimeError(f"hpcrl eval failed: {done.stderr[-2000:]}")
            evaluation = json.loads(done.stdout)
        finally:
            children.stop_all(STOP_TIMEOUT_S)
    cost = evaluation["cost"]
    report.cost = cost
    unavoidable = (cost["generate_s"] + cost["bencher_s"]) / max(1, cost["samples"])
    report.figures = {
        "per_sample_s": cost["per_sample_s"],
        "generate_per_sample_s": round(cost["generate_s"] / max(1, cost["samples"]), 4),
        "bencher_per_sample_s": round(cost["bencher_s"] / max(1, cost["samples"]), 4),
        "overhead_ratio": round(cost["per_sample_s"] / unavoidable, 3) if unavoidable else 0.0,
        "pass_at_1": evaluation["overall"]["pass_at_k"],
    }
    report.wall_s = round(time.perf_counter() - started, 1)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl perf eval", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a tiny run, for smoke tests")
    parser.add_argument("--model", type=Path, help="model directory (default: the demo's cached tiny model)")
    parser.add_argument("--samples", type=int, help="samples per task (default 8; quick 2)")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    report = run(args.model, args.samples or (2 if args.quick else 8), args.quick)
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
    else:
        print(f"cost: {json.dumps(report.cost)}\nfigures: {json.dumps(report.figures)}")
    return 0
