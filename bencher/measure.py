"""Run a built candidate in the sandbox and turn the monitor's records into a verdict and figures.

The monitor (bencher/harness/monitor.c) writes its records on the trusted channel; stdout and
stderr of the run are only ever shown, never parsed. Its figures are then checked against what
the bencher sees from outside: the repetitions cannot add up to more than the wall time the
bencher measured, the candidate may not compute between calls, and no figure may exceed the
node's peak.
"""

from __future__ import annotations

import math
import re
import shutil
import statistics
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from bencher.build import CANDIDATE_LIBRARY
from bencher.config import MIB, BencherConfig
from bencher.node import Node
from bencher.sandbox import Limits, Mount, Sandbox, SandboxError, SandboxRun
from bus.problems import Problem
from bus.schema import Verdict

MONITOR_STARTUP_S = 5.0
"""Wall-time allowance on top of the calls themselves: process start, input filling, verification."""
_RECORD_BYTES = 128
"""More than one `rep` line takes: the channel's capture holds every record of max_reps calls (a cut-off
channel reads as malformed, and that is charged)."""
_VERDICT_NAMES = {v.value: v for v in Verdict}


@dataclass(frozen=True)
class Measurement:
    verdict: Verdict
    detail: str = ""
    seconds: tuple[float, ...] = ()
    """Wall time of each timed call, measured by the monitor."""
    flop_count: float = 0.0
    """Floating-point operations of one call (0 for a problem that counts none)."""
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
    work: float = 0.0
    """What one call does in the problem metric's numerator: flops (`gflops`) or bytes (`gbps`)."""

    @property
    def gflops(self) -> tuple[float, ...]:
        """Floating-point rate of each timed call (empty for a problem that counts no flops)."""
        return tuple(self.flop_count / s * 1e-9 for s in self.seconds if s > 0) if self.flop_count else ()

    @property
    def gflops_median(self) -> float:
        return statistics.median(self.gflops) if self.gflops else 0.0

    @property
    def rates(self) -> tuple[float, ...]:
        """Each timed call's rate in the problem's metric (GFLOPS or GB/s)."""
        return tuple(self.work / s * 1e-9 for s in self.seconds if s > 0)

    @property
    def cv(self) -> float:
        """Coefficient of variation of the timed calls (sample std / mean)."""
        if len(self.seconds) < 2:
            return 0.0
        return statistics.stdev(self.seconds) / statistics.fmean(self.seconds)


def call_timeout_s(problem: Problem, n: int, config: BencherConfig) -> float:
    """A call slower than the problem's min_rate has failed; never more than call_timeout_max_s."""
    return min(config.call_timeout_max_s, max(0.5, problem.work(n) / (problem.min_rate * 1e9)))


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
        output_bytes=max(64 * 1024, _RECORD_BYTES * (config.warmup_reps + config.max_reps + 2) + 1024),
    )


def measure(
    binary: Path,
    problem: Problem,
    n: int,
    config: BencherConfig,
    node: Node,
    sandbox: Sandbox,
    cancel: threading.Event | None = None,
    trusted: bool = False,
) -> Measurement:
    """`trusted`: the bencher's own library kernel (OpenBLAS), run without the OpenMP runtime loaded before
    it (a defence against candidates' load-time code that would pin a pthreads library to one CPU)."""
    arguments = {
        "candidate": f"/tmp/work/bin/{CANDIDATE_LIBRARY}",
        "n": n,
        "full_check_max_n": problem.full_check_max_n,
        "tolerance": problem.tolerance,
        "warmup": config.warmup_reps,
        "min_reps": config.min_reps,
        "max_reps": config.max_reps,
        "max_seconds": config.max_measure_s,
        "cv_target": config.cv_target,
        "call_timeout_s": call_timeout_s(problem, n, config),
        "preload_openmp": 0 if trusted else 1,
    }
    limits = run_limits(problem, n, config, node.threads)
    with sandbox.host_dir("hpcrl-run-") as bin_dir:
        # The monitor and, beside it, the candidate's library that only the monitor's child loads.
        shutil.copyfile(binary, bin_dir / "bench")
        shutil.copyfile(binary.with_name(CANDIDATE_LIBRARY), bin_dir / CANDIDATE_LIBRARY)
        (bin_dir / "bench").chmod(0o755)
        try:
            run = sandbox.run(
                ["/tmp/work/bin/bench", *(f"{k}={v}" for k, v in arguments.items())],
                limits=limits,
                mounts=[Mount(bin_dir, "/tmp/work/bin")],
                env=_library_env(node) if trusted else node.openmp_env(),
                channel=True,
                cancel=cancel,
            )
        except SandboxError as error:
            return Measurement(Verdict.INFRA_ERROR, f"bencher fault while running: {error}")
    return judge(run, problem.flop_count(n), config, node, work=problem.work(n), peak_scale=problem.peak_scale)


