"""`hpcrl perf peak`: the node's peak as the bencher measures it, held to theory, on every ISA this CPU runs.

For each -march (native, and on x86 also x86-64-v3 = AVX2+FMA and x86-64 = SSE2, which reproduce the
other node kinds on this CPU): the probe's ISA, its one-thread GFLOPS, the clock it measured, the
theoretical peak (FLOP/cycle of that ISA on this CPU x that clock) and the fraction reached (target
>= 0.7: below, the probe has failed), and the calibration kernel built for the same ISA as a fraction
of the probe (must stay below 1). Then the bencher's own start-up check: the node's peak for all
allocated threads and the trusted kernels (calibration, OpenBLAS) as a fraction of it. Medians over
--repeats runs, interleaved. What every figure means: docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from dataclasses import field
from pathlib import Path
from typing import Any

from bencher.config import BencherConfig
from bencher.peak import PROBE_MIN_FRACTION_OF_THEORY, PeakError, Probe
from bencher.pipeline import Pipeline
from bencher.trust import check_peak_against_trusted_kernels, measure_trusted_kernels
from bus.daemon import setup_logging
from ops.perf import PerfReport
from ops.perf_bus import git_commit, machine_info

log = logging.getLogger(__name__)
MARCHES = ("native", "x86-64-v3", "x86-64") if platform.machine() == "x86_64" else ("native",)


@dataclasses.dataclass
class Report(PerfReport):
    """Everything `hpcrl perf peak --json` prints (as one JSON object)."""

    benchmark: str = "peak"
    probes: dict[str, Any] = field(default_factory=dict)
    node: dict[str, Any] = field(default_factory=dict)


def measure_probes(repeats: int, cpu: int, workdir: Path) -> dict[str, Any]:
    probes = {march: Probe(march) for march in MARCHES}
    readings: dict[str, list[tuple[float, float, float]]] = {march: [] for march in MARCHES}
    try:
        for _ in range(repeats):  # interleaved: a burst of load hits every ISA alike
            for march, probe in probes.items():
                reading = probe.run((cpu,))
                readings[march].append((reading.gflops_cpu, reading.clock_ghz, probe.theory_gflops(reading)))
        found: dict[str, Any] = {}
        for march, probe in probes.items():
            reading = probe.run((cpu,), iterations=1)
            gflops = statistics.median(r[0] for r in readings[march])
            theory = statistics.median(r[2] for r in readings[march])
            pipeline = Pipeline(BencherConfig(cache_dir=str(workdir / march), march=march, threads=1))
            try:
                calibration = measure_trusted_kernels(pipeline).get("calibration", 0.0)
            finally:
                pipeline.close()
            found[march] = {
                "isa": reading.isa,
                "lanes": reading.lanes,
                "fma": reading.fma,
                "one_thread_gflops": round(gflops, 2),
                "clock_ghz": round(statistics.median(r[1] for r in readings[march]), 3),
                "theory_gflops": round(theory, 2),
                "fraction_of_theory": round(gflops / theory, 3) if theory else None,
                "calibration_gflops": round(calibration, 2),
                "calibration_over_probe": round(calibration / gflops, 3) if gflops else None,
            }
        return found
    finally:
        for probe in probes.values():
            probe.close()


def measure_node(workdir: Path) -> dict[str, Any]:
    pipeline = Pipeline(BencherConfig(cache_dir=str(workdir / "node")))
    try:
        trusted = check_peak_against_trusted_kernels(pipeline)
    finally:
        pipeline.close()
    node = pipeline.node
    return {
        "threads": node.threads,
        "isa": node.isa,
        "peak_gflops": round(node.peak_gflops, 2),
        "node_class": node.node_class,
        "trusted_gflops": {name: round(gflops, 2) for name, gflops in trusted.items()},
        "trusted_over_peak_max": round(max(trusted.values()) / node.peak_gflops, 3) if trusted else None,
    }


def targets(report: Report) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for march, probe in report.probes.items():
        if probe["fraction_of_theory"] is not None:
            found[f"fraction_of_theory_{march}"] = {
                "value": probe["fraction_of_theory"],
                "target": f">= {PROBE_MIN_FRACTION_OF_THEORY:g}",
                "met": probe["fraction_of_theory"] >= PROBE_MIN_FRACTION_OF_THEORY,
            }
        found[f"calibration_below_probe_{march}"] = {
            "value": probe["calibration_over_probe"],
            "target": "< 1",
            "met": probe["calibration_over_probe"] is not None and probe["calibration_over_probe"] < 1,
        }
    if report.node.get("trusted_over_peak_max") is not None:
        found["trusted_below_peak"] = {
            "value": report.node["trusted_over_peak_max"],
            "target": "< 1",
            "met": report.node["trusted_over_peak_max"] < 1,
        }
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl perf peak", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="one repeat (a few seconds), for smoke tests")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved probe runs per ISA (median reported)")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (DEBUG, INFO, WARNING, ERROR)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.exit(2, "hpcrl perf peak: --repeats must be >= 1\n")
    setup_logging(args.log_level)
    started = time.monotonic()
    report = Report(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        commit=git_commit(),
        quick=args.quick,
        machine=machine_info(),
        settings={"repeats": 1 if args.quick else args.repeats, "marches": list(MARCHES)},
    )
    cpu = min(os.sched_getaffinity(0))
    try:
        with tempfile.TemporaryDirectory(prefix="hpcrl-perf-peak-") as tmp:
            report.probes = measure_probes(report.settings["repeats"], cpu, Path(tmp))
            report.node = measure_node(Path(tmp))
    except PeakError as error:
        log.error("benchmark failed: %s", error)
        return 1
    report.targets = targets(report)
    report.wall_s = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
        return 0
    print(f"hpcrl perf peak  {report.date}  {report.machine.get('cpu_model', '')}  one thread on CPU {cpu}")
    print(f"{'march':<12}{'isa':<10}{'GFLOPS':>9}{'GHz':>7}{'theory':>9}{'fraction':>10}{'calib/probe':>13}")
    for march, p in report.probes.items():
        fraction = "-" if p["fraction_of_theory"] is None else f"{p['fraction_of_theory']:.3f}"
        print(
            f"{march:<12}{p['isa']:<10}{p['one_thread_gflops']:>9.1f}{p['clock_ghz']:>7.2f}{p['theory_gflops']:>9.1f}"
            f"{fraction:>10}{p['calibration_over_probe']:>13.3f}"
        )
    n = report.node
    print(
        f"node: {n['threads']} thread(s), peak {n['peak_gflops']:.1f} GFLOPS ({n['isa']}); trusted kernels "
        + ", ".join(f"{k} {v:.1f}" for k, v in n["trusted_gflops"].items())
        + f" (max {n['trusted_over_peak_max']} of the peak)"
    )
    missed = [name for name, t in report.targets.items() if not t["met"]]
    print(f"targets: {'all met' if not missed else 'MISSED ' + ', '.join(missed)}; wall {report.wall_s:.0f} s")
    return 0
