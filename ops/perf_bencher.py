"""`hpcrl perf bencher`: what the bencher costs per candidate, how faithfully it measures, and how
many candidates a bencher daemon sustains.

  overhead   a typical n=512 candidate (tests/bencher_ladder/tiled.c) through Pipeline.evaluate, no
             cache: total wall minus the compiler's own time (the identical gcc compile and link run
             directly on the host, interleaved) minus the candidate's own calls (warm-up and timed).
  fidelity   the calibration kernel and OpenBLAS's DGEMM measured by the bencher and by a standalone
             timing program (bencher/kernels/standalone_timer.c: no sandbox, no fork, inputs filled
             once), interleaved, with the same OpenMP environment.
  ladder     the best of tests/bencher_ladder/*.c through the bencher, as a fraction of OpenBLAS.
  cache      latency of a result-cache hit (the second evaluate of a source).
  daemon     results per second from real `hpcrl bus` + `hpcrl bencher` processes on loopback, for
             distinct trivial candidates and for repeats of one (cache hits).
What is compared alternates (A B A B ...) and the report gives medians, because this 2-core machine
is noisy (docs/performance.md). A figure counts only after its sanity check: every candidate's
verdict is ok, the standalone timer's sampled elements are right, every daemon result comes back.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime
import json
import logging
import os
import re
import shlex
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

from bencher.build import CANDIDATE_FLAGS, CANDIDATE_LIBRARY, LINK_FLAGS, Build, Builder, compiler_identity
from bencher.calibration import (
    LIBRARY_OUTSIDE_CPU_S_PER_CALL,
    OPENBLAS_KERNEL,
    OPENBLAS_LIBRARIES,
    REFERENCE_KERNEL,
    library_pipeline,
)
from bencher.config import BencherConfig
from bencher.evaluation import Evaluation
from bencher.measure import judge, run_limits
from bencher.node import KERNELS_DIR, Node, detect_node
from bencher.pipeline import Pipeline
from bencher.sandbox import Mount, Sandbox, SandboxError, SandboxRun
from bus.client import BusClient
from bus.config import BusConfig, ClientConfig
from bus.daemon import setup_logging
from bus.problems import Problem, get_problem
from bus.schema import Result, Verdict
from ops.bench_demo import NAIVE
from ops.perf import PerfReport
from ops.perf_bus import git_commit, machine_info
from ops.perf_bus_sites import HPCRL, POLL_SLICE_S, REPO, START_TIMEOUT_S, PerfError, Processes, clean_env
from ops.processes import free_port

log = logging.getLogger(__name__)

TARGET_OVERHEAD_MS: Final = 30.0
"""Bencher time per candidate beyond the compiler and the candidate's own calls (issue #3)."""
TARGET_OVERHEAD_RATIO: Final = 0.10
"""The same overhead as a fraction of the candidate's whole evaluation (issue #3)."""
TARGET_FIDELITY_TOLERANCE: Final = 0.03
"""|bencher GFLOPS / standalone GFLOPS - 1| for the calibration kernel and OpenBLAS (issue #3)."""
TARGET_CV: Final = 0.02
"""Coefficient of variation of the bencher's timed calls on a quiet node (issue #3)."""

PROBLEM: Final = "dgemm"
SIZE: Final = 512
"""n of the overhead, fidelity and ladder figures (the calibration size)."""
DAEMON_SIZE: Final = 128
"""n of the daemon throughput and cache figures: trivial candidates, where the bencher's own cost shows."""
LADDER_DIR: Final = REPO / "tests" / "bencher_ladder"
TYPICAL_CANDIDATE: Final = LADDER_DIR / "tiled.c"
TRIVIAL_CANDIDATE: Final = NAIVE
"""The textbook i-j-k triple loop: correct, and about as cheap to compile and run as a candidate gets."""
STANDALONE_TIMER: Final = KERNELS_DIR / "standalone_timer.c"
BATCH_TIMEOUT_S: Final = 300.0
"""Longest wait for one batch of daemon results."""
STANDALONE_TIMEOUT_S: Final = 120.0
"""Longest run of one standalone timing program (or one direct compile)."""