MONITOR_FAULT_EXIT = 2
"""The monitor's exit status when it failed itself (bad arguments, no pipe, no getrandom): infra_error."""
_CHARGED_FAILURES = frozenset(
    {Verdict.WRONG_ANSWER, Verdict.TIMEOUT, Verdict.CRASH, Verdict.RESOURCE_LIMIT, Verdict.REJECTED}
)
"""The verdicts a `fail` record may carry from a monitor that worked (exit 0)."""
_NUMBER = r"(-?(?:\d+(?:\.\d*)?(?:e[-+]?\d+)?|nan|inf))"
_REP = re.compile(rf"rep (\d{{1,9}}) (warm|timed) {_NUMBER} {_NUMBER} {_NUMBER} {_NUMBER}")
_DONE = re.compile(r"done (\d{1,9})")
_FAIL = re.compile(r"fail ([a-z_]{1,32})(?: (.*))?")


@dataclass
class Records:
    """What the monitor's channel says, read strictly: anything but the exact grammar of docs/bencher.md
    (`rep`, then `done` or one `fail`, every field in range) sets `malformed` and nothing else counts."""

    seconds: list[float] = field(default_factory=list)
    """Timed calls."""
    calls_s: float = 0.0
    outside_cpu_s: float = 0.0
    max_error: float = 0.0
    failure: tuple[Verdict, str] | None = None
    done: bool = False
    malformed: str = ""
    """Why the records cannot be believed; empty when they can."""


def read_records(channel: bytes, config: BencherConfig) -> Records:
    """Parse the channel. Total: any input gives a Records, never an exception."""
    records = Records()
    text = channel.decode("ascii", errors="replace")
    if text and not text.endswith("\n"):
        records.malformed = "the last record is cut off"
        return records
    reps = timed = 0
    failed_check = False  # the last rep's error exceeded its bound: only `fail wrong_answer` may follow
    for number, line in enumerate(text.splitlines(), 1):
        problem = _read_line(line, records, reps, timed, failed_check, config)
        if problem:
            records.malformed = f"record {number} ({line[:80]!r}): {problem}"
            return records
        if line.startswith("rep "):
            reps += 1
            timed += line.split()[2] == "timed"
            # This call's own error against its own bound: bounds that depend on the inputs differ by call.
            failed_check = not float(line.split()[4]) <= float(line.split()[5])
    if not records.done and not records.failure:
        records.malformed = "no `done` or `fail` record"
    return records


def _read_line(line: str, records: Records, reps: int, timed: int, failed_check: bool, config: BencherConfig) -> str:
    """Fold one record into `records`; returns why it is malformed, or "" when it is not."""
    if records.done or records.failure:
        return "a record after the last one"
    if rep := _REP.fullmatch(line):
        index, kind = int(rep[1]), rep[2]
        seconds, error, bound, outside = (float(rep[i]) for i in range(3, 7))
        if failed_check:
            return "a call after one that failed its check"
        if index != reps:
            return f"repetition {index} where {reps} was due"
        if (kind == "warm") != (index < config.warmup_reps):
            return f"a {kind} call where the configuration has {config.warmup_reps} warm-up call(s)"
        if kind == "timed" and timed >= config.max_reps:
            return f"more than max_reps = {config.max_reps} timed calls"
        if not (math.isfinite(seconds) and seconds > 0):
            return f"call time {seconds} is not a positive number of seconds"
        if not (math.isfinite(bound) and bound > 0) or not (math.isfinite(outside) and outside >= 0):
            return "error bound or outside CPU time out of range"
        if error < 0:
            return "a negative error"
        records.calls_s += seconds
        records.outside_cpu_s += outside
        records.max_error = error if math.isnan(error) else max(records.max_error, error)
        if kind == "timed":
            records.seconds.append(seconds)
        return ""
    if done := _DONE.fullmatch(line):
        if failed_check:
            return "`done` after a call that failed its check"
        if int(done[1]) != timed or reps != config.warmup_reps + timed:
            return f"`done {done[1]}` after {reps} call(s), {timed} of them timed"
        if not config.min_reps <= timed <= config.max_reps:
            return f"{timed} timed calls, outside min_reps..max_reps = {config.min_reps}..{config.max_reps}"
        records.done = True
        return ""
    if fail := _FAIL.fullmatch(line):
        verdict, detail = _VERDICT_NAMES.get(fail[1]), fail[2] or ""
        if verdict is Verdict.INFRA_ERROR:
            records.failure = (verdict, detail)  # believed only with the monitor's fault exit status
            return ""
        if verdict not in _CHARGED_FAILURES:
            return f"`{fail[1]}` is not a verdict a run can fail with"
        if failed_check and verdict is not Verdict.WRONG_ANSWER:
            return "a failed check must end the run as wrong_answer"
        if not detail.isprintable():
            return "unprintable detail"
        records.failure = (verdict, detail)
        return ""
    return "not a record of the monitor's grammar"


