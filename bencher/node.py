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
from dataclasses import dataclass
from pathlib import Path

from bencher.config import BencherConfig
from bencher.peak import Peak, Probe

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
    """Double-precision peak of `threads` threads (bencher.peak): no honest result can exceed it."""
    isa: str = ""
    """The vector ISA candidates are built for here (the peak probe's: avx512, avx2-fma, sse2, ...)."""
    march: str = "native"
    """The -march candidates, the harness and the probe are built with (bencher.march)."""

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


def measure_peak(config: BencherConfig, cpus: tuple[int, ...]) -> Peak:
    """The peak of len(cpus) threads: declared, or measured and held to the theory. Always the node's own
    (-march=native) peak, whatever bencher.march pins: a candidate may still use wider vectors through
    `#pragma GCC target`, and no honest code can beat the hardware. A pinned march must run here (else
    every candidate would crash and be charged for it). Raises PeakError when the peak cannot be trusted."""
    if config.march != "native":
        pinned = Probe(config.march)
        try:
            pinned.run(cpus[:1], iterations=1)
        finally:
            pinned.close()
    probe = Probe("native")
    try:
        if config.peak_gflops:
            return probe.declared(config.peak_gflops, len(cpus), cpus[0])
        return probe.measure(cpus)
    finally:
        probe.close()


def default_node_class(isa: str, march: str, threads: int) -> str:
    """Results are cached and compared within a class: the CPU, the ISA built for, and the thread count."""
    target = isa if march == "native" else f"{isa} (-march={march})"
    return f"{cpu_model()} {target} x{threads}"


def detect_node(config: BencherConfig) -> Node:
    threads, cpus = allocated_threads(config)
    peak = measure_peak(config, cpus)
    return Node(
        host=socket.gethostname(),
        slurm_job_id=os.environ.get("SLURM_JOB_ID", ""),
        cpus=cpus,
        threads=threads,
        node_class=config.node_class or default_node_class(peak.isa, config.march, threads),
        peak_gflops=peak.gflops,
        isa=peak.isa,
        march=config.march,
    )
