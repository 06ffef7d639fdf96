"""Facts about the node a bencher runs on: where it runs, how many threads it may use, its peak.

Threads come from the allocation, as an HPC user expects: SLURM_CPUS_PER_TASK when SLURM set it,
else the CPUs this process is allowed to run on (its affinity mask, which srun, taskset, cgroups
and systemd's CPUAffinity all set). Candidates get OMP_NUM_THREADS, OMP_PLACES (one place per
allowed CPU) and OMP_PROC_BIND to match, so a candidate cannot use more than its share.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bencher.config import BencherConfig

log = logging.getLogger(__name__)
KERNELS_DIR = Path(__file__).parent / "kernels"


@dataclass(frozen=True)
class Node:
    host: str
    slurm_job_id: str
    cpus: tuple[int, ...]
    """CPUs candidates run on (the first `threads` of this process's affinity)."""
    threads: int
    node_class: str
    """Results are comparable (and cached) within a node class."""
    peak_gflops: float
    """Double-precision peak of `threads` cores: no honest result can exceed it."""

    def openmp_env(self) -> dict[str, str]:
        return {
            "OMP_NUM_THREADS": str(self.threads),
            # Caps num_threads clauses and omp_set_num_threads too: the allocation is the limit.
            "OMP_THREAD_LIMIT": str(self.threads),
            "OMP_PLACES": ",".join(f"{{{cpu}}}" for cpu in self.cpus),
            "OMP_PROC_BIND": "close",
            # Idle OpenMP threads sleep instead of spinning, so CPU time between calls means work.
            "OMP_WAIT_POLICY": "passive",
            "OPENBLAS_NUM_THREADS": str(self.threads),
        }


def allocated_threads(config: BencherConfig, env: dict[str, str] | None = None) -> tuple[int, tuple[int, ...]]:
    env = dict(os.environ) if env is None else env
    affinity = tuple(sorted(os.sched_getaffinity(0)))
    if config.threads:
        threads = config.threads
    elif env.get("SLURM_CPUS_PER_TASK", "").isdigit():
        threads = int(env["SLURM_CPUS_PER_TASK"])
    else:
        threads = len(affinity)
    threads = max(1, min(threads, len(affinity)))
    return threads, affinity[:threads]


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown-cpu"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown-cpu"


def measure_peak_gflops(threads: int, cpus: tuple[int, ...]) -> float:
    """One core's FMA throughput (best of three, trusted code run outside the sandbox) times `threads`.
    One core, because a background process that takes a core during the probe would understate a
    multi-threaded peak and get honest results rejected; a single thread is rarely disturbed."""
    with tempfile.TemporaryDirectory(prefix="hpcrl-peak-") as tmp:
        binary = Path(tmp) / "peak"
        subprocess.run(
            ["gcc", "-O2", "-march=native", "-fopenmp", str(KERNELS_DIR / "peak_fma.c"), "-o", str(binary)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "OMP_PROC_BIND": "true", "OMP_PLACES": f"{{{cpus[0]}}}"}
        out = subprocess.run([str(binary)], check=True, capture_output=True, text=True, timeout=60, env=env).stdout
    return float(out.split()[1]) * threads


def detect_node(config: BencherConfig) -> Node:
    threads, cpus = allocated_threads(config)
    peak = config.peak_gflops
    if not peak:
        peak = measure_peak_gflops(threads, cpus)
        log.info("event=peak_measured threads=%d peak_gflops=%.1f", threads, peak)
    node_class = config.node_class or f"{cpu_model()} x{threads}"
    return Node(
        host=socket.gethostname(),
        slurm_job_id=os.environ.get("SLURM_JOB_ID", ""),
        cpus=cpus,
        threads=threads,
        node_class=node_class,
        peak_gflops=peak,
    )
