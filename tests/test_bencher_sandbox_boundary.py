"""The sandbox's boundary against a program that got past every other check (issue 11, section 3): it holds no
memory outside its address-space limit, sees only the host files a build and a run need, and cannot signal,
re-pin, renice, reschedule or re-limit the sandbox's pid 1 (the benchmark monitor) nor write its memory.

First the sandbox layer on its own, with small trusted probes (tests/sandbox_probes/, built with the host's gcc)
that make the raw calls a candidate could reach by pointer arithmetic from an allowed libc symbol; then end to end
through the Pipeline, with candidates built as trusted code so that the policy does not stop them first. Needs
root, bwrap and gcc."""

from __future__ import annotations

import ctypes.util
import os
import resource
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bencher.pipeline import Pipeline
from bencher.sandbox import NOBODY_UID, SYSTEM_PATHS, Limits, Mount, Sandbox, SandboxRun
from bus.schema import Verdict
from tests.bencher_support import LADDER, SANDBOX_TEST_MARKS, fast_config, sandbox_processes

PROBE_SOURCES = Path(__file__).resolve().parent / "sandbox_probes"
PROBES = ("hoard", "paths", "monitor_attack")

pytestmark = SANDBOX_TEST_MARKS

LIMITS = Limits(
    wall_s=5.0,
    cpu_s=5,
    address_space_bytes=256 << 20,
    processes=64,
    file_size_bytes=1 << 30,
    open_files=64,
    tmpfs_bytes=16 << 20,
)
HOARD_MIB = 320
"""More than LIMITS.address_space_bytes: held memory the limit would not see."""


@pytest.fixture(scope="module")
def probes() -> Iterator[Path]:
    """The probes, built once, in a directory the sandbox uid can reach (pytest's tmp_path is root-only)."""
    directory = Path(tempfile.mkdtemp(prefix="hpcrl-boundary-probes-"))
    directory.chmod(0o755)
    try:
        for name in PROBES:
            command = ["gcc", "-O1", "-Wall", "-o", str(directory / name), str(PROBE_SOURCES / f"{name}.c")]
            subprocess.run(command, check=True, timeout=60)
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


def run_probe(sandbox: Sandbox, probes: Path, name: str, *args: str, mounts: tuple[Mount, ...] = ()) -> SandboxRun:
    return sandbox.run(
        [f"/tmp/work/{name}", *args], limits=LIMITS, mounts=[Mount(probes / name, f"/tmp/work/{name}"), *mounts]
    )


def report(run: SandboxRun) -> dict[str, str]:
    """A probe's `key=value` lines."""
    return dict(line.split("=", 1) for line in run.stdout.decode().splitlines() if "=" in line)


# -- memory outside RLIMIT_AS ------------------------------------------------------------------------------------


def test_memfd_create_is_refused_so_no_memory_is_held_beyond_the_address_space_limit(
    sandbox: Sandbox, probes: Path
) -> None:
    run = run_probe(sandbox, probes, "hoard", str(HOARD_MIB), "memfd")
    assert run.ok, run.describe()
    assert report(run) == {"memfd": "EPERM"}


def test_posix_message_queues_are_refused(sandbox: Sandbox, probes: Path) -> None:
    assert report(run_probe(sandbox, probes, "hoard", "1", "mq_open")) == {"mq_open": "EPERM"}


def test_no_tmpfs_but_the_size_bounded_tmp_is_writable(sandbox: Sandbox, probes: Path) -> None:
    """bwrap's root and /dev are tmpfs bounded only by RAM: both must be read-only."""
    seen = report(run_probe(sandbox, probes, "hoard", "1", "root_dir", "etc_dir", "dev_shm"))
    assert seen == {"root_dir": "EROFS", "etc_dir": "EROFS", "dev_shm": "EROFS"}


def test_the_x32_syscall_numbers_do_not_get_around_the_filter(sandbox: Sandbox, probes: Path) -> None:
    run = run_probe(sandbox, probes, "hoard", str(HOARD_MIB), "memfd_x32")
    assert run.signal == signal.SIGSYS  # libseccomp's filter kills a call from a foreign ABI
    assert "memfd_x32_mib" not in report(run)


# -- what the program sees of the host's files -------------------------------------------------------------------


