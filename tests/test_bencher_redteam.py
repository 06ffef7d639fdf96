"""Red-team findings against the bencher, each through the full policy (no trusted_libraries): the
candidate is plain C source, as the policy writes it.

A forked grandchild escapes the monitor's CPU accounting: the monitor reads the candidate's CPU time
from the child's process clock, which counts the child's threads and not its children. The grandchild
shares the problem's MAP_SHARED buffers, so it can follow the monitor's filling of the next call's
inputs and compute the output before "go", on CPU time nobody sees (jacobi2d measured at the pipe's
round-trip time). The source policy cannot stop the call: any allowed libc function (printf) leads to
libc's ELF header and from there, through its dynamic symbol table, to `fork`.

The same lookup reaches `pthread_create`: a thread of the candidate's own, outliving the call, could do the
same work between calls within the CPU budget there, so the monitor stops the candidate's process between
calls. It also reaches `dlopen`: the node's OpenBLAS was measured as the candidate's own work, so no new code
may be mapped once the candidate is loaded. And a build key that changed with every process (gcc's temporary
file name) emptied the caches at every restart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bencher.node import Node
from bencher.pipeline import Pipeline
from bus.schema import Verdict
from tests.bencher_support import fast_config

pytestmark = pytest.mark.timeout(300)

LIBC_LOOKUP = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>
typedef struct { unsigned char id[16]; uint16_t type, machine; uint32_t version; uint64_t entry, phoff, shoff;
                 uint32_t flags; uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx; } rt_ehdr;
typedef struct { uint32_t type, flags; uint64_t offset, vaddr, paddr, filesz, memsz, align; } rt_phdr;
typedef struct { int64_t tag; uint64_t val; } rt_dyn;
typedef struct { uint32_t name; unsigned char info, other; uint16_t shndx; uint64_t value, size; } rt_sym;
static int rt_eq(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return *a == *b; }
/* Any libc function, from the address of an allowed one: down to libc's ELF header, then its .dynsym. */
static void *rt_lookup(const char *want) {
    uintptr_t base = (uintptr_t)(void *)&printf & ~(uintptr_t)4095;
    while (memcmp((const void *)base, "\177ELF", 4) != 0) base -= 4096;
    const rt_ehdr *e = (const rt_ehdr *)base;
    const rt_phdr *ph = (const rt_phdr *)(base + e->phoff);
    const rt_dyn *d = 0;
    for (int i = 0; i < e->phnum; i++) if (ph[i].type == 2) d = (const rt_dyn *)(base + ph[i].vaddr);
    const rt_sym *sym = 0; const char *str = 0;
    for (; d && d->tag; d++) {
        uint64_t v = d->val < base ? d->val + base : d->val;
        if (d->tag == 6) sym = (const rt_sym *)v;
        if (d->tag == 5) str = (const char *)v;
    }
    for (const rt_sym *s = sym; (const char *)s < str; s++)
        if (s->name && s->value && rt_eq(str + s->name, want)) return (void *)(base + s->value);
    return 0;
}
"""

FORKS_THROUGH_LIBC_SYMBOL_TABLE = (
    LIBC_LOOKUP
    + r"""
/* Computes the sweep (with OpenMP threads) only when fork failed: a process that could start one
 * leaves its output NaN, so `wrong_answer` means "the candidate started a process". */
static int tried, forked;
void jacobi2d(int n, const double *in, double *out) {
    if (!tried) {
        tried = 1;
        int (*fork_fn)(void) = (int (*)(void))rt_lookup("fork");
        int pid = fork_fn ? fork_fn() : -1;
        if (pid == 0) for (;;) __builtin_ia32_pause(); /* the grandchild: ends with the sandbox */
        forked = pid > 0;
    }
    if (forked) return;
#pragma omp parallel for
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            out[i * n + j] = (i == 0 || j == 0 || i == n - 1 || j == n - 1)
                                 ? in[i * n + j]
                                 : 0.25 * (in[(i - 1) * n + j] + in[(i + 1) * n + j]
                                           + in[i * n + j - 1] + in[i * n + j + 1]);
}
"""
)


