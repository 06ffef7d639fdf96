"""`[bencher]`: configuration of the benchmark pipeline and daemon (`hpcrl bencher`, `hpcrl bench-file`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from bus.config import ConfigError
from bus.problems import ProblemError, load_registry

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class BencherConfig:
    name: str = ""
    """Worker name on the bus; empty: `bencher-<host>-<pid>`."""
    cache_dir: str = "~/.cache/hpcrl/bencher"
    """Directory of the build cache (binaries) and the result cache (SQLite); survives restarts.
    `~` is the home directory of the user the bencher runs as."""
    result_cache: bool = True
    """Answer a candidate seen before (same problem, size, source bytes, compiler, flags and
    node class) from the result cache instead of measuring it again."""
    compiler: str = ""
    """`gcc` or `clang`; empty: the problem's own choice."""
    threads: int = 0
    """Threads a candidate may use; 0: SLURM_CPUS_PER_TASK, else the CPUs this process may run on."""
    node_class: str = ""
    """Name of this kind of node (results are cached per class); empty: CPU model and thread count."""
    march: str = "native"
    """The `-march` candidates, the trusted harness and the peak probe are built for. `native`: this node's
    own CPU. On a heterogeneous partition (or with a cache_dir shared between node kinds) pin one ISA level
    that every node has, e.g. `x86-64-v3` (AVX2+FMA) or `x86-64-v4` (AVX-512), so all nodes build, measure
    and reward the same code; the default node class then names it."""
    peak_gflops: float = 0.0
    """Declared double-precision peak of `threads` threads; 0: measured at start by the probe
    (bencher/peak.py), which is held to this CPU's theoretical peak. A declared peak is still checked
    against the trusted kernels at start."""
    peak_margin: float = 1.25
    """A result faster than peak_gflops x this is physically impossible and rejected."""
    warmup_reps: int = 1
    """Verified but untimed calls before the timed ones (page faults, caches, thread start-up)."""
    min_reps: int = 3
    """Timed calls always made."""
    max_reps: int = 30
    """Timed calls at most."""
    max_measure_s: float = 1.0
    """Stop timing once the timed calls add up to this (after min_reps)."""
    cv_target: float = 0.02
    """Stop timing once the coefficient of variation of the timed calls is below this (after min_reps)."""
    call_timeout_max_s: float = 10.0
    """Upper bound of one call's time limit (which is otherwise set by the problem's min_rate)."""
    run_memory_bytes: int = 4 * GIB
    """Address-space limit of a candidate's process."""
    run_processes: int = 256
    """Process/thread limit of the sandbox uid while a candidate runs."""
    compile_timeout_s: float = 20.0
    """Wall-clock limit of compiling and linking one candidate."""
    compile_memory_bytes: int = 2 * GIB
    """Address-space limit of the compiler."""
    outside_cpu_s_per_call: float = 0.002
    """CPU seconds a candidate's process may use between two calls (OpenMP threads going to sleep);
    more means it computes outside the timed call, which is rejected."""
    calibration_interval_s: float = 600.0
    """Seconds between re-measurements of the reference kernel; 0 disables calibration."""
    problem_dirs: tuple[str, ...] = ()
    """Directories of a site's own problem files (and suites.toml), read after the shipped bencher/problems/:
    problems added without a fork (docs/problems.md). The trainer and `hpcrl eval` read this same setting."""
    calibration_size: int = 512
    """Size at which the reference kernel (dgemm) is measured."""
    sandbox_uid: int = 65534
    """Unprivileged uid (and gid) candidates and the compiler run as, when the bencher runs as root (a
    bencher started as a plain user runs them as itself, inside the same namespaces and limits)."""
    drain_timeout_s: float = 20.0
    """On SIGTERM, how long an in-flight candidate may still run before it is handed back."""
    metrics_port: int = 0
    """Port of the Prometheus /metrics endpoint on metrics_address; 0 disables it; -1: any free port
    (several benchers on one node, e.g. SLURM array tasks), which the bencher logs and writes into its
    target file in metrics_sd_dir, where Prometheus finds it (so -1 needs metrics_sd_dir)."""
    metrics_address: str = "127.0.0.1"
    """Address the /metrics endpoint binds; `0.0.0.0` or `::` for a Prometheus on another host."""
    metrics_sd_dir: str = ""
    """Directory Prometheus reads file_sd targets from (e.g. `/var/lib/hpcrl/prometheus-targets` on a
    file system the Prometheus host shares); while the bencher runs, it keeps `<name>.json` there with its
    `host:port` and labels role, bencher, slurm_job_id, node_class, and removes it on a clean stop.
    Empty: no target file (the port is then listed in prometheus.yml by hand)."""

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser()

    def __post_init__(self) -> None:
        dirs = self.problem_dirs
        if not isinstance(dirs, (list, tuple)) or not all(isinstance(d, str) for d in dirs):
            raise ConfigError('bencher.problem_dirs must be a list of directory paths, e.g. ["/site/problems"]')
        object.__setattr__(self, "problem_dirs", tuple(dirs))  # TOML gives a list; the config stays hashable
        try:
            load_registry(self.problem_dirs)  # a broken problem file stops the bencher at start, naming the file
        except ProblemError as error:
            raise ConfigError(str(error)) from None
        if self.compiler not in ("", "gcc", "clang"):
            raise ConfigError(f"bencher.compiler = {self.compiler!r}: use 'gcc', 'clang' or '' (the problem's)")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", self.march):
            raise ConfigError(
                f"bencher.march = {self.march!r} is not a gcc -march value: use 'native' or an ISA level such as "
                "'x86-64-v3'"
            )
        if self.threads < 0:
            raise ConfigError("bencher.threads must be >= 0 (0: from the allocation)")
        if self.peak_gflops < 0 or self.peak_margin < 1:
            raise ConfigError("bencher.peak_gflops must be >= 0 (0: measure) and bencher.peak_margin >= 1")
        if not 0 <= self.warmup_reps <= 100 or not 1 <= self.min_reps <= self.max_reps <= 10_000:
            raise ConfigError("bencher: need 0 <= warmup_reps <= 100 and 1 <= min_reps <= max_reps <= 10000")
        if self.max_measure_s <= 0 or self.cv_target < 0 or self.call_timeout_max_s <= 0:
            raise ConfigError("bencher.max_measure_s and call_timeout_max_s must be > 0, cv_target >= 0")
        if self.run_memory_bytes < 256 * MIB or self.compile_memory_bytes < 256 * MIB:
            raise ConfigError("bencher.run_memory_bytes and compile_memory_bytes must be >= 256 MiB")
        if self.compile_timeout_s <= 0 or self.drain_timeout_s < 0 or self.calibration_interval_s < 0:
            raise ConfigError("bencher.compile_timeout_s must be > 0; drain_timeout_s, calibration_interval_s >= 0")
        if self.run_processes < 8:
            raise ConfigError("bencher.run_processes must be >= 8 (OpenMP threads count as processes)")
        if not -1 <= self.metrics_port <= 65535:
            raise ConfigError(
                f"bencher.metrics_port = {self.metrics_port} is not a TCP port (0 disables, -1: any free port)"
            )
        if self.metrics_port == -1 and not self.metrics_sd_dir:
            raise ConfigError(
                "bencher.metrics_port = -1 (any free port) needs bencher.metrics_sd_dir, where the bencher writes "
                "the port for Prometheus: set metrics_sd_dir, or choose a fixed metrics_port"
            )
        if self.metrics_sd_dir and self.metrics_port == 0:
            raise ConfigError(
                f"bencher.metrics_sd_dir = {self.metrics_sd_dir!r} needs a metrics endpoint to point Prometheus "
                "at, but metrics_port = 0 disables it: set metrics_port (-1: any free port) or clear metrics_sd_dir"
            )
        if self.metrics_sd_dir and not (
            os.path.isdir(self.metrics_sd_dir) and os.access(self.metrics_sd_dir, os.W_OK | os.X_OK)
        ):
            raise ConfigError(
                f"bencher.metrics_sd_dir = {self.metrics_sd_dir!r} is not a writable directory: create it (on a "
                "file system the Prometheus host reads, writable by the bencher's user) or clear metrics_sd_dir"
            )