@dataclass(frozen=True)
class PerfBencherConfig:
    """Sizes of one `hpcrl perf bencher` run. FULL is the documented benchmark; QUICK a smoke run."""

    overhead_repeats: int = 9
    """Interleaved repetitions (Pipeline.evaluate, direct compile) of the overhead measurement."""
    fidelity_repeats: int = 9
    """Interleaved repetitions (bencher, standalone) of each fidelity kernel; each also measures the
    best ladder implementation once."""
    ladder_survey: bool = True
    """Measure every ladder file once to find the best; off: take the highest `rank:` header."""
    cache_repeats: int = 9
    """Sources whose second evaluate (a result-cache hit) is timed."""
    daemon_candidates: int = 20
    """Candidates per daemon batch (distinct sources; then repeats of one source)."""

    def __post_init__(self) -> None:
        if min(self.overhead_repeats, self.fidelity_repeats, self.cache_repeats, self.daemon_candidates) < 1:
            raise ValueError("--repeats and --candidates must be >= 1")


FULL: Final = PerfBencherConfig()
QUICK: Final = PerfBencherConfig(
    overhead_repeats=1, fidelity_repeats=1, ladder_survey=False, cache_repeats=2, daemon_candidates=3
)


# ---------------------------------------------------------------- instruments


@dataclass
class TimedRun:
    argv0: str
    call_s: float
    """Wall of the whole Sandbox.run call, as its caller sees it."""
    run: SandboxRun


class RecordingSandbox(Sandbox):
    """The production sandbox, recording every run and how long each Sandbox.run call took."""

    def __init__(self, uid: int) -> None:
        self.runs: list[TimedRun] = []  # before Sandbox.__init__, whose self-check runs /bin/true
        super().__init__(uid=uid)

    def run(self, argv: list[str], **kwargs: Any) -> SandboxRun:
        started = time.monotonic()
        result = super().run(argv, **kwargs)
        self.runs.append(TimedRun(argv[0], time.monotonic() - started, result))
        return result


class TimedBuilder(Builder):
    """The production builder, recording the wall of each build."""

    def __init__(self, config: BencherConfig, sandbox: Sandbox) -> None:
        super().__init__(config, sandbox)
        self.builds_s: list[float] = []

    def build(self, problem: Problem, source: str, trusted_libraries: tuple[str, ...] = ()) -> Build:
        started = time.monotonic()
        result = super().build(problem, source, trusted_libraries)
        self.builds_s.append(time.monotonic() - started)
        return result


def instrumented_pipeline(config: BencherConfig, sandbox: RecordingSandbox, node: Node) -> Pipeline:
    pipeline = Pipeline(config, sandbox=sandbox, node=node)
    pipeline.builder = TimedBuilder(config, sandbox)
    return pipeline


def interleaved(steps: list[Callable[[], Any]], repeat: int) -> list[Any]:
    """Run the steps forwards on even repeats and backwards on odd ones (A B, B A, ...), so neither
    always goes first after the other; returns their results in the order given."""
    order = range(len(steps)) if repeat % 2 == 0 else reversed(range(len(steps)))
    results: dict[int, Any] = {index: steps[index]() for index in order}
    return [results[index] for index in range(len(steps))]


def variant(source: str, index: int) -> str:
    """A source with a cache key of its own (any change of bytes would do; this one is valid C)."""
    return f"{source}\nstatic const int hpcrl_perf_variant = {index};\n"


def evaluate_ok(pipeline: Pipeline, source: str, n: int, what: str, libraries: tuple[str, ...] = ()) -> Evaluation:
    """Pipeline.evaluate without the result cache; the figure counts only if the verdict is ok."""
    evaluation = pipeline.evaluate(PROBLEM, n, source, use_cache=False, trusted_libraries=libraries)
    if evaluation.verdict is not Verdict.OK:
        raise PerfError(f"{what}: verdict {evaluation.verdict.value}: {evaluation.detail[:500]}")
    return evaluation


def ms(seconds: float) -> float:
    return round(1e3 * seconds, 2)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# ---------------------------------------------------------------- overhead


def direct_compile_s(problem: Problem, pipeline: Pipeline, source: str, workdir: Path) -> float:
    """Wall of the bencher's own compile and link commands, run directly on the host (no sandbox,
    no nm/readelf, no checks): the compiler's share of a build."""
    compiler = pipeline.builder.compiler_for(problem)
    flags = shlex.join(problem.flags + CANDIDATE_FLAGS)
    script = (
        f"{compiler} {flags} -save-temps=obj -c cand.c -o cand.o 2> compile.log && "
        f"{compiler} {flags} {shlex.join(LINK_FLAGS)} cand.o -lm -o {CANDIDATE_LIBRARY} 2> link.log"
    )
    with tempfile.TemporaryDirectory(prefix="direct-", dir=workdir) as tmp:
        (Path(tmp) / "cand.c").write_text(source)
        started = time.monotonic()
        done = subprocess.run(["/bin/sh", "-c", script], cwd=tmp, capture_output=True, timeout=STANDALONE_TIMEOUT_S)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise PerfError(f"the direct compile failed: {(Path(tmp) / 'compile.log').read_text()[-500:]}")
    return seconds