@pytest.fixture
def host_secret() -> Iterator[Path]:
    """A world-readable file in a world-searchable directory of the host, outside every path we bind."""
    directory = Path(tempfile.mkdtemp(prefix="hpcrl-test-secret-", dir="/var/tmp"))
    try:
        directory.chmod(0o755)
        secret = directory / "secret"
        secret.write_text(secrets.token_hex(8))
        secret.chmod(0o644)
        yield secret
    finally:
        shutil.rmtree(directory)


def test_host_files_outside_the_system_paths_are_invisible(sandbox: Sandbox, probes: Path, host_secret: Path) -> None:
    hidden = [
        f"r:{host_secret}",
        f"r:{Path(__file__).resolve()}",  # the repository (and the bencher's cache dir, wherever it lies)
        "r:/etc/passwd",
        "r:/etc/hostname",
        *(f"d:{directory}" for directory in ("/home", "/root", "/work", "/srv", "/var", "/opt", "/run", "/mnt")),
    ]
    seen = report(run_probe(sandbox, probes, "paths", *hidden))
    assert seen == dict.fromkeys(hidden, "ENOENT")


def test_the_root_and_etc_hold_only_what_a_build_and_a_run_need(sandbox: Sandbox, probes: Path) -> None:
    seen = report(run_probe(sandbox, probes, "paths", "d:/", "d:/etc"))
    links = {name for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32") if os.path.lexists(f"/{name}")}
    assert set(seen["d:/"].split(",")) == {"usr", "etc", "sys", "proc", "dev", "tmp", *links}
    assert set(seen["d:/etc"].split(",")) == {
        path.removeprefix("/etc/") for path in SYSTEM_PATHS if path.startswith("/etc/") and os.path.exists(path)
    }


def test_the_toolchain_libraries_and_cpu_topology_stay_readable(sandbox: Sandbox, probes: Path) -> None:
    needed = [
        "r:/bin/sh",
        f"r:{shutil.which('gcc')}",
        "r:/usr/include/stdio.h",
        "r:/etc/ld.so.cache",
        "r:/proc/self/status",
        "r:/sys/devices/system/cpu/online",  # glibc's sysconf(_SC_NPROCESSORS_ONLN), OpenBLAS
        "w:/tmp/work/out",
    ]
    assert report(run_probe(sandbox, probes, "paths", *needed)) == dict.fromkeys(needed, "ok")


OPENBLAS_PROGRAM = """
#include <stdio.h>
enum { ROW_MAJOR = 101, NO_TRANS = 111, N = 256 };
void cblas_dgemm(int, int, int, int, int, int, double, const double *, int, const double *, int, double, double *,
                 int);
static double a[N * N], b[N * N], c[N * N];
int main(void) {
    for (int i = 0; i < N * N; i++) a[i] = b[i] = 1.0;
    cblas_dgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, N, N, N, 1.0, a, N, b, N, 0.0, c, N);
    printf("c=%g\\n", c[N * N - 1]);
    return 0;
}
"""


@pytest.mark.skipif(ctypes.util.find_library("openblas") is None, reason="needs OpenBLAS (libopenblas-dev)")
def test_openblas_links_and_runs_through_etc_alternatives_with_its_threads(sandbox: Sandbox) -> None:
    """libopenblas.so is a link through /etc/alternatives, and its threads read the CPU topology from /sys."""
    with sandbox.host_dir("hpcrl-test-blas-") as out:
        (out / "blas.c").write_text(OPENBLAS_PROGRAM)
        os.chown(out / "blas.c", NOBODY_UID, NOBODY_UID)
        mounts = [Mount(out, "/tmp/work/out", writable=True)]
        limits = replace(LIMITS, wall_s=60.0, cpu_s=60, address_space_bytes=4 << 30)
        build = sandbox.run(["gcc", "-O1", "out/blas.c", "-lopenblas", "-o", "out/blas"], limits=limits, mounts=mounts)
        assert build.ok, build.describe() + build.stderr.decode()
        run = sandbox.run(["out/blas"], limits=limits, mounts=mounts, env={"OPENBLAS_NUM_THREADS": "2"})
        assert run.ok, run.describe() + run.stderr.decode()
        assert run.stdout == b"c=256\n"


def test_a_root_only_file_bound_in_stays_unreadable_to_the_sandbox_uid(sandbox: Sandbox, probes: Path) -> None:
    """The uid drop: host permissions apply inside (bwrap run by root would map 'nobody' to host root)."""
    directory = Path(tempfile.mkdtemp(prefix="hpcrl-test-rootonly-"))
    try:
        directory.chmod(0o755)
        secret = directory / "secret"
        secret.write_text("root only")
        secret.chmod(0o600)
        seen = report(
            run_probe(sandbox, probes, "paths", "r:/tmp/work/secret", mounts=(Mount(secret, "/tmp/work/secret"),))
        )
        assert seen == {"r:/tmp/work/secret": "EACCES"}
    finally:
        shutil.rmtree(directory)


# -- the monitor (the sandbox's pid 1) against its child ---------------------------------------------------------

REFUSED_ATTACKS = [
    "kill_term", "kill_stop", "kill_kill", "tgkill", "sigqueue", "pidfd",
    "nice", "nice_group", "nice_user", "idle", "setattr", "affinity", "affinity_high", "prlimit", "ioprio",
]  # fmt: skip
"""Attacks the seccomp filter refuses with EPERM when they name pid 1 (or its process group or uid)."""
KERNEL_STOPPED_ATTACKS = {"mem": "EACCES", "kill_group": "ok", "kill_all": "ESRCH"}
"""Attacks the kernel stops: pid 1 is non-dumpable (no /proc/1/mem) and ignores signals from inside without a
handler, so kill(0, ...) reaches only the caller's group minus pid 1, and kill(-1, ...) finds nobody to signal."""
PARENT_UNCHANGED = {
    "parent_affinity": "unchanged",
    "parent_nice": "unchanged",
    "parent_policy": "unchanged",
    "parent_ioprio": "unchanged",
    "parent_nofile": "unchanged",
    "self_affinity": "ok",  # the monitor re-pins itself (by 0) after every call
    "kill_child": "ok",  # and SIGKILLs its child on a timeout
}


def test_the_program_is_pid_1_and_alone_in_its_namespace(sandbox: Sandbox, probes: Path) -> None:
    """No bwrap init process whose memory a child could write, or that stands between the monitor and the kernel."""
    run = run_probe(sandbox, probes, "monitor_attack", "parent")
    assert run.ok, run.describe()
    seen = report(run)
    assert (seen["pid"], seen["others"]) == ("1", "")


@pytest.mark.parametrize("target", ["parent", "1"])
@pytest.mark.parametrize("attack", [*REFUSED_ATTACKS, *KERNEL_STOPPED_ATTACKS])
def test_a_child_cannot_signal_repin_renice_reschedule_limit_or_write_pid_1(
    sandbox: Sandbox, probes: Path, target: str, attack: str
) -> None:
    run = run_probe(sandbox, probes, "monitor_attack", target, attack)
    assert run.ok, f"pid 1 did not survive {attack}: {run.describe()}"
    seen = report(run)
    assert seen[attack] == KERNEL_STOPPED_ATTACKS.get(attack, "EPERM")
    assert {key: seen.get(key) for key in PARENT_UNCHANGED} == PARENT_UNCHANGED


def test_without_seccomp_signals_from_inside_still_cannot_reach_pid_1(probes: Path) -> None:
    """The kernel's own rule for a PID namespace's init, SIGKILL and SIGSTOP included."""
    run = run_probe(Sandbox(seccomp=False), probes, "monitor_attack", "parent", "kill_term", "kill_stop", "kill_kill")
    assert run.ok, run.describe()
    seen = report(run)
    assert seen["kill_kill"] == "ok"  # accepted, and dropped
    assert {key: seen.get(key) for key in PARENT_UNCHANGED} == PARENT_UNCHANGED


def test_a_child_may_still_pin_renice_and_reschedule_itself_and_its_threads(sandbox: Sandbox, probes: Path) -> None:
    """What libgomp does (pthread_setaffinity_np on each thread's own tid), and a program's own business."""
    own = ["own_affinity", "own_thread_affinity", "own_nice", "own_batch"]
    seen = report(run_probe(sandbox, probes, "monitor_attack", "parent", *own))
    assert {name: seen.get(name) for name in own} == dict.fromkeys(own, "ok")


@pytest.fixture
def real_time_allowed() -> Iterator[None]:
    """This process (root) may give real-time priority to the processes it starts, as under a unit with
    LimitRTPRIO=; the sandbox must not pass that on."""
    before = resource.getrlimit(resource.RLIMIT_RTPRIO)
    try:
        resource.setrlimit(resource.RLIMIT_RTPRIO, (1, 1))
    except ValueError:
        pytest.skip("raising RLIMIT_RTPRIO needs CAP_SYS_RESOURCE, which this root lacks (a container)")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_RTPRIO, before)


