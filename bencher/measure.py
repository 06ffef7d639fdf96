"""Run a built candidate in the sandbox and turn the monitor's records into a verdict and figures.

The monitor (bencher/harness/monitor.c) writes its records on the trusted channel; stdout and
stderr of the run are only ever shown, never parsed. Its figures are then checked against what
the bencher sees from outside: the repetitions cannot add up to more than the wall time the
bencher measured, the candidate may not compute between calls, and no figure may exceed the
node's peak.
"""

from __future__ import annotations

import math
import shutil
import statistics
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from bencher.config import MIB, BencherConfig
from bencher.node import Node
from bencher.registry import Problem
from bencher.sandbox import Limits, Mount, Sandbox, SandboxError, SandboxRun
from bus.schema import Verdict

MONITOR_STARTUP_S = 5.0
"""Wall-time allowance on top of the calls themselves: process start, input filling, verification."""
_VERDICT_NAMES = {v.value: v for v in Verdict}


@dataclass(frozen=True)
class Measurement:
    verdict: Verdict
    detail: str = ""
    seconds: tuple[float, ...] = ()
    """Wall time of each timed call, measured by the monitor."""
    flop_count: float = 0.0
    run_s: float = 0.0
    """Wall time of the whole sandboxed run, measured by the bencher."""
    outside_cpu_s: float = 0.0
    max_error: float = 0.0
    output: str = field(default="", repr=False)
    """The start of what the candidate printed (for humans only)."""
    calls_s: float = 0.0
    """Wall time of every call the monitor reported, warm-up and timed: the candidate's own share of run_s."""
    over_peak: bool = False
    """Rejected only because a call beat the node's peak: to be confirmed before it is charged."""

    @property
    def gflops(self) -> tuple[float, ...]:
        return tuple(self.flop_count / s * 1e-9 for s in self.seconds if s > 0)

    @property
    def gflops_median(self) -> float:
        return statistics.median(self.gflops) if self.gflops else 0.0

    @property
    def cv(self) -> float:
        """Coefficient of variation of the timed calls (sample std / mean)."""
        if len(self.seconds) < 2:
            return 0.0
        return statistics.stdev(self.seconds) / statistics.fmean(self.seconds)


def call_timeout_s(problem: Problem, n: int, config: BencherConfig) -> float:
    """A call slower than the problem's min_gflops has failed; never more than call_timeout_max_s."""
    return min(config.call_timeout_max_s, max(0.5, problem.flop_count(n) / (problem.min_gflops * 1e9)))


def run_limits(problem: Problem, n: int, config: BencherConfig, threads: int) -> Limits:
    per_call = call_timeout_s(problem, n, config)
    calls_before_stop = config.warmup_reps + config.min_reps
    wall = MONITOR_STARTUP_S + per_call * calls_before_stop + config.max_measure_s + per_call
    return Limits(
        wall_s=wall,
        cpu_s=math.ceil(wall * threads) + 1,
        address_space_bytes=config.run_memory_bytes,
        processes=config.run_processes,
        file_size_bytes=16 * MIB,
        open_files=128,
        tmpfs_bytes=64 * MIB,
    )


def measure(
    binary: Path,
    problem: Problem,
    n: int,
    config: BencherConfig,
    node: Node,
    sandbox: Sandbox,
    cancel: threading.Event | None = None,
) -> Measurement:
    arguments = {
        "n": n,
        "full_check_max_n": problem.full_check_max_n,
        "tolerance": problem.tolerance,
        "warmup": config.warmup_reps,
        "min_reps": config.min_reps,
        "max_reps": config.max_reps,
        "max_seconds": config.max_measure_s,
        "cv_target": config.cv_target,
        "call_timeout_s": call_timeout_s(problem, n, config),
    }
    limits = run_limits(problem, n, config, node.threads)
    with sandbox.host_dir("hpcrl-run-") as bin_dir:
        shutil.copyfile(binary, bin_dir / "bench")
        (bin_dir / "bench").chmod(0o755)
        try:
            run = sandbox.run(
                ["/tmp/work/bin/bench", *(f"{k}={v}" for k, v in arguments.items())],
                limits=limits,
                mounts=[Mount(bin_dir, "/tmp/work/bin")],
                env=node.openmp_env(),
                channel=True,
                cancel=cancel,
            )
        except SandboxError as error:
            return Measurement(Verdict.INFRA_ERROR, f"bencher fault while running: {error}")
    return judge(run, problem.flop_count(n), config, node)


def judge(run: SandboxRun, flop_count: float, config: BencherConfig, node: Node) -> Measurement:
    """The verdict of one run, from the monitor's records and the bencher's own view of the run."""
    output = (run.stdout + run.stderr)[:500].decode(errors="replace")
    seconds: list[float] = []
    outside_cpu = max_error = calls_s = 0.0
    failure: tuple[Verdict, str] | None = None
    done = False
    for line in run.channel.decode(errors="replace").splitlines():
        kind, _, rest = line.partition(" ")
        fields = rest.split()
        if kind == "rep" and len(fields) == 6:
            outside_cpu += float(fields[5])
            calls_s += float(fields[2])
            max_error = max(max_error, float(fields[3]))
            if fields[1] == "timed":
                seconds.append(float(fields[2]))
        elif kind == "fail" and fields:
            verdict = _VERDICT_NAMES.get(fields[0], Verdict.INFRA_ERROR)
            failure = (verdict, rest[len(fields[0]) :].strip())
        elif kind == "done":
            done = True

    def result(verdict: Verdict, detail: str) -> Measurement:
        return Measurement(
            verdict, detail, tuple(seconds), flop_count, run.wall_s, outside_cpu, max_error, output, calls_s
        )

    if run.cancelled:
        return result(Verdict.INFRA_ERROR, "the run was cancelled (the bencher is stopping)")
    if run.timed_out:
        return result(Verdict.TIMEOUT, f"the run exceeded its wall-clock limit of {run.wall_s:.1f} s")
    if failure:
        return result(*failure)
    if not done or run.exit_code != 0:
        return result(Verdict.INFRA_ERROR, f"the benchmark monitor ended without a result: {run.describe()}")
    calls = len(seconds) + config.warmup_reps
    if sum(seconds) > run.wall_s:
        return result(
            Verdict.REJECTED, f"timed calls add up to {sum(seconds):.3f} s, more than the run's {run.wall_s:.3f} s"
        )
    if outside_cpu > config.outside_cpu_s_per_call * calls:
        return result(
            Verdict.REJECTED,
            f"the candidate used {outside_cpu:.3f} CPU seconds between calls (work outside the timed call, "
            "e.g. a background thread)",
        )
    fastest = result(Verdict.OK, "")
    if fastest.gflops and max(fastest.gflops) > node.peak_gflops * config.peak_margin:
        # Not yet a verdict: the pipeline re-checks (re-probes the node, re-measures) before charging it.
        return replace(
            result(
                Verdict.REJECTED,
                f"impossible speed: {max(fastest.gflops):.1f} GFLOPS exceeds this node's peak of "
                f"{node.peak_gflops:.1f} GFLOPS x {config.peak_margin:g} for {node.threads} thread(s)",
            ),
            over_peak=True,
        )
    return result(Verdict.OK, f"{len(seconds)} timed calls, max error {max_error:.2e}")