def launch_s(sandbox: Sandbox, problem: Problem, config: BencherConfig, node: Node) -> float:
    """One Sandbox.run of /bin/true with a measurement run's limits, mount and environment."""
    with sandbox.host_dir("hpcrl-run-") as bin_dir:
        started = time.monotonic()
        run = sandbox.run(
            ["/bin/true"],
            limits=run_limits(problem, SIZE, config, node.threads),
            mounts=[Mount(bin_dir, "/tmp/work/bin")],
            env=node.openmp_env(),
            channel=True,
        )
        seconds = time.monotonic() - started
    if not run.ok:
        raise PerfError(f"/bin/true failed in the sandbox: {run.describe()}")
    return seconds


def overhead_sample(pipeline: Pipeline, sandbox: RecordingSandbox, source: str) -> dict[str, float]:
    """Evaluate one fresh source and split its wall time by where it went (seconds)."""
    builder = pipeline.builder
    assert isinstance(builder, TimedBuilder)
    problem = get_problem(PROBLEM)
    sandbox.runs.clear()
    builder.builds_s.clear()
    started = time.monotonic()
    evaluation = evaluate_ok(pipeline, source, SIZE, "the typical candidate")
    total = time.monotonic() - started
    compile_runs = [r for r in sandbox.runs if r.argv0 == "/bin/sh"]
    bench_runs = [r for r in sandbox.runs if r.argv0.endswith("/bench")]
    if len(compile_runs) != 1 or len(bench_runs) != 1 or len(builder.builds_s) != 1:
        raise PerfError(f"expected one uncached build and one run, saw {[r.argv0 for r in sandbox.runs]}")
    measurement = judge(bench_runs[0].run, problem.flop_count(SIZE), pipeline.config, pipeline.node)
    calls = evaluation.repetitions + pipeline.config.warmup_reps
    return {
        "total": total,
        "build": builder.builds_s[0],
        "compile_sandbox_call": compile_runs[0].call_s,
        "run_sandbox_call": bench_runs[0].call_s,
        "calls": measurement.calls_s,
        "call_count": calls,
        "gflops": evaluation.gflops_median,
        "cv": evaluation.cv,
    }


def measure_overhead(
    cfg: PerfBencherConfig, pipeline: Pipeline, sandbox: RecordingSandbox, workdir: Path
) -> dict[str, Any]:
    problem = get_problem(PROBLEM)
    source = TYPICAL_CANDIDATE.read_text()
    # Warm-up: builds the monitor program and brings gcc, bwrap and the kernel into the page cache.
    evaluate_ok(pipeline, variant(source, -1), SIZE, "the typical candidate (warm-up)")
    direct_compile_s(problem, pipeline, variant(source, -1), workdir)
    samples: list[dict[str, float]] = []
    for repeat in range(cfg.overhead_repeats):
        text = variant(source, repeat)
        sample, compiler, launch = interleaved(
            [
                partial(overhead_sample, pipeline, sandbox, text),
                partial(direct_compile_s, problem, pipeline, text, workdir),
                partial(launch_s, sandbox, problem, pipeline.config, pipeline.node),
            ],
            repeat,
        )
        sample.update(compiler=compiler, launch=launch)
        sample["overhead"] = sample["total"] - sample["compiler"] - sample["calls"]
        samples.append(sample)
        log.info(
            "overhead repeat=%d total_ms=%.1f compiler_ms=%.1f calls_ms=%.1f overhead_ms=%.1f",
            repeat,
            *(1e3 * sample[k] for k in ("total", "compiler", "calls", "overhead")),
        )
    return summarise_overhead(samples)