def test_the_policy_lets_a_candidate_reach_fork_through_libc_but_the_candidates_process_cannot_fork(
    pipeline: Pipeline,
) -> None:
    evaluation = pipeline.evaluate("jacobi2d", 256, FORKS_THROUGH_LIBC_SYMBOL_TABLE, use_cache=False)
    assert evaluation.verdict is Verdict.OK, evaluation.detail  # fork failed; OpenMP threads still start


def test_the_target_identity_is_the_same_in_every_process() -> None:
    """Build and result keys include it: a per-process identity (gcc's random temporary .s name in the
    command line) would throw away the whole cache at every restart and grow the build cache without end."""
    import subprocess
    import sys

    from tests.conftest import REPO

    probe = "from bencher.build import target_identity; print(target_identity('gcc', 'native'))"
    seen = {
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60).stdout
        for _ in range(2)
    }
    assert len(seen) == 1 and seen != {""}, seen


SPINS_IN_A_THREAD_OF_ITS_OWN = (
    LIBC_LOOKUP
    + r"""
/* A thread of its own (pthread_create from libc's symbol table) that never sleeps: between calls it
 * could watch the shared buffers and compute the next output before "go" (jacobi2d n = 1024 measured
 * 20 GFLOPS against 5.5 for the same code without it). Here it only spins. */
static volatile long spins;
static void *spin(void *unused) { for (;;) spins++; return unused; }
void jacobi2d(int n, const double *in, double *out) {
    static long thread;
    if (!thread) {
        int (*start)(long *, void *, void *(*)(void *), void *) =
            (int (*)(long *, void *, void *(*)(void *), void *))rt_lookup("pthread_create");
        start(&thread, 0, spin, 0);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            out[i * n + j] = (i == 0 || j == 0 || i == n - 1 || j == n - 1)
                                 ? in[i * n + j]
                                 : 0.25 * (in[(i - 1) * n + j] + in[(i + 1) * n + j]
                                           + in[i * n + j - 1] + in[i * n + j + 1]);
}
"""
)


def test_the_candidates_threads_are_stopped_between_calls(tmp_path: Path, node: Node) -> None:
    """The monitor stops the candidate's process from "done" until the next inputs are written: a thread
    that never sleeps uses no CPU between calls (before, it used all of it, and one that computed there
    was only bounded by outside_cpu_s_per_call). Between "done" and the stop it still runs for as long as
    the monitor takes to be scheduled: up to a time slice on a busy node, hence an allowance of 10 ms a
    call here; the gap it would otherwise fill (new 2048 x 2048 inputs, the verification) is 20-60 ms."""
    pipeline = Pipeline(fast_config(tmp_path, outside_cpu_s_per_call=0.01), node=node)
    try:
        evaluation = pipeline.evaluate("jacobi2d", 2048, SPINS_IN_A_THREAD_OF_ITS_OWN, use_cache=False)
    finally:
        pipeline.close()
    assert evaluation.verdict is Verdict.OK, evaluation.detail


LOADS_BLAS_THROUGH_LIBC = (
    LIBC_LOOKUP
    + r"""
/* dlopen is in libc: the node's OpenBLAS, measured as if it were this code. Computes C itself only when
 * the library could not be loaded; a loaded library leaves C NaN, so `wrong_answer` means "it loaded". */
typedef void (*cblas_fn)(int, int, int, int, int, int, double, const double *, int, const double *, int,
                         double, double *, int);
void dgemm(int n, const double *A, const double *B, double *C) {
    void *(*open_lib)(const char *, int) = (void *(*)(const char *, int))rt_lookup("dlopen");
    if (open_lib("libopenblas.so.0", 2) || open_lib("libblas.so.3", 2)) return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++) sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
}
"""
)


def test_the_candidate_cannot_load_a_library_after_it_is_loaded(pipeline: Pipeline) -> None:
    """No new code may be mapped in the candidate's process once it is loaded: dlopen (or machine code
    written into memory) fails, so no BLAS of the node is measured as the candidate's own work."""
    evaluation = pipeline.evaluate("dgemm", 128, LOADS_BLAS_THROUGH_LIBC, use_cache=False)
    assert evaluation.verdict is Verdict.OK, evaluation.detail