@pytest.mark.usefixtures("real_time_allowed")
def test_a_child_cannot_take_a_real_time_priority_to_starve_pid_1(sandbox: Sandbox, probes: Path) -> None:
    seen = report(run_probe(sandbox, probes, "monitor_attack", "parent", "own_fifo"))
    assert seen["own_fifo"] == "EPERM"


# -- end to end: candidates that got past the policy -------------------------------------------------------------

HEADERS = """
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
"""
ATTACKING_DGEMM = (
    HEADERS
    + """
static int attacked;

/* Correct, unless the attack on the monitor (the parent process) succeeded. */
void dgemm(int n, const double *A, const double *B, double *C) {
    int succeeded = 0;
    if (!attacked) {
        attacked = 1;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        (void)one;
        succeeded = (ATTACK) == 0;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++) sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum + (succeeded ? 1.0 : 0.0);
        }
}
"""
)
E2E_ATTACKS = {
    "kill": "kill(getppid(), SIGKILL)",
    "stop": "kill(getppid(), SIGSTOP)",
    "renice": "setpriority(PRIO_PROCESS, getppid(), 19)",
    "sched_idle": "sched_setscheduler(getppid(), SCHED_IDLE, &(struct sched_param){0})",
    "repin": "sched_setaffinity(getppid(), sizeof one, &one)",
    "prlimit": "prlimit(getppid(), RLIMIT_NOFILE, &(struct rlimit){3, 3}, NULL)",
}
MEMFD_DGEMM = (
    HEADERS
    + """
static int hoarded;

/* Holds 320 MiB in a memfd (more than the run's address-space limit), or gives up. */
void dgemm(int n, const double *A, const double *B, double *C) {
    if (!hoarded) {
        hoarded = 1;
        int fd = memfd_create("hoard", 0);
        if (fd < 0) abort();
        static char chunk[1 << 20];
        memset(chunk, 1, sizeof chunk);
        for (int i = 0; i < 320; i++)
            if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk) abort();
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++) sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
}
"""
)
PAST_THE_POLICY = ("-lm",)
"""Trusted libraries: the build skips the policy, as for a candidate that reached these calls at run time."""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    # A declared peak far above any real one: these tests are about the sandbox, not the impossible-speed check.
    config = fast_config(tmp_path_factory.mktemp("bencher"), run_memory_bytes=256 << 20, peak_gflops=1e6)
    pipeline = Pipeline(config)
    yield pipeline
    pipeline.close()


