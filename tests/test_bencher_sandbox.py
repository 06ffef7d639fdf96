"""The sandbox layer on its own: small C probes (tests/sandbox_probes/, built with the host's gcc, not candidates)
run inside `bencher.sandbox.Sandbox` and report what they could do. Needs root, bwrap and gcc; talks only to
127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bencher.sandbox import NOBODY_UID, Limits, Mount, Sandbox, SandboxError, SandboxRun
from tests.bencher_support import SANDBOX_TEST_MARKS

PROBE_SOURCES = Path(__file__).resolve().parent / "sandbox_probes"

pytestmark = SANDBOX_TEST_MARKS

LIMITS = Limits(
    wall_s=2.0,
    cpu_s=5,
    address_space_bytes=512 << 20,
    processes=64,
    file_size_bytes=16 << 20,
    open_files=64,
    tmpfs_bytes=16 << 20,
)
COMPILER_LIMITS = replace(
    LIMITS, wall_s=30.0, cpu_s=30, address_space_bytes=4 << 30, processes=64, file_size_bytes=256 << 20
)


# -- fixtures and helpers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probes() -> Iterator[Path]:
    """Every probe built once, in a directory the sandbox uid can reach (pytest's tmp_path is root-only)."""
    directory = Path(tempfile.mkdtemp(prefix="hpcrl-sandbox-probes-"))
    directory.chmod(0o755)
    try:
        builds = [
            subprocess.Popen(["gcc", "-O1", "-Wall", "-fopenmp", "-o", str(directory / source.stem), str(source)])
            for source in sorted(PROBE_SOURCES.glob("*.c"))
        ]
        assert all(build.wait(60) == 0 for build in builds), "a probe did not compile"
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture(scope="module")
def sandbox_without_seccomp() -> Sandbox:
    """For testing the namespaces alone: without seccomp, socket() works and only the namespaces stand in the way."""
    return Sandbox(seccomp=False)


def run_probe(
    sandbox: Sandbox,
    probes: Path,
    name: str,
    *args: str,
    limits: Limits = LIMITS,
    mounts: Sequence[Mount] = (),
    env: Mapping[str, str] | None = None,
    channel: bool = False,
    cancel: threading.Event | None = None,
    shell: bool = False,
) -> SandboxRun:
    """Run probe `name` from /tmp/work/<name> (bound read-only) with `args`; with `shell`, as a child of a shell that
    is the sandbox's pid 1 and exits with the probe's status (128+N when signal N killed it)."""
    argv = [f"/tmp/work/{name}", *args]
    if shell:
        argv = ["sh", "-c", '"$@"; exit $?', "sh", *argv]
    return sandbox.run(
        argv,
        limits=limits,
        mounts=[Mount(probes / name, f"/tmp/work/{name}"), *mounts],
        env=env,
        channel=channel,
        cancel=cancel,
    )


def report(run: SandboxRun) -> dict[str, str]:
    """A probe's `key=value` lines."""
    return dict(line.split("=", 1) for line in run.stdout.decode().splitlines() if "=" in line)


def new_marker() -> str:
    """A random word put on a probe's command line so its processes can be found in /proc."""
    return f"hpcrl-marker-{secrets.token_hex(6)}"


def leftovers(marker: str) -> list[str]:
    """Processes whose command line carries `marker`, and bwrap zombies left for us (a subreaper) to reap."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name, rest = stat.split(" (", 1)[1].rsplit(")", 1)
        state, ppid = rest.split()[:2]
        if marker.encode() in cmdline or (state == "Z" and int(ppid) == os.getpid() and name == "bwrap"):
            found.append(f"pid {entry.name} state {state}: {cmdline!r}")
    return found


def processes_of_uid(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def host_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


# -- identity and files ------------------------------------------------------------------------------------------


def test_programs_run_as_nobody_and_cannot_read_etc_shadow(sandbox: Sandbox, probes: Path) -> None:
    run = run_probe(sandbox, probes, "files", new_marker())
    assert run.ok, run.describe()
    seen = report(run)
    assert (seen["uid"], seen["gid"]) == (str(NOBODY_UID), str(NOBODY_UID))
    assert seen["read_shadow"] == "ENOENT"  # not even there: only SYSTEM_PATHS of the host are bound in


def test_system_dirs_are_read_only_and_the_work_dir_is_writable(sandbox: Sandbox, probes: Path) -> None:
    seen = report(run_probe(sandbox, probes, "files", new_marker()))
    assert seen["write_etc"] == seen["write_usr"] == "EROFS"
    assert seen["write_dev_shm"] == "EROFS"
    assert seen["write_run"] == "ENOENT"  # no /run at all: host daemons' sockets live there
    assert seen["write_work"] == "ok"


def test_a_file_written_to_tmp_inside_never_reaches_the_hosts_tmp(sandbox: Sandbox, probes: Path) -> None:
    marker = new_marker()
    seen = report(run_probe(sandbox, probes, "files", marker))
    assert seen["write_tmp"] == "ok"  # the sandbox's own /tmp ...
    assert not (Path("/tmp") / marker).exists()  # ... which is not the host's


def test_the_tmpfs_size_limit_gives_enospc(sandbox: Sandbox, probes: Path) -> None:
    run = run_probe(sandbox, probes, "fill", "/tmp/work/big", limits=replace(LIMITS, tmpfs_bytes=1 << 20))
    assert run.ok, run.describe()
    seen = report(run)
    assert seen["errno"] == "ENOSPC"
    assert int(seen["bytes"]) <= 1 << 20


def test_rlimit_fsize_kills_a_program_writing_a_larger_file(sandbox: Sandbox, probes: Path) -> None:
    # Run as a child of pid 1, like a candidate: the kernel does not send pid 1 its own SIGXFSZ (it gets EFBIG).
    run = run_probe(
        sandbox, probes, "fill", "/tmp/work/big", limits=replace(LIMITS, file_size_bytes=1 << 20), shell=True
    )
    assert run.signal == signal.SIGXFSZ
    assert run.describe() == "killed by SIGXFSZ (file size limit exceeded)"


def test_host_dir_is_writable_inside_and_removed_with_what_the_sandbox_uid_left(sandbox: Sandbox) -> None:
    with sandbox.host_dir("hpcrl-test-out-") as out:
        assert out.stat().st_uid == NOBODY_UID
        assert out.stat().st_mode & 0o777 == 0o700
        run = sandbox.run(
            ["sh", "-c", "mkdir -p out/a/b && echo hi > out/a/b/f && chmod 0 out/a/b out/a"],
            limits=LIMITS,
            mounts=[Mount(out, "/tmp/work/out", writable=True)],
        )
        assert run.ok, run.describe() + run.stderr.decode()
        assert (out / "a").stat().st_uid == NOBODY_UID
    assert not out.exists()


def test_host_dirs_of_a_killed_process_are_removed_by_the_next_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan = tmp_path / f"hpcrl-build-{gone.pid}-abc123"
    (orphan / "sub").mkdir(parents=True)
    (orphan / "sub" / "cand.o").write_bytes(b"x")
    live = tmp_path / f"hpcrl-run-{os.getpid()}-def456"
    live.mkdir()
    Sandbox()
    assert not orphan.exists(), "the dead process's dir is removed"
    assert live.exists(), "a live process's dir is left alone"


def test_a_run_leaves_no_host_temp_file(
    sandbox: Sandbox, probes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tempdir"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    run_probe(sandbox, probes, "files", new_marker())
    run_probe(sandbox, probes, "escape", new_marker(), "sleep", limits=replace(LIMITS, wall_s=0.3))
    assert list(scratch.iterdir()) == []


# -- network -----------------------------------------------------------------------------------------------------


def test_a_tcp_listener_on_the_hosts_loopback_is_unreachable(sandbox_without_seccomp: Sandbox, probes: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        seen = report(run_probe(sandbox_without_seccomp, probes, "net", "tcp", str(port)))
        assert seen["result"] == "ECONNREFUSED"  # the sandbox's own, empty loopback
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_a_unix_socket_under_run_is_unreachable(sandbox_without_seccomp: Sandbox, probes: Path) -> None:
    directory = Path(f"/run/hpcrl-test-{secrets.token_hex(6)}")
    directory.mkdir(mode=0o755)
    try:
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(directory / "s.sock"))
            listener.listen()
            (directory / "s.sock").chmod(0o777)
            hidden = report(run_probe(sandbox_without_seccomp, probes, "net", "unix", str(directory / "s.sock")))
            assert hidden["result"] == "ENOENT"
            # Control: the same socket bound in on purpose is reachable, so the probe can tell.
            bound = Mount(directory, "/tmp/work/sockets")
            seen = report(
                run_probe(sandbox_without_seccomp, probes, "net", "unix", "/tmp/work/sockets/s.sock", mounts=[bound])
            )
            assert seen["result"] == "connected"
    finally:
        shutil.rmtree(directory)


# -- seccomp and namespaces --------------------------------------------------------------------------------------


def test_seccomp_refuses_sockets_ptrace_and_kernel_attack_surface_but_not_fork(sandbox: Sandbox, probes: Path) -> None:
    run = run_probe(sandbox, probes, "syscalls")
    assert run.ok, run.describe()
    seen = report(run)
    allowed = {"fork", "socketpair"}
    assert {name: result for name, result in seen.items() if name not in allowed} == {
        name: "EPERM" for name in seen if name not in allowed
    }
    assert len(seen) == 15
    assert seen["fork"] == seen["socketpair"] == "ok"


def test_without_seccomp_socket_works_but_nested_user_namespaces_stay_refused(
    sandbox_without_seccomp: Sandbox, probes: Path
) -> None:
    seen = report(
        run_probe(sandbox_without_seccomp, probes, "syscalls", "socket_inet", "unshare_user", "clone_newuser")
    )
    assert seen["socket_inet"] == "ok"  # so the EPERM above is seccomp's
    assert seen["unshare_user"] == seen["clone_newuser"] == "ENOSPC"  # --disable-userns


def test_the_environment_holds_only_what_we_pass(
    sandbox: Sandbox, probes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPCRL_TEST_SECRET", "hunter2")
    run = run_probe(sandbox, probes, "env", env={"OMP_NUM_THREADS": "2"})
    assert b"hunter2" not in run.stdout
    assert report(run) == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp/work",
        "TMPDIR": "/tmp/work",
        "OMP_NUM_THREADS": "2",
        "PWD": "/tmp/work",  # set by bwrap
    }


# -- rlimits -----------------------------------------------------------------------------------------------------


def test_a_fork_bomb_is_bounded_by_nproc_and_leaves_no_process(probes: Path) -> None:
    # A uid of its own: RLIMIT_NPROC counts the uid host-wide, and we can then look for any process of it.
    uid = 200_000 + secrets.randbelow(100_000)
    sandbox = Sandbox(uid=uid)
    run = run_probe(sandbox, probes, "fork_bomb", limits=replace(LIMITS, processes=16))
    assert run.ok, run.describe()
    seen = report(run)
    assert seen["errno"] == "EAGAIN"
    assert int(seen["forked"]) < 16
    assert processes_of_uid(uid) == []


def test_rlimit_as_stops_a_huge_malloc(sandbox: Sandbox, probes: Path) -> None:
    limits = replace(LIMITS, address_space_bytes=256 << 20)
    assert report(run_probe(sandbox, probes, "alloc", "1024", limits=limits))["malloc"] == "failed"
    assert report(run_probe(sandbox, probes, "alloc", "64", limits=limits))["malloc"] == "ok"


def test_rlimit_cpu_kills_a_spinning_program_and_its_cpu_time_is_measured(sandbox: Sandbox, probes: Path) -> None:
    # As a child of pid 1: pid 1 itself gets no SIGXCPU, only the hard limit's SIGKILL a second later.
    limits = replace(LIMITS, cpu_s=1, wall_s=5.0)
    run = run_probe(sandbox, probes, "escape", new_marker(), "spin", limits=limits, shell=True)
    assert run.signal == signal.SIGXCPU
    assert not run.timed_out
    assert 0.9 <= run.cpu_s <= 1.5


# -- wall clock, cancel, nothing left behind ---------------------------------------------------------------------


@pytest.mark.parametrize("program", ["spin", "sleep"])
def test_the_wall_clock_limit_kills_the_program_and_its_setsid_grandchild(
    sandbox: Sandbox, probes: Path, program: str
) -> None:
    marker = new_marker()
    run = run_probe(sandbox, probes, "escape", marker, program, limits=replace(LIMITS, wall_s=1.0))
    assert run.timed_out
    assert (run.exit_code, run.signal) == (None, None)
    assert 1.0 <= run.wall_s < 1.5
    assert run.describe().startswith("wall-clock limit exceeded after 1.0 s")
    assert b"grandchild sid=" in run.stdout and b"daemonised" in run.stdout
    assert leftovers(marker) == []


def test_a_daemonised_grandchild_dies_when_the_program_exits(sandbox: Sandbox, probes: Path) -> None:
    marker = new_marker()
    run = run_probe(sandbox, probes, "escape", marker, "exit")
    assert run.ok, run.describe()
    assert b"grandchild sid=" in run.stdout
    assert run.wall_s < 1.0
    assert leftovers(marker) == []


def test_cancel_kills_a_running_program_promptly(sandbox: Sandbox, probes: Path) -> None:
    marker = new_marker()
    cancel = threading.Event()
    runs: list[SandboxRun] = []
    limits = replace(LIMITS, wall_s=30.0)
    thread = threading.Thread(
        target=lambda: runs.append(run_probe(sandbox, probes, "escape", marker, "sleep", limits=limits, cancel=cancel))
    )
    thread.start()
    try:
        # bwrap's monitor, the program (the sandbox's pid 1) and its grandchild
        wait_for(lambda: len(leftovers(marker)) >= 3, 5.0, "the probe's processes")
        pids = [int(line.split()[1]) for line in leftovers(marker)]
        assert {host_uid(pid) for pid in pids} == {NOBODY_UID}  # as the host sees them, not just inside
    finally:
        cancelled_at = time.monotonic()
        cancel.set()
        thread.join(10.0)
    assert time.monotonic() - cancelled_at < 0.5
    (run,) = runs
    assert run.cancelled and not run.timed_out
    assert run.describe().startswith("cancelled after")
    assert leftovers(marker) == []


# -- pipes and the result channel --------------------------------------------------------------------------------


def test_an_output_flood_is_truncated_without_blocking_the_program(sandbox: Sandbox, probes: Path) -> None:
    run = run_probe(sandbox, probes, "flood", "32", limits=replace(LIMITS, output_bytes=1000))
    assert run.ok, run.describe()
    assert (len(run.stdout), len(run.stderr)) == (1000, 1000)
    assert run.wall_s < 1.5


def test_the_channel_carries_the_programs_records_apart_from_stdout(sandbox: Sandbox, probes: Path) -> None:
    run = run_probe(sandbox, probes, "channel", channel=True)
    assert run.ok, run.describe()
    assert run.channel == b'{"gflops": 1.5}\n'
    assert run.stdout == b"noise on stdout\n"


def test_without_a_channel_there_is_no_channel_fd(sandbox: Sandbox, probes: Path) -> None:
    run = run_probe(sandbox, probes, "channel")
    assert report(run)["channel"] == "absent"
    assert run.channel == b""


# -- the real workload: gcc and an OpenMP program that forks -----------------------------------------------------


def test_gcc_builds_an_openmp_program_from_a_read_only_source_into_a_host_dir(sandbox: Sandbox) -> None:
    with sandbox.host_dir("hpcrl-test-source-") as source, sandbox.host_dir("hpcrl-test-build-") as build:
        shutil.copy(PROBE_SOURCES / "omp_fork.c", source / "omp_fork.c")
        os.chown(source, 0, 0)
        source.chmod(0o755)
        mounts = [Mount(source, "/tmp/work/src"), Mount(build, "/tmp/work/out", writable=True)]
        compile_run = sandbox.run(
            ["gcc", "-O3", "-march=native", "-fopenmp", "-c", "src/omp_fork.c", "-o", "out/omp_fork.o"],
            limits=COMPILER_LIMITS,
            mounts=mounts,
        )
        assert compile_run.ok, compile_run.describe() + compile_run.stderr.decode()
        link_run = sandbox.run(
            ["gcc", "-fopenmp", "out/omp_fork.o", "-o", "out/omp_fork"], limits=COMPILER_LIMITS, mounts=mounts
        )
        assert link_run.ok, link_run.describe() + link_run.stderr.decode()
        assert (build / "omp_fork").is_file() and (build / "omp_fork").stat().st_uid == NOBODY_UID
        run = sandbox.run(["out/omp_fork"], limits=LIMITS, mounts=[Mount(build, "/tmp/work/out")])
        assert run.ok, run.describe() + run.stderr.decode()
        assert run.stdout.startswith(b"ok threads=")


def test_an_openmp_program_that_forks_and_talks_over_a_pipe_runs(sandbox: Sandbox, probes: Path) -> None:
    run = run_probe(sandbox, probes, "omp_fork", env={"OMP_NUM_THREADS": "2"})
    assert run.ok, run.describe() + run.stderr.decode()
    assert run.stdout == b"ok threads=2\n"


# -- outcomes and our own errors ---------------------------------------------------------------------------------


def test_a_program_killed_by_a_signal_reports_the_signal(sandbox: Sandbox) -> None:
    # A child of pid 1: signals that pid 1 sends itself are dropped (it has no handler).
    run = sandbox.run(["sh", "-c", "sh -c 'kill -SEGV $$'; exit $?"], limits=LIMITS)
    assert (run.exit_code, run.signal) == (None, signal.SIGSEGV)
    assert not run.ok
    assert run.describe() == "killed by SIGSEGV"


def test_an_exit_status_is_reported_as_is(sandbox: Sandbox) -> None:
    run = sandbox.run(["sh", "-c", "echo out; echo err >&2; exit 3"], limits=LIMITS)
    assert (run.exit_code, run.signal, run.stdout, run.stderr) == (3, None, b"out\n", b"err\n")
    assert run.describe() == "exit 3"


def test_a_missing_program_is_our_error(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="execvp"):
        sandbox.run(["/tmp/work/no-such-program"], limits=LIMITS)


def test_a_mount_source_the_sandbox_uid_cannot_reach_is_our_error(sandbox: Sandbox, tmp_path: Path) -> None:
    hidden = tmp_path / "input.txt"  # pytest's tmp_path lies under a root-only directory
    hidden.write_text("data")
    with pytest.raises(SandboxError, match="source path"):
        sandbox.run(["true"], limits=LIMITS, mounts=[Mount(hidden, "/tmp/work/input.txt")])


NOT_ROOT_SCRIPT = """
import json, sys
from pathlib import Path
from bencher.sandbox import Limits, Mount, Sandbox
marker, escape = sys.argv[1], Path(sys.argv[2])
sandbox = Sandbox()
limits = Limits(wall_s=1.0, cpu_s=5, address_space_bytes=512 << 20, processes=4096, file_size_bytes=1 << 20,
                open_files=64, tmpfs_bytes=1 << 20)
run = sandbox.run(["sh", "-c", "id -u; echo x > /tmp/work/f && echo wrote; cat /etc/shadow"], limits=limits)
slow = sandbox.run(["./escape", marker, "sleep"], limits=limits, mounts=[Mount(escape, "/tmp/work/escape")])
print(json.dumps({"uid": sandbox.uid, "stdout": run.stdout.decode(), "ok": run.ok, "slow": slow.describe()}))
"""


def test_without_root_the_sandbox_runs_as_our_own_uid(probes: Path) -> None:
    """The weaker mode (no uid drop) still isolates, limits and cleans up. Needs a Python the nobody user can run."""
    site_packages = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    as_nobody = ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", "--clear-groups"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{Path(__file__).parent.parent}:{site_packages}"}
    for python in (sys.executable, "/usr/bin/python3"):
        check = [*as_nobody, python, "-c", "import sys, pyseccomp; assert sys.version_info >= (3, 11)"]
        if subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0:
            break
    else:
        pytest.skip("no Python 3.11+ that the nobody user can run")
    marker = new_marker()
    done = subprocess.run(
        [*as_nobody, python, "-B", "-c", NOT_ROOT_SCRIPT, marker, str(probes / "escape")],
        env=env,
        capture_output=True,
        timeout=30,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["uid"] is None
    assert result["stdout"] == f"{NOBODY_UID}\nwrote\n"
    assert not result["ok"]  # /etc/shadow stays unreadable: host permissions apply to our own uid
    assert result["slow"].startswith("wall-clock limit exceeded")
    assert leftovers(marker) == []


def test_running_programs_as_root_is_refused() -> None:
    with pytest.raises(SandboxError, match="uid 0"):
        Sandbox(uid=0)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="wall_s"):
        replace(LIMITS, wall_s=0)


def test_describe_names_what_happened() -> None:
    base = SandboxRun(None, None, False, False, 2.04, b"", b"", b"", 0.0)
    assert replace(base, exit_code=0).describe() == "exit 0"
    assert replace(base, signal=signal.SIGXCPU).describe() == "killed by SIGXCPU (CPU time limit exceeded)"
    assert replace(base, timed_out=True).describe() == "wall-clock limit exceeded after 2.0 s"
    assert replace(base, cancelled=True).describe() == "cancelled after 2.0 s"
    assert replace(base, exit_code=0).ok and not replace(base, exit_code=0, timed_out=True).ok