def summarise_overhead(samples: list[dict[str, float]]) -> dict[str, Any]:
    def med(key: str | Callable[[dict[str, float]], float]) -> float:
        return median([key(s) if callable(key) else s[key] for s in samples])

    overhead = med("overhead")
    total = med("total")
    monitor = med(lambda s: s["run_sandbox_call"] - s["calls"] - s["launch"])
    return {
        "candidate": str(TYPICAL_CANDIDATE.relative_to(REPO)),
        "n": SIZE,
        "repeats": len(samples),
        "total_ms": ms(total),
        "compiler_ms": ms(med("compiler")),
        "calls_ms": ms(med("calls")),
        "overhead_ms": ms(overhead),
        "overhead_ratio": round(med(lambda s: s["overhead"] / s["total"]), 3),
        "overhead_ms_samples": [ms(s["overhead"]) for s in samples],
        "calls_per_candidate": med("call_count"),
        "gflops": round(med("gflops"), 2),
        "cv": round(med("cv"), 4),
        "breakdown_ms": {
            "compile_sandbox_and_inspection": ms(med(lambda s: s["compile_sandbox_call"] - s["compiler"])),
            "build_host_side": ms(med(lambda s: s["build"] - s["compile_sandbox_call"])),
            "run_sandbox_launch": ms(med("launch")),
            # Exec and start-up of the harness, fork, and per call: refill inputs, pipe round trip, verify.
            "monitor": ms(monitor),
            "pipeline_host_side": ms(med(lambda s: s["total"] - s["build"] - s["run_sandbox_call"])),
        },
    }


# ---------------------------------------------------------------- fidelity and the ladder


@dataclass(frozen=True)
class Kernel:
    name: str
    source: str
    libraries: tuple[str, ...] = ()


def build_standalone(kernel: Kernel, problem: Problem, compiler: str, workdir: Path) -> Path:
    """The standalone timer linked with the kernel, compiled like a candidate (the problem's flags)."""
    kernel_file = workdir / f"{kernel.name}.c"
    kernel_file.write_text(kernel.source)
    binary = workdir / f"standalone-{kernel.name}"
    command = [compiler, *problem.flags, str(STANDALONE_TIMER), str(kernel_file), "-lm", *kernel.libraries]
    done = subprocess.run([*command, "-o", str(binary)], capture_output=True, text=True, timeout=STANDALONE_TIMEOUT_S)
    if done.returncode != 0:
        raise PerfError(f"the standalone timer for {kernel.name} does not build: {done.stderr[-1000:]}")
    return binary


def run_standalone(binary: Path, config: BencherConfig, node: Node) -> dict[str, float]:
    """Run on the host with the OpenMP environment a candidate gets, and the bencher's call budget."""
    argv = [
        str(binary),
        f"n={SIZE}",
        f"warmup={config.warmup_reps}",
        f"reps={config.max_reps}",
        f"max_seconds={config.max_measure_s}",
    ]
    env = {"PATH": "/usr/bin:/bin", **node.openmp_env()}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=STANDALONE_TIMEOUT_S, env=env)
    if done.returncode != 0:
        raise PerfError(f"{binary.name} failed its sanity check (exit {done.returncode}): {done.stdout}{done.stderr}")
    return {key: float(value) for key, value in (line.split() for line in done.stdout.splitlines())}


def ladder_files() -> list[tuple[int, Path]]:
    files = []
    for path in sorted(LADDER_DIR.glob("*.c")):
        rank = re.search(r"rank:\s*(\d+)", path.read_text())
        if rank:
            files.append((int(rank.group(1)), path))
    if not files:
        raise PerfError(f"no ladder implementations (files with a `rank:` header) in {LADDER_DIR}")
    return sorted(files)


def choose_best_ladder(cfg: PerfBencherConfig, pipeline: Pipeline) -> tuple[Kernel, dict[str, float]]:
    files = ladder_files()
    if not cfg.ladder_survey:
        path = files[-1][1]
        return Kernel(path.stem, path.read_text()), {}
    survey = {}
    for _, path in files:
        survey[path.stem] = round(evaluate_ok(pipeline, path.read_text(), SIZE, path.name).gflops_median, 2)
        log.info("ladder survey file=%s gflops=%.2f", path.name, survey[path.stem])
    best = max(survey, key=lambda name: survey[name])
    return Kernel(best, (LADDER_DIR / f"{best}.c").read_text()), survey


