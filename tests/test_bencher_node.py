"""Threads and pinning come from the allocation, and the peak probe gives a plausible ceiling."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from bencher.node import Node, allocated_threads, detect_node
from tests.bencher_support import fast_config

AFFINITY = tuple(sorted(os.sched_getaffinity(0)))


def test_threads_default_to_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    assert allocated_threads(fast_config(tmp_path), env={}) == (len(AFFINITY), AFFINITY)


def test_slurm_cpus_per_task_sets_the_thread_count(tmp_path: Path) -> None:
    threads, cpus = allocated_threads(fast_config(tmp_path), env={"SLURM_CPUS_PER_TASK": "1"})
    assert threads == 1 and cpus == AFFINITY[:1]


def test_configured_threads_win_but_never_exceed_the_affinity(tmp_path: Path) -> None:
    assert allocated_threads(fast_config(tmp_path, threads=1), env={"SLURM_CPUS_PER_TASK": "2"})[0] == 1
    assert allocated_threads(fast_config(tmp_path, threads=64), env={})[0] == len(AFFINITY)


def test_candidates_get_openmp_settings_that_match_the_allocation() -> None:
    env = Node("h", "", (2, 5), 2, "c", 100.0).openmp_env()
    assert env["OMP_NUM_THREADS"] == env["OMP_THREAD_LIMIT"] == "2"
    assert env["OMP_PLACES"] == "{2},{5}" and env["OMP_PROC_BIND"] == "close"
    assert env["OMP_WAIT_POLICY"] == "passive"


def test_a_declared_peak_and_node_class_are_used_as_given(tmp_path: Path) -> None:
    node = detect_node(fast_config(tmp_path, peak_gflops=123.0, node_class="genoa-2c"))
    assert node.peak_gflops == 123.0 and node.node_class == "genoa-2c"
    assert node.isa, "a declared peak still reports the ISA"


@pytest.mark.skipif(platform.machine() != "x86_64", reason="pins an x86 ISA level")
def test_the_default_node_class_names_the_isa_and_a_pinned_march(tmp_path: Path) -> None:
    native = detect_node(fast_config(tmp_path, peak_gflops=50.0))
    pinned = detect_node(fast_config(tmp_path, peak_gflops=50.0, march="x86-64"))
    assert native.isa in native.node_class and native.node_class.endswith(f"x{native.threads}")
    assert "-march=x86-64" in pinned.node_class and pinned.march == "x86-64"
    assert pinned.isa == native.isa, "the peak (and its ISA) is the node's own, whatever march pins"