@pytest.mark.parametrize("attack", sorted(E2E_ATTACKS))
def test_a_candidate_cannot_kill_stop_or_slow_the_monitor(pipeline: Pipeline, attack: str) -> None:
    """Refused, the attack changes nothing: the candidate's correct answer is measured as usual."""
    source = ATTACKING_DGEMM.replace("ATTACK", E2E_ATTACKS[attack])
    evaluation = pipeline.evaluate("dgemm", 128, source, use_cache=False, trusted_libraries=PAST_THE_POLICY)
    assert evaluation.verdict is Verdict.OK, f"{evaluation.verdict}: {evaluation.detail}"
    assert sandbox_processes() == []


def test_a_candidate_that_hoards_memory_in_a_memfd_is_refused_and_charged(pipeline: Pipeline) -> None:
    evaluation = pipeline.evaluate("dgemm", 128, MEMFD_DGEMM, use_cache=False, trusted_libraries=PAST_THE_POLICY)
    assert evaluation.verdict is Verdict.CRASH, f"{evaluation.verdict}: {evaluation.detail}"  # its abort(): ours
    assert "signal 6" in evaluation.detail


@pytest.mark.parametrize("path", sorted(LADDER.glob("*.c")), ids=lambda path: path.stem)
def test_the_ladder_kernels_still_pass_inside_the_tighter_sandbox(pipeline: Pipeline, path: Path) -> None:
    """The OpenMP rung included: libgomp pins its threads by their own tids, never pid 1."""
    evaluation = pipeline.evaluate("dgemm", 128, path.read_text(), use_cache=False)
    assert evaluation.verdict is Verdict.OK, f"{path.name}: {evaluation.verdict} ({evaluation.detail})"