def _library_env(node: Node) -> dict[str, str]:
    """The environment of the bencher's own library kernels: no OpenMP places or binding. libgomp binds the
    thread that loads it to the first place, and a pthreads library (OpenBLAS) then counts one CPU and runs
    one thread: 2-thread OpenBLAS measured one core (43 GFLOPS against 80 standalone)."""
    return {k: v for k, v in node.openmp_env().items() if k not in ("OMP_PLACES", "OMP_PROC_BIND")}


def judge(
    run: SandboxRun,
    flop_count: float,
    config: BencherConfig,
    node: Node,
    work: float | None = None,
    peak_scale: float = 1.0,
) -> Measurement:
    """The verdict of one run, from the monitor's records and the bencher's own view of the run. `work`: one
    call's work in the problem metric's numerator (bytes for a `gbps` problem); None: the flops. `peak_scale`:
    the problem's peak as a multiple of the node's double-precision peak (2 for single precision).

    Total: whatever the channel holds, the answer is a Measurement. Records that break the grammar, a
    monitor killed by a signal, or one that exits otherwise than 0 (worked) or 2 (its own fault) are
    charged to the candidate: its process is the only other one in the sandbox (docs/bencher.md)."""
    output = (run.stdout + run.stderr)[:500].decode(errors="replace")
    records = read_records(run.channel, config)
    seconds, outside_cpu, max_error = records.seconds, records.outside_cpu_s, records.max_error

    def result(verdict: Verdict, detail: str) -> Measurement:
        return Measurement(
            verdict,
            detail,
            tuple(seconds),
            flop_count,
            run.wall_s,
            outside_cpu,
            max_error,
            output,
            records.calls_s,
            work=flop_count if work is None else work,
        )

    if run.cancelled:
        return result(Verdict.INFRA_ERROR, "the run was cancelled (the bencher is stopping)")
    if run.timed_out:
        return result(Verdict.TIMEOUT, f"the run exceeded its wall-clock limit of {run.wall_s:.1f} s")
    if run.exit_code == MONITOR_FAULT_EXIT:
        said = records.failure[1] if records.failure and records.failure[0] is Verdict.INFRA_ERROR else ""
        return result(Verdict.INFRA_ERROR, f"the benchmark monitor failed: {said or run.describe()}")
    if run.signal is not None:
        return result(
            Verdict.CRASH,
            f"the benchmark monitor was {run.describe()}; only the candidate's process can signal it in the sandbox",
        )
    if run.exit_code != 0:
        return result(Verdict.CRASH, f"the benchmark monitor ended with {run.describe()} and no result")
    if records.malformed:
        return result(Verdict.REJECTED, f"the result channel holds a malformed record: {records.malformed}")
    if records.failure:
        if records.failure[0] is Verdict.INFRA_ERROR:
            return result(Verdict.REJECTED, "an infra_error record from a monitor that exited 0 (a forged record)")
        return result(*records.failure)
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
    if fastest.gflops and max(fastest.gflops) > node.peak_gflops * peak_scale * config.peak_margin:
        # Not yet a verdict: the pipeline re-checks (re-probes the node, re-measures) before charging it.
        return replace(
            result(
                Verdict.REJECTED,
                f"impossible speed: {max(fastest.gflops):.1f} GFLOPS exceeds this node's peak of "
                f"{node.peak_gflops * peak_scale:.1f} GFLOPS x {config.peak_margin:g} for {node.threads} thread(s)",
            ),
            over_peak=True,
        )
    return result(Verdict.OK, f"{len(seconds)} timed calls, max error {max_error:.2e}")
