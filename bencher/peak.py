"""The node's double-precision peak: measured by a probe built for the ISA candidates are built for, and
held to the theoretical peak of that ISA on this CPU, so a broken probe can never pose as a slow node.

Why this matters: every result above the peak (times `peak_margin`) is charged as a cheat. A probe that
measures too little (one that spilled its accumulators measured 3.3 GFLOPS on a 50 GFLOPS Zen 3 core)
charges the best honest code; one that measures too much hides cheats.

The check: theory = FLOP per cycle of the probe's ISA on this microarchitecture (`FpUnits`) x the clock
the probe measured (a dependent add chain right after each FMA burst). A probe below
`PROBE_MIN_FRACTION_OF_THEORY` of that is a failed probe; it is retried, then refused (`PeakError`).
On a CPU this table does not know (another vendor, aarch64), the theory is unknown, the check is skipped
(and logged); the trusted-kernel check at start (bencher.trust) still stands between a wrong peak and
the policy.

Threads: the peak of t threads is the probe run on the t allocated CPUs, never less than one thread's
probe and never more than t times it. Measured, not multiplied: SMT siblings (or vCPUs that are siblings
on the host) share one core's FMA pipes, and t x one core would then let a cheat claim up to twice the
node. Understated by a busy neighbour core, it would charge honest multi-threaded code: that is why a
result over the peak is re-checked (the node re-probed, the candidate re-measured) before it is charged.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
PROBE_SOURCE = Path(__file__).parent / "kernels" / "peak_fma.c"
PROBE_MIN_FRACTION_OF_THEORY = 0.70
"""A probe below this fraction of its ISA's theoretical peak has failed (spilled, was preempted, ...)."""
PROBE_ATTEMPTS = 8
"""Probe runs before a probe below the theory is taken as a fault of the node or the probe (also the runs
of the t-thread probe, whose best counts)."""
PROBE_RETRY_PAUSE_S = 0.5
"""Pause between one-thread probe runs below the theory, so the attempts span about 5 s: work on an SMT
sibling (or a vCPU that is one on the host) slows a probe without FMA to about 65% of its theory, and
such a burst must pass rather than stop the bencher. An idle node passes at the first run."""
PROBE_ITERATIONS = 4_000_000
"""Updates of every accumulator per trial: tens of milliseconds per trial on the CPUs seen."""

ISA_VECTOR_BITS = {"avx512": 512, "avx2-fma": 256, "avx": 256, "sse2": 128, "neon": 128, "scalar": 64}
"""Register width of each ISA the probe reports (SVE reports its own, from `lanes`)."""


class PeakError(RuntimeError):
    """The peak cannot be trusted: the bencher must not serve (the message names the figures and the fix)."""


@dataclass(frozen=True)
class FpUnits:
    """What one core can issue per cycle for double-precision vector arithmetic."""

    name: str
    datapath_bits: int
    """Width of one FP pipe: wider vectors are split (Zen 4 runs AVX-512 as two 256-bit halves)."""
    fma_pipes: int
    """Pipes that do fused multiply-add (and multiply)."""
    add_only_pipes: int
    """Further pipes that add but cannot multiply (AMD Zen: two); they help code without FMA."""

    def flop_per_cycle(self, lanes: int, fma: bool) -> float:
        lanes_per_op = min(lanes * 64, self.datapath_bits) // 64
        if fma:
            return 2.0 * self.fma_pipes * lanes_per_op
        return float(self.fma_pipes + self.add_only_pipes) * lanes_per_op  # one multiply or add per pipe


def fp_units(cpuinfo: str) -> FpUnits | None:
    """This core's FP pipes, from /proc/cpuinfo's vendor, family, model and flags; None if unknown."""
    vendor = _field(cpuinfo, "vendor_id")
    family = int(_field(cpuinfo, "cpu family") or -1)
    model = int(_field(cpuinfo, "model") or -1)
    flags = set(_field(cpuinfo, "flags").split())
    if vendor == "AuthenticAMD":
        if family == 0x17:  # Zen 1/Zen+ (128-bit pipes), Zen 2 (256-bit)
            return FpUnits("zen2" if model >= 0x30 else "zen1", 256 if model >= 0x30 else 128, 2, 2)
        if family == 0x19:  # Zen 3 and Zen 4: 256-bit pipes, AVX-512 split in two
            return FpUnits("zen3/zen4", 256, 2, 2)
        if family == 0x1A:  # Zen 5 server and desktop parts: full 512-bit pipes
            return FpUnits("zen5", 512, 2, 2)
        return None
    if vendor == "GenuineIntel" and family == 6 and "fma" in flags:
        # Haswell and later: two FMA ports (server parts with AVX-512: two 512-bit units; a Xeon Bronze or
        # Silver with one unit fails the probe check: declare bencher.peak_gflops for that node class).
        return FpUnits("intel", 512 if "avx512f" in flags else 256, 2, 0)
    return None


