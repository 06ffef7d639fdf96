"""The peak is right on every ISA, and a bencher never charges its own mistake to the policy.

On an x86 machine the other ISAs are reproduced by building for them: `-march=x86-64-v3` is an AVX2+FMA
node without AVX-512, `-march=x86-64` an SSE2 one. Each probe is held to its ISA's theoretical peak on
this CPU and must beat every trusted kernel built for the same ISA."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bencher import trust
from bencher.evaluation import Evaluation
from bencher.node import Node, detect_node
from bencher.peak import PROBE_MIN_FRACTION_OF_THEORY, FpUnits, PeakError, Probe, fp_units, read_cpuinfo
from bencher.pipeline import Pipeline
from bencher.trust import check_peak_against_trusted_kernels, measure_trusted_kernels
from bus.schema import Verdict
from tests.bencher_support import CORPUS, LADDER, fast_config

X86 = platform.machine() == "x86_64"
CPUS = tuple(sorted(os.sched_getaffinity(0)))
MARCHES = ("native", "x86-64-v3", "x86-64") if X86 else ("native",)
PINNED_ISA = {"x86-64-v3": "avx2-fma", "x86-64": "sse2"}
THEORY_SLACK = 1.2
"""A probe above its theory x this means the FLOP/cycle table understates this CPU (the clock is measured)."""


def native_isa() -> str:
    flags = set(" ".join(line for line in read_cpuinfo().splitlines() if line.startswith("flags")).split())
    if "avx512f" in flags:
        return "avx512"
    return "avx2-fma" if {"avx2", "fma"} <= flags else "sse2"


@pytest.fixture(scope="module", params=MARCHES)
def probe(request: pytest.FixtureRequest) -> Iterator[Probe]:
    built = Probe(request.param)
    yield built
    built.close()


def test_the_probe_reports_the_isa_it_was_built_for(probe: Probe) -> None:
    reading = probe.run(CPUS[:1], iterations=1000)
    expected = PINNED_ISA.get(probe.march) or (native_isa() if X86 else reading.isa)
    assert reading.isa == expected
    assert reading.lanes * 64 == {"avx512": 512, "avx2-fma": 256, "sse2": 128}.get(reading.isa, reading.lanes * 64)


def test_the_probe_reaches_70_percent_of_its_isas_theoretical_peak(probe: Probe) -> None:
    """The bug this guards: a probe with more accumulators than registers spilled and measured 3.3 GFLOPS on a
    core whose peak is about 50. one_thread() raises PeakError below 70%; the figures must also be sane."""
    if X86:
        assert probe.units is not None, "every x86 CPU seen here (Zen 3, Zen 4, Intel AVX-512) is in the table"
    reading, theory = probe.one_thread(CPUS[0])
    if theory:
        assert PROBE_MIN_FRACTION_OF_THEORY * theory <= reading.gflops_cpu <= THEORY_SLACK * theory
    assert 0.5 < reading.clock_ghz < 7.0


def test_the_probe_beats_every_trusted_kernel_built_for_its_isa(probe: Probe, tmp_path: Path) -> None:
    reading, _ = probe.one_thread(CPUS[0])
    pipeline = Pipeline(fast_config(tmp_path, march=probe.march, threads=1))
    try:
        figures = measure_trusted_kernels(pipeline)
    finally:
        pipeline.close()
    assert "calibration" in figures
    if probe.march != "native":  # OpenBLAS picks its kernel at run time for this CPU: only the native probe bounds it
        figures.pop("openblas", None)
    elif os.environ.get("TESTS_REQUIRE_SETUP_TOOLS"):
        assert "openblas" in figures, "quickstart installs libopenblas-dev"
    for name, gflops in figures.items():
        assert 0 < gflops < reading.gflops_cpu, f"{name} at {gflops:.1f} GFLOPS beats the {probe.march} probe"


def test_the_peak_of_t_threads_is_between_one_thread_and_t_times_one(tmp_path: Path) -> None:
    probe = Probe("native")
    try:
        peak = probe.measure(CPUS)
    finally:
        probe.close()
    assert peak.one_thread_gflops <= peak.gflops <= peak.one_thread_gflops * len(CPUS) + 1e-9
    assert peak.threads == len(CPUS) and peak.source == "measured"


@pytest.mark.parametrize(
    ("vendor", "family", "model", "flags", "lanes", "fma", "flop_per_cycle"),
    [
        ("AuthenticAMD", 25, 1, "avx2 fma", 4, True, 16),  # Zen 3: 2 x 256-bit FMA pipes
        ("AuthenticAMD", 25, 17, "avx2 fma avx512f", 8, True, 16),  # Zen 4: AVX-512 split into 256-bit halves
        ("AuthenticAMD", 25, 1, "avx2 fma", 2, False, 8),  # SSE2 on Zen 3: 2 multiply + 2 add pipes
        ("AuthenticAMD", 23, 1, "avx2 fma", 4, True, 8),  # Zen 1: 128-bit pipes
        ("GenuineIntel", 6, 106, "avx2 fma avx512f", 8, True, 32),  # Ice Lake-SP: 2 x 512-bit FMA
        ("GenuineIntel", 6, 106, "avx2 fma avx512f", 4, True, 16),  # the same core running AVX2 code
        ("GenuineIntel", 6, 85, "avx2 fma", 2, False, 4),  # SSE2 on Intel: 2 ports for multiply and add
    ],
)
def test_the_theoretical_flop_per_cycle_of_known_cores(
    vendor: str, family: int, model: int, flags: str, lanes: int, fma: bool, flop_per_cycle: int
) -> None:
    units = fp_units(f"vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nflags\t\t: {flags}\n")
    assert isinstance(units, FpUnits) and units.flop_per_cycle(lanes, fma) == flop_per_cycle


def test_an_unknown_cpu_has_no_theory_rather_than_a_guessed_one() -> None:
    assert fp_units("vendor_id\t: HygonGenuine\ncpu family\t: 24\nmodel\t\t: 1\nflags\t\t: avx2 fma\n") is None
    assert fp_units("") is None


def test_a_pinned_march_this_node_cannot_run_is_refused_at_start(tmp_path: Path) -> None:
    if not X86 or native_isa() == "avx512":
        pytest.skip("needs an x86 CPU without AVX-512")
    with pytest.raises(PeakError, match=r"set bencher\.march"):
        detect_node(fast_config(tmp_path, march="x86-64-v4"))


# --- a bencher never charges its own mistake -----------------------------------------------------------------


class AgreeingReprobe(Pipeline):
    """A node whose re-probe confirms its (wrong) peak: no real CPU here has a probe that is wrong twice, so
    this one method stands in for it."""

    def reprobe(self) -> None:
        pass


class FailingReprobe(Pipeline):
    """A node too busy to be re-probed (the probe below its theory five times): stands in for an overload."""

    def reprobe(self) -> None:
        raise PeakError("the peak probe measured 10.0 GFLOPS for one thread, below 70% of ...")


def naive_over_a_low_peak(pipeline_class: type[Pipeline], tmp_path: Path, node: Node) -> tuple[Pipeline, Evaluation]:
    """The naive kernel measured on `node` with a peak of 0.001 GFLOPS (every figure is over it)."""
    pipeline = pipeline_class(fast_config(tmp_path), node=low_peak(node))
    try:
        return pipeline, pipeline.evaluate("dgemm", 128, (CORPUS / "ok_naive.c").read_text())
    finally:
        pipeline.close()


def unconfirmed_count() -> float:
    return REGISTRY.get_sample_value("hpcrl_bencher_unconfirmed_impossible_total") or 0.0


def low_peak(node: Node) -> Node:
    return Node(node.host, "", node.cpus, node.threads, "tiny", peak_gflops=0.001, isa=node.isa)


def test_a_figure_over_a_peak_measured_too_low_gets_its_reward_after_a_re_probe(tmp_path: Path, node: Node) -> None:
    before = unconfirmed_count()
    pipeline, evaluation = naive_over_a_low_peak(Pipeline, tmp_path, node)
    assert evaluation.verdict is Verdict.OK, evaluation.detail
    assert evaluation.gflops_median > 0 and "peak was re-probed" in evaluation.detail
    assert pipeline.node.peak_gflops > 1.0, "the re-probe replaced the peak that was too low"
    assert unconfirmed_count() == before


def test_an_over_peak_figure_that_cannot_be_re_checked_is_not_charged(tmp_path: Path, node: Node) -> None:
    before = unconfirmed_count()
    _pipeline, evaluation = naive_over_a_low_peak(FailingReprobe, tmp_path, node)
    assert evaluation.verdict is Verdict.INFRA_ERROR, evaluation.detail
    assert "unconfirmed impossible speed, not charged" in evaluation.detail
    assert "could not be re-probed" in evaluation.detail
    assert unconfirmed_count() == before + 1


def test_a_confirmed_impossible_speed_is_charged(tmp_path: Path, node: Node) -> None:
    before = unconfirmed_count()
    _pipeline, evaluation = naive_over_a_low_peak(AgreeingReprobe, tmp_path, node)
    assert evaluation.verdict is Verdict.REJECTED
    assert "impossible speed" in evaluation.detail and "confirmed" in evaluation.detail
    assert unconfirmed_count() == before


def test_the_trusted_kernels_pass_the_start_check_on_this_node(tmp_path: Path) -> None:
    pipeline = Pipeline(fast_config(tmp_path))
    try:
        figures = check_peak_against_trusted_kernels(pipeline)
    finally:
        pipeline.close()
    assert figures["calibration"] > 0
    assert max(figures.values()) <= pipeline.node.peak_gflops * pipeline.config.peak_margin


class LowForTwoReprobes(Pipeline):
    """A node whose first re-probes still run beside a starting process (a trainer importing torch): the
    peak stays too low for two re-probes, then the node is quiet."""

    reprobes = 0

    def reprobe(self) -> None:
        self.reprobes += 1
        if self.reprobes > 2:
            super().reprobe()


def test_a_peak_measured_low_under_a_burst_of_load_is_re_probed_until_it_clears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in the suite: a bencher started beside a trainer measured its two-thread peak at 57 GFLOPS (103
    quiet), OpenBLAS beat it, and one re-probe at once was still under load: the bencher refused to start."""
    monkeypatch.setattr(trust, "REPROBE_PAUSE_S", 0.1)
    pipeline = LowForTwoReprobes(fast_config(tmp_path, peak_gflops=0.01))
    try:
        check_peak_against_trusted_kernels(pipeline)
    finally:
        pipeline.close()
    assert pipeline.reprobes == 3 and pipeline.node.peak_gflops > 1.0