def measure_fidelity_and_ladder(
    cfg: PerfBencherConfig, pipeline: Pipeline, workdir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    problem = get_problem(PROBLEM)
    compiler = pipeline.builder.compiler_for(problem)
    kernels = [
        Kernel("reference", REFERENCE_KERNEL.read_text()),
        Kernel("openblas", OPENBLAS_KERNEL.read_text(), OPENBLAS_LIBRARIES),
    ]
    binaries = {k.name: build_standalone(k, problem, compiler, workdir) for k in kernels}
    for_libraries = library_pipeline(pipeline)

    def bencher_of(kernel: Kernel) -> Pipeline:
        return for_libraries if kernel.libraries else pipeline

    best, survey = choose_best_ladder(cfg, pipeline)
    bench: dict[str, list[Evaluation]] = {k.name: [] for k in [*kernels, best]}
    alone: dict[str, list[dict[str, float]]] = {k.name: [] for k in kernels}
    for kernel in [*kernels, best]:  # warm-up: builds (then cached), page cache, OpenBLAS start-up
        evaluate_ok(bencher_of(kernel), kernel.source, SIZE, kernel.name, kernel.libraries)
    for repeat in range(cfg.fidelity_repeats):
        for kernel in kernels if repeat % 2 == 0 else reversed(kernels):
            evaluation, standalone = interleaved(
                [
                    partial(evaluate_ok, bencher_of(kernel), kernel.source, SIZE, kernel.name, kernel.libraries),
                    partial(run_standalone, binaries[kernel.name], pipeline.config, pipeline.node),
                ],
                repeat,
            )
            bench[kernel.name].append(evaluation)
            alone[kernel.name].append(standalone)
            log.info(
                "fidelity repeat=%d kernel=%s bencher_gflops=%.2f standalone_gflops=%.2f bencher_cv=%.4f",
                repeat,
                kernel.name,
                bench[kernel.name][-1].gflops_median,
                alone[kernel.name][-1]["gflops_median"],
                bench[kernel.name][-1].cv,
            )
        bench[best.name].append(evaluate_ok(pipeline, best.source, SIZE, best.name))
        log.info("ladder repeat=%d best=%s gflops=%.2f", repeat, best.name, bench[best.name][-1].gflops_median)
    fidelity: dict[str, Any] = {
        "n": SIZE,
        "threads": pipeline.node.threads,
        "repeats": cfg.fidelity_repeats,
        "openblas_outside_cpu_s_per_call": LIBRARY_OUTSIDE_CPU_S_PER_CALL,
    }
    for kernel in kernels:
        b = [e.gflops_median for e in bench[kernel.name]]
        s = [r["gflops_median"] for r in alone[kernel.name]]
        fidelity[kernel.name] = {
            "bencher_gflops": round(median(b), 2),
            "standalone_gflops": round(median(s), 2),
            "ratio": round(median(b) / median(s), 4),
            "ratio_paired_median": round(median([x / y for x, y in zip(b, s, strict=True)]), 4),
            # Noise only ever slows a repeat down: the best repeats agree even when a background job
            # hit several repeats of one side (a cross-check of `ratio`, not the target).
            "ratio_of_best": round(max(b) / max(s), 4),
            "bencher_cv": round(median([e.cv for e in bench[kernel.name]]), 4),
            "bencher_cv_samples": [round(e.cv, 4) for e in bench[kernel.name]],
            "bencher_timed_calls": median([float(e.repetitions) for e in bench[kernel.name]]),
            "standalone_cv": round(median([r["cv"] for r in alone[kernel.name]]), 4),
            "standalone_timed_calls": median([r["reps"] for r in alone[kernel.name]]),
            "bencher_gflops_samples": [round(x, 2) for x in b],
            "standalone_gflops_samples": [round(x, 2) for x in s],
        }
    best_gflops = [e.gflops_median for e in bench[best.name]]
    openblas = [e.gflops_median for e in bench["openblas"]]
    ladder = {
        "n": SIZE,
        "threads": pipeline.node.threads,
        "best": f"{best.name}.c",
        "best_gflops": round(median(best_gflops), 2),
        "openblas_gflops": round(median(openblas), 2),
        "fraction_of_openblas": round(median(best_gflops) / median(openblas), 3),
        "fraction_paired_median": round(median([x / y for x, y in zip(best_gflops, openblas, strict=True)]), 3),
        "survey_gflops": survey,
    }
    return fidelity, ladder


# ---------------------------------------------------------------- the result cache


def measure_cache_hits(cfg: PerfBencherConfig, config: BencherConfig, sandbox: Sandbox, node: Node) -> dict[str, Any]:
    pipeline = Pipeline(dataclasses.replace(config, result_cache=True), sandbox=sandbox, node=node)
    misses, hits = [], []
    try:
        for repeat in range(cfg.cache_repeats):
            source = variant(TRIVIAL_CANDIDATE, 1_000 + repeat)
            started = time.monotonic()
            first = pipeline.evaluate(PROBLEM, DAEMON_SIZE, source)
            misses.append(time.monotonic() - started)
            started = time.monotonic()
            second = pipeline.evaluate(PROBLEM, DAEMON_SIZE, source)
            hits.append(time.monotonic() - started)
            if first.verdict is not Verdict.OK or first.cached or not second.cached or second.verdict is not Verdict.OK:
                raise PerfError(f"cache: expected a measured ok then a cached ok, got {first} then {second}")
    finally:
        pipeline.close()
    return {
        "n": DAEMON_SIZE,
        "repeats": len(hits),
        "hit_ms": ms(median(hits)),
        "hit_ms_max": ms(max(hits)),
        "miss_ms": ms(median(misses)),
    }


# ---------------------------------------------------------------- the daemon


EVALUATED = re.compile(r"event=evaluated .*?cached=(\w+) compile_s=([\d.]+) run_s=([\d.]+)")


def run_batch(client: BusClient, sources: list[str], procs: Processes) -> dict[str, Any]:
    """Submit every source at once; results per second from the first submit to the last result."""
    started = time.monotonic()
    ids = [client.submit(problem=PROBLEM, size=DAEMON_SIZE, source=s, run="perf-bencher").candidate_id for s in sources]
    results: dict[str, Result] = {}
    last = started
    while len(results) < len(ids):
        if time.monotonic() - started > BATCH_TIMEOUT_S:
            raise PerfError(f"{len(ids) - len(results)} of {len(ids)} results missing after {BATCH_TIMEOUT_S:g} s")
        procs.check_alive()
        arrived = client.collect_results(POLL_SLICE_S)
        if arrived:
            last = time.monotonic()
            results.update(arrived)
    wrong = [r for r in results.values() if r.verdict is not Verdict.OK]
    if set(results) != set(ids) or wrong:
        raise PerfError(f"daemon: {len(wrong)} results not ok, e.g. {wrong[:1]}")
    seconds = last - started
    return {
        "candidates": len(ids),
        "seconds": round(seconds, 3),
        "candidates_per_s": round(len(ids) / seconds, 2),
        "cached": sum(1 for r in results.values() if r.cached),
    }


def measure_daemon(cfg: PerfBencherConfig, node: Node, workdir: Path) -> dict[str, Any]:
    """`hpcrl bus` + one `hpcrl bencher` (production settings, calibration off) on loopback TCP."""
    procs = Processes(workdir)
    request, event = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    env = clean_env(
        HPCRL_BUS__REQUEST_ENDPOINT=request,
        HPCRL_BUS__EVENT_ENDPOINT=event,
        HPCRL_BENCHER__CACHE_DIR=str(workdir / "daemon-cache"),
        HPCRL_BENCHER__CALIBRATION_INTERVAL_S="0",
        # The node's peak was measured already; the probe would only delay the start.
        HPCRL_BENCHER__PEAK_GFLOPS=f"{node.peak_gflops:.3f}",
    )
    client: BusClient | None = None
    try:
        broker = procs.start("broker", [*HPCRL, "bus", "--journal", str(workdir / "journal.sqlite")], env)
        bencher = procs.start("bencher", [*HPCRL, "bencher", "--name", "perf-bencher"], env)
        client = BusClient(BusConfig(request_endpoint=request, event_endpoint=event), ClientConfig(), name="perf")
        deadline = time.monotonic() + START_TIMEOUT_S
        while client.workers_alive < 1:
            if time.monotonic() > deadline:
                raise PerfError(f"the bencher did not connect in {START_TIMEOUT_S:g} s:\n{procs.log_tail('bencher')}")
            procs.check_alive()
            client.pump(POLL_SLICE_S)
        count = cfg.daemon_candidates
        distinct = run_batch(client, [variant(TRIVIAL_CANDIDATE, i) for i in range(count)], procs)
        repeated = variant(TRIVIAL_CANDIDATE, count)
        run_batch(client, [repeated], procs)  # measured once; its repeats below are cache hits
        hits = run_batch(client, [repeated] * count, procs)
        client.close(timeout_s=1.0)
        client = None
        codes = procs.stop([bencher, broker])
    except PerfError:
        for name, _ in procs.started:
            log.error("log of %s:\n%s", name, procs.log_tail(name))
        raise
    finally:
        if client is not None:
            client.close(timeout_s=1.0)
        procs.stop()
    evaluated = EVALUATED.findall(procs.log_text("bencher"))
    measured = [(float(c), float(r)) for cached, c, r in evaluated if cached == "False"]
    return {
        "n": DAEMON_SIZE,
        "candidate": "naive i-j-k triple loop, varied by an unused static const",
        "distinct": distinct,
        "cache_hits": hits,
        "measured_compile_ms": ms(median([c for c, _ in measured])),
        "measured_run_ms": ms(median([r for _, r in measured])),
        # What a distinct candidate costs beyond its compile and run: Python, the bus, the daemon's loop.
        "daemon_ms_per_candidate": ms(
            distinct["seconds"] / distinct["candidates"] - median([c + r for c, r in measured])
        ),
        "clean_exits": sum(1 for code in codes.values() if code == 0),
    }


# ---------------------------------------------------------------- the run


@dataclass
class Report(PerfReport):
    """Everything `hpcrl perf bencher --json` prints (as one JSON object)."""

    benchmark: str = "bencher"
    overhead: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] = field(default_factory=dict)
    ladder: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    daemon: dict[str, Any] = field(default_factory=dict)