def _field(cpuinfo: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    return match.group(1).strip() if match else ""


def read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


@dataclass(frozen=True)
class ProbeReading:
    """One run of the probe: what peak_fma.c printed."""

    isa: str
    lanes: int
    fma: bool
    gflops: float
    """All threads' work over the wall time: what t threads together reach."""
    gflops_cpu: float
    """Each thread's work over its own CPU time, summed: time slices lost to other processes do not count."""
    clock_ghz: float


@dataclass(frozen=True)
class Peak:
    """The peak a bencher serves with, and how it was established."""

    isa: str
    """The vector ISA the probe used: the widest of this node (the probe is built -march=native)."""
    gflops: float
    """Double-precision peak of `threads` threads: the cap results are held to (times peak_margin)."""
    threads: int
    one_thread_gflops: float
    clock_ghz: float
    theory_one_thread_gflops: float
    """FLOP/cycle of `isa` on this CPU x `clock_ghz`; 0 when the CPU is not in the table."""
    source: str
    """`measured` or `declared` (bencher.peak_gflops)."""


class Probe:
    """The probe built once for one -march; run as often as needed (start, re-probe on a suspect result)."""

    def __init__(self, march: str, cpuinfo: str | None = None) -> None:
        self.march = march
        self.units = fp_units(read_cpuinfo() if cpuinfo is None else cpuinfo)
        self._dir = tempfile.TemporaryDirectory(prefix="hpcrl-peak-")
        self.binary = Path(self._dir.name) / "peak"
        result = subprocess.run(
            ["gcc", "-O2", f"-march={march}", "-fopenmp", str(PROBE_SOURCE), "-o", str(self.binary)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise PeakError(
                f"the peak probe does not build for -march={march}: {result.stderr.strip()[-400:]} "
                "(check bencher.march and that gcc is installed)"
            )

    def close(self) -> None:
        self._dir.cleanup()

    def run(self, cpus: tuple[int, ...], iterations: int = PROBE_ITERATIONS) -> ProbeReading:
        """One run with one thread pinned to each of `cpus`."""
        env = {
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": str(len(cpus)),
            "OMP_PROC_BIND": "close",
            "OMP_PLACES": ",".join(f"{{{cpu}}}" for cpu in cpus),
        }
        try:
            out = subprocess.run(
                [str(self.binary), str(iterations)], check=True, capture_output=True, text=True, timeout=120, env=env
            ).stdout
        except (OSError, subprocess.SubprocessError) as error:
            raise PeakError(
                f"the peak probe built for -march={self.march} does not run on this CPU ({error}): "
                "set bencher.march to an ISA this node has (e.g. x86-64-v3)"
            ) from None
        values = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
        return ProbeReading(
            isa=values["isa"],
            lanes=int(values["lanes"]),
            fma=values["fma"] == "1",
            gflops=float(values["gflops"]),
            gflops_cpu=float(values["gflops_cpu"]),
            clock_ghz=float(values["clock_ghz"]),
        )

    def theory_gflops(self, reading: ProbeReading) -> float:
        """One core's theoretical peak for the probe's ISA at the clock it measured; 0 when unknown."""
        if self.units is None or reading.clock_ghz <= 0:
            return 0.0
        return self.units.flop_per_cycle(reading.lanes, reading.fma) * reading.clock_ghz

    def one_thread(self, cpu: int) -> tuple[ProbeReading, float]:
        """The best of up to PROBE_ATTEMPTS runs on one CPU, held to the theory. Raises PeakError."""
        best: ProbeReading | None = None
        theory = 0.0
        for _ in range(PROBE_ATTEMPTS):
            reading = self.run((cpu,))
            if best is None or reading.gflops_cpu > best.gflops_cpu:
                best = reading
                theory = self.theory_gflops(reading)
            if theory <= 0 or best.gflops_cpu >= PROBE_MIN_FRACTION_OF_THEORY * theory:
                return best, theory
            time.sleep(PROBE_RETRY_PAUSE_S)
        assert best is not None
        raise PeakError(
            f"the peak probe measured {best.gflops_cpu:.1f} GFLOPS for one thread ({best.isa}, -march={self.march}), "
            f"below {PROBE_MIN_FRACTION_OF_THEORY:.0%} of this CPU's theoretical {theory:.1f} "
            f"({self.units.flop_per_cycle(best.lanes, best.fma) if self.units else 0:g} FLOP/cycle x "
            f"{best.clock_ghz:.2f} GHz measured, {self.units.name if self.units else '?'}) in {PROBE_ATTEMPTS} "
            "runs: the node is overloaded or the probe is wrong for this CPU. Run the bencher on an idle "
            "allocation, or declare the node class's peak (bencher.peak_gflops)"
        )

    def measure(self, cpus: tuple[int, ...]) -> Peak:
        """The peak of len(cpus) threads, as the module docstring decides it."""
        one, theory = self.one_thread(cpus[0])
        one_gflops = one.gflops_cpu
        gflops = one_gflops
        if len(cpus) > 1:
            together = max(self.run(cpus).gflops for _ in range(PROBE_ATTEMPTS))
            gflops = min(max(together, one_gflops), one_gflops * len(cpus))
        log.info(
            "event=peak_measured isa=%s march=%s threads=%d peak_gflops=%.1f one_thread_gflops=%.1f "
            "theory_one_thread_gflops=%.1f clock_ghz=%.2f units=%s",
            one.isa,
            self.march,
            len(cpus),
            gflops,
            one_gflops,
            theory,
            one.clock_ghz,
            self.units.name if self.units else "unknown",
        )
        if theory <= 0:
            log.warning(
                "event=peak_theory_unknown march=%s detail=this CPU is not in bencher.peak's table; the probe "
                "is not held to a theoretical peak (the trusted-kernel check still runs)",
                self.march,
            )
        return Peak(one.isa, gflops, len(cpus), one_gflops, one.clock_ghz, theory, "measured")

    def declared(self, gflops: float, threads: int, cpu: int) -> Peak:
        """A declared peak (bencher.peak_gflops): no measurement, but the ISA is still the probe's."""
        reading = self.run((cpu,), iterations=1)
        return Peak(reading.isa, gflops, threads, 0.0, 0.0, 0.0, "declared")