def test_a_declared_peak_below_a_trusted_kernel_is_re_probed_before_serving(tmp_path: Path) -> None:
    pipeline = Pipeline(fast_config(tmp_path, peak_gflops=0.01))
    try:
        check_peak_against_trusted_kernels(pipeline)
    finally:
        pipeline.close()
    assert pipeline.node.peak_gflops > 1.0


def test_a_peak_that_trusted_code_beats_even_after_a_re_probe_refuses_to_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trust, "REPROBE_WINDOW_S", 0.5)
    monkeypatch.setattr(trust, "REPROBE_PAUSE_S", 0.1)
    pipeline = AgreeingReprobe(fast_config(tmp_path, peak_gflops=0.01))
    try:
        with pytest.raises(PeakError) as refused:
            check_peak_against_trusted_kernels(pipeline)
    finally:
        pipeline.close()
    message = str(refused.value)
    assert "calibration kernel measured" in message and "0.0 GFLOPS x peak_margin" in message
    assert "bencher.peak_gflops" in message, "the error names the fix"


@pytest.mark.parametrize("name", ["naive_ijk", "tiled", "avx2_fma", "openmp"])
def test_honest_ladder_kernels_are_never_charged_as_impossible(tmp_path: Path, node: Node, name: str) -> None:
    pipeline = Pipeline(fast_config(tmp_path), node=node)
    try:
        evaluation = pipeline.evaluate("dgemm", 512, (LADDER / f"{name}.c").read_text())
    finally:
        pipeline.close()
    assert evaluation.verdict is Verdict.OK, evaluation.detail
    assert 0 < evaluation.gflops_max <= node.peak_gflops * pipeline.config.peak_margin
    assert math.isfinite(evaluation.gflops_median)


PRINTS_ITS_CPUS = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
void dgemm(int n, const double *A, const double *B, double *C) {
    cpu_set_t allowed;
    sched_getaffinity(0, sizeof allowed, &allowed);
    printf("cpus=%d\n", CPU_COUNT(&allowed));
    fflush(stdout);
    (void)A, (void)B;
    C[0] = 0.0 / 0.0; /* wrong on purpose: the detail then shows what it printed */
    (void)n;
}
"""


def test_a_trusted_library_kernel_runs_on_every_allocated_cpu(pipeline: Pipeline, node: Node) -> None:
    """The OpenMP runtime that the monitor's child loads before a candidate binds that thread to the first
    OpenMP place; a pthreads library started after it (OpenBLAS) then ran all its threads on one CPU, and
    2-thread OpenBLAS measured one core. The bencher's own library kernels load without it."""
    evaluation = pipeline.evaluate("dgemm", 128, PRINTS_ITS_CPUS, use_cache=False, trusted_libraries=("-lm",))
    assert f"cpus={node.threads}" in evaluation.detail, evaluation.detail