def bencher_machine_info(node: Node, compiler: str) -> dict[str, Any]:
    info = machine_info()
    info.update(
        compiler=compiler_identity(compiler),
        openblas=openblas_config(),
        threads=node.threads,
        cpus=list(node.cpus),
        peak_gflops=round(node.peak_gflops, 1),
        node_class=node.node_class,
    )
    return info


def openblas_config() -> str:
    with contextlib.suppress(OSError, AttributeError):
        library = ctypes.CDLL("libopenblas.so.0")
        library.openblas_get_config.restype = ctypes.c_char_p
        return str(library.openblas_get_config().decode())
    return ""


@contextlib.contextmanager
def loadavg_logged() -> Iterator[dict[str, float]]:
    loads = {"loadavg_1m_at_start": round(os.getloadavg()[0], 2)}
    yield loads
    loads["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)


def run(cfg: PerfBencherConfig, quick: bool) -> Report:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hpcrl-perf-bencher-") as tmp, loadavg_logged() as loads:
        workdir = Path(tmp)
        config = BencherConfig(cache_dir=str(workdir / "cache"), result_cache=False, calibration_interval_s=0.0)
        try:
            sandbox = RecordingSandbox(uid=config.sandbox_uid)
        except SandboxError as error:
            raise PerfError(f"the sandbox does not work here: {error}") from None
        node = detect_node(config)
        pipeline = instrumented_pipeline(config, sandbox, node)
        compiler = pipeline.builder.compiler_for(get_problem(PROBLEM))
        report = Report(
            date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            commit=git_commit(),
            quick=quick,
            machine=bencher_machine_info(node, compiler),
            settings={
                **dataclasses.asdict(cfg),
                "bencher": {
                    k: getattr(config, k) for k in ("warmup_reps", "min_reps", "max_reps", "max_measure_s", "cv_target")
                },
            },
        )
        try:
            log.info("overhead: %d interleaved repeats of %s at n=%d", cfg.overhead_repeats, TYPICAL_CANDIDATE, SIZE)
            report.overhead = measure_overhead(cfg, pipeline, sandbox, workdir)
            log.info("fidelity and ladder: %d interleaved repeats at n=%d", cfg.fidelity_repeats, SIZE)
            report.fidelity, report.ladder = measure_fidelity_and_ladder(cfg, pipeline, workdir)
            report.cache = measure_cache_hits(cfg, config, sandbox, node)
            log.info("daemon: %d candidates per batch at n=%d", cfg.daemon_candidates, DAEMON_SIZE)
            report.daemon = measure_daemon(cfg, node, workdir)
        finally:
            pipeline.close()
    report.machine.update(loads)
    report.targets = targets(report)
    report.wall_s = round(time.monotonic() - started, 1)
    return report


def targets(report: Report) -> dict[str, Any]:
    overhead = report.overhead
    found: dict[str, Any] = {
        "overhead_ms": {
            "value": overhead["overhead_ms"],
            "target": f"< {TARGET_OVERHEAD_MS:g}",
            "met": overhead["overhead_ms"] < TARGET_OVERHEAD_MS,
        },
        "overhead_ratio": {
            "value": overhead["overhead_ratio"],
            "target": f"< {TARGET_OVERHEAD_RATIO:g}",
            "met": overhead["overhead_ratio"] < TARGET_OVERHEAD_RATIO,
        },
    }
    for kernel in ("reference", "openblas"):
        figures = report.fidelity[kernel]
        found[f"fidelity_{kernel}"] = {
            "value": figures["ratio"],
            "target": f"bencher / standalone within 1 +- {TARGET_FIDELITY_TOLERANCE:g}",
            "met": abs(figures["ratio"] - 1) <= TARGET_FIDELITY_TOLERANCE,
        }
        found[f"cv_{kernel}"] = {
            "value": figures["bencher_cv"],
            "target": f"<= {TARGET_CV:g} on a quiet node",
            "met": figures["bencher_cv"] <= TARGET_CV,
        }
    return found


# ---------------------------------------------------------------- output


def human_table(report: Report) -> str:
    m, o, f, lad, c, d = report.machine, report.overhead, report.fidelity, report.ladder, report.cache, report.daemon
    lines = [
        f"hpcrl perf bencher  {report.date}  {m['nproc']} CPU {m['cpu_model']}  {m['threads']} thread(s)  "
        f"{m['compiler']}{'  (quick)' if report.quick else ''}",
        f"load {m['loadavg_1m_at_start']} -> {m['loadavg_1m_at_end']}; medians of interleaved repeats",
        "",
        f"{'figure':<46}{'value':>16}  target",
    ]

    def row(name: str, value: str, key: str = "") -> None:
        entry = report.targets.get(key)
        target = "" if entry is None else f"{entry['target']}  {'met' if entry['met'] else 'MISSED'}"
        lines.append(f"{name:<46}{value:>16}  {target}".rstrip())

    row(f"candidate total ms ({Path(o['candidate']).name}, n={o['n']})", f"{o['total_ms']:.1f}")
    row("  compiler (direct) / calls ms", f"{o['compiler_ms']:.1f} / {o['calls_ms']:.1f}")
    row("  overhead ms", f"{o['overhead_ms']:.1f}", "overhead_ms")
    row("  overhead / total", f"{o['overhead_ratio']:.3f}", "overhead_ratio")
    for name, value in o["breakdown_ms"].items():
        row(f"    {name} ms", f"{value:.2f}")
    for kernel in ("reference", "openblas"):
        k = f[kernel]
        row(f"{kernel}: bencher / standalone GFLOPS", f"{k['bencher_gflops']:.2f} / {k['standalone_gflops']:.2f}")
        row(f"{kernel}: ratio", f"{k['ratio']:.4f}", f"fidelity_{kernel}")
        row(f"{kernel}: bencher CV", f"{k['bencher_cv']:.4f}", f"cv_{kernel}")
    row(f"best ladder ({lad['best']}) / OpenBLAS, {lad['threads']} thr", f"{lad['fraction_of_openblas']:.3f}")
    row("result-cache hit ms (median / max)", f"{c['hit_ms']:.2f} / {c['hit_ms_max']:.2f}")
    row(f"daemon candidates/s, distinct (n={d['n']})", f"{d['distinct']['candidates_per_s']:.2f}")
    row("daemon candidates/s, cache hits", f"{d['cache_hits']['candidates_per_s']:.2f}")
    lines.append(f"\nwall time {report.wall_s:.0f} s")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl perf bencher",
        description="Measure the bencher's overhead per candidate, its fidelity against a standalone timer, "
        "the ladder against OpenBLAS, result-cache latency and daemon throughput.",
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a tiny run (about 20 s), for smoke tests")
    parser.add_argument("--repeats", type=int, help="interleaved repetitions of the overhead and fidelity figures")
    parser.add_argument("--candidates", type=int, help="candidates per daemon batch")
    parser.add_argument("--log-level", default="INFO", help="stderr log level (DEBUG, INFO, WARNING, ERROR)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    overrides: dict[str, Any] = {}
    if args.repeats is not None:
        overrides.update(overhead_repeats=args.repeats, fidelity_repeats=args.repeats)
    if args.candidates is not None:
        overrides["daemon_candidates"] = args.candidates
    try:
        cfg = dataclasses.replace(QUICK if args.quick else FULL, **overrides)
    except ValueError as error:
        parser.exit(2, f"hpcrl perf bencher: {error}\n")
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop every process we started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = run(cfg, args.quick)
    except PerfError as error:
        log.error("benchmark failed: %s", error)
        return 1
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print(human_table(report))
    return 0
