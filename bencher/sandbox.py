"""The sandbox: the one place that runs untrusted programs (the compiler on untrusted source, and compiled candidates).

Every run is `prlimit <rlimits> -- bwrap <namespaces, mounts, seccomp> -- argv`, started as an unprivileged uid in a
new session, read concurrently on stdout, stderr and an optional result channel, and SIGKILLed at a wall-clock
deadline. When `Sandbox.run` returns, no process of the run is left and no host file of it remains.

Why each layer exists (the RL policy that writes the programs is rewarded for speed and will try anything):

- **uid drop.** bwrap run by root with `--unshare-user` maps the sandbox user to host root: the "nobody" inside owns
  every root-owned file and read /etc/shadow through a read-only bind. So we become a real unprivileged uid
  (65534) *before* bwrap: host file permissions apply, and RLIMIT_NPROC counts (the kernel exempts root from it).
- **namespaces** (`--unshare-all`). A private network namespace with an empty loopback: no TCP/UDP to anything,
  not even our own 127.0.0.1 services. A private PID namespace: the program sees and signals only its own
  processes, and when the namespace's pid 1 dies the kernel kills every process in it, so nothing outlives a run.
  `--disable-userns` forbids nested user namespaces, the usual door to kernel bugs reachable without privilege.
- **the program is pid 1** (`--as-pid-1`). The benchmark monitor forks the candidate; as the namespace's init, the
  monitor gets no signal from inside the namespace that it does not handle, SIGKILL and SIGSTOP included, so its
  child cannot kill, stop or time it out to turn a wrong answer into an uncharged infra_error. There is no bwrap
  init process either: it was dumpable, so the candidate (same uid) could write into its memory through
  /proc/1/mem and forge the exit status.
- **only the system paths, read-only** (`SYSTEM_PATHS`). A fresh root holds /usr, the /bin, /sbin and /lib* links,
  the loader's files of /etc, /etc/alternatives, /proc, a read-only /dev and the CPU and NUMA topology of /sys;
  nothing else of the host: no /home, /root, /var, /srv, /work, /run (host daemons' unix sockets: a network
  namespace does not cover filesystem sockets, and a read-only bind does not stop `connect()`), no /etc/passwd, no
  cache or repository. Any world-readable file elsewhere on the node would otherwise be readable. The root, /dev
  (`/dev/shm`) and the mount points bwrap creates are tmpfs bounded only by RAM, so all of them are read-only.
- **private tmpfs `/tmp`.** The work dir `/tmp/work` is size-bounded and vanishes with the run; only explicit
  `Mount`s reach the host.
- **seccomp** (`bencher/seccomp.py`: `DENIED_SYSCALLS`, `PID_1_GUARDED_ARGS`). Defence in depth behind the
  namespaces: no sockets at all,
  no ptrace or cross-process memory access (the harness's memory holds the timer), no new namespaces or mounts, and
  none of the kernel interfaces with a long record of privilege escalations (bpf, perf, userfaultfd, io_uring,
  keyrings). memfd_create, SysV shared memory and message queues and POSIX message queues are refused because their
  memory is charged to no process's RLIMIT_AS (a memfd written, never mapped, held 1.9 GiB beyond a 4 GiB limit).
  Signals, affinity, nice, scheduling policy, I/O priority, rlimits and page migration aimed at pid 1 (or at its
  process group or uid) are refused: a process may change these for any process of its uid, and a monitor re-pinned,
  reniced or made SCHED_IDLE by its candidate measures it wrongly. The pid is compared as the C int the kernel
  reads, so bits above 32 do not get past. Calls through another ABI (x32, i386 `int 0x80`) are killed (SIGSYS).
- **rlimits** (`prlimit`, not `preexec_fn`, which is unsafe in our multi-threaded daemon). RLIMIT_AS and RLIMIT_CPU
  bound each process; RLIMIT_NPROC bounds fork bombs (per uid, host-wide); RLIMIT_FSIZE and RLIMIT_NOFILE bound
  files; no core dumps; RLIMIT_RTPRIO and RLIMIT_NICE 0: no real-time policy, no raised priority.
- **wall clock.** The only bound on a program that sleeps or blocks. We SIGKILL bwrap's process group and the
  sandbox's pid 1; `--die-with-parent` and the PID namespace take every other process down with them.

Known weaknesses:

- Memory is bounded per process, not per run: the worst case is `processes * address_space_bytes` plus the tmpfs.
  A cgroup per run would bound the tree. Pipe and socketpair buffers also hold data outside RLIMIT_AS, up to about
  1 MiB per pipe (`/proc/sys/fs/pipe-max-size`, and 64 MiB per uid by `pipe-user-pages-soft`): bounded by
  `open_files`, small next to the address space.
- RLIMIT_NPROC counts every process of the uid on the host, so concurrent runs under one uid share it.
- The exit status comes through bwrap, which reports "killed by signal N" as exit code 128+N. We read 129..192 as a
  signal; a program can fake one with `exit(128 + N)`.
- All processes of a run share one uid: without Yama they can open each other's `/proc/<pid>/fd/*` and
  `/proc/<pid>/mem` (seccomp cannot see `open`). A harness that forks its candidate must make itself non-dumpable
  (`prctl(PR_SET_DUMPABLE, 0)`) before it forks, or the candidate can write on the harness's result channel.
- pid 1 gets no signal from inside its namespace without a handler, its own included: not RLIMIT_CPU's SIGXCPU
  (it runs on to the hard limit, one second later, and dies of SIGKILL), not SIGXFSZ or SIGPIPE (its write fails
  with EFBIG or EPIPE), not raise(); abort() ends in SIGSEGV. Its children get all of these as usual: untrusted work
  belongs in a child (the monitor forks the candidate; a build runs the compilers under `sh -c`). The converse: a
  signal pid 1 handles does reach it from inside (`kill(0, sig)` to its process group, `pidfd_send_signal` on an
  open /proc/1), so the monitor must install no handler (SIG_IGN is fine).
- The guards name pid 1 by number, so pid 1 must name itself 0 (`sched_setaffinity(0, ...)`, never its pid or tid)
  and code that pins the calling thread by its tid (libgomp's start-up, `pthread_setaffinity_np`) fails in pid 1's
  main thread: the candidate's runtime must start in the child. Other processes and threads of a run (the
  candidate's threads, a second helper of the monitor) are not guarded from each other. Orphans of the candidate are
  reparented to pid 1, which need not reap them (RLIMIT_NPROC bounds them).
- A compiler or tool outside SYSTEM_PATHS (/opt, a home directory) is not visible; bind it with a `Mount`.
- Not root (`uid` None): no uid drop. The program runs as our own uid, so every file under SYSTEM_PATHS that we can
  read is readable, and RLIMIT_NPROC is shared with all our other processes. The namespaces, seccomp and the other
  rlimits still apply.
- `Sandbox()` makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): when we kill bwrap's monitor, the
  program (the sandbox's pid 1) comes to us, and only the process that reaps it learns the CPU time of the whole
  tree. A side effect: other orphaned descendants of this process are reparented to it and must be reaped by it.
- `cpu_s` counts the program and the processes it reaped. Processes the kernel kills when the PID namespace ends
  (everything, after a wall-clock kill or cancel; a daemonised leftover after a normal exit) are reaped
  automatically and their CPU time is lost: after a timeout `cpu_s` is a lower bound.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import posixpath
import re
import select
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bencher.seccomp import DENIED_SYSCALLS, SeccompUnavailable, seccomp_filter

log = logging.getLogger(__name__)

NOBODY_UID = 65534
"""The uid (and gid) programs run as when we are root and no other uid is given."""
WORK_DIR = "/tmp/work"
"""The program's cwd inside the sandbox: on the private tmpfs mounted at /tmp."""
DEFAULT_PATH = "/usr/bin:/bin"
CHANNEL_FD_ENV = "HPCRL_CHANNEL_FD"
"""Environment variable naming the fd of the result channel's write end inside the sandbox."""
TRUSTED_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
"""Where we look for bwrap and prlimit: never the caller's PATH."""

READ_CHUNK_BYTES = 64 * 1024
CANCEL_POLL_S = 0.05
"""How often a run with a cancel event checks it: the bound on how late a cancel takes effect."""
SETUP_GRACE_S = 5.0
"""How long we wait for bwrap to report its child's pid before we kill anyway (bwrap's setup takes milliseconds)."""
DRAIN_GRACE_S = 5.0
"""How long after the program ended (or was killed) we wait for its pipes to close and its pid 1 to go."""

SYSTEM_PATHS: tuple[str, ...] = (
    "/usr",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
    "/sys/devices/system/cpu", "/sys/devices/system/node",
)  # fmt: skip
"""The host paths bound read-only into every sandbox (if they exist): the toolchain and libraries, the dynamic
loader's cache, Debian's alternatives (libblas, libopenblas point through them) and the CPU and NUMA topology that
glibc, libgomp and OpenBLAS read. /bin, /sbin and /lib* follow (as the symlinks into /usr they are on a merged-/usr
system). Nothing else of the host is visible."""
_TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

_PR_SET_CHILD_SUBREAPER = 36


class SandboxError(RuntimeError):
    """Our fault (bwrap missing, cannot create dirs...): callers turn it into an infra_error verdict."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. Every limit applies to each process of the run, except where noted."""

    wall_s: float
    """Wall-clock limit; on expiry the whole process tree is SIGKILLed."""
    cpu_s: int
    """RLIMIT_CPU in seconds, all threads of a process together: SIGXCPU at cpu_s, SIGKILL one second later."""
    address_space_bytes: int
    """RLIMIT_AS. bwrap itself runs under it too and needs about 16 MiB (256 MiB is comfortable)."""
    processes: int
    """RLIMIT_NPROC: processes and threads of the sandbox uid, host-wide (see the module's known weaknesses)."""
    file_size_bytes: int
    """RLIMIT_FSIZE: the largest file a process may write (SIGXFSZ beyond)."""
    open_files: int
    """RLIMIT_NOFILE."""
    tmpfs_bytes: int
    """Size of the private tmpfs mounted at /tmp (the work dir /tmp/work is inside it): ENOSPC beyond."""
    output_bytes: int = 64 * 1024
    """stdout, stderr and the channel are each captured and truncated to this (the rest is read and dropped)."""

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "address_space_bytes", "processes", "file_size_bytes", "open_files"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)!r}")
        if self.tmpfs_bytes < 4096:
            raise ValueError(f"Limits.tmpfs_bytes must be at least one page (4096), got {self.tmpfs_bytes}")
        if self.output_bytes < 0:
            raise ValueError(f"Limits.output_bytes must be >= 0, got {self.output_bytes}")


@dataclass(frozen=True)
class Mount:
    """A host file or directory bound into the sandbox (after the /tmp tmpfs, so it may land under /tmp/work).

    The sandbox uid must be able to reach `source` (every parent directory searchable by it): put inputs and
    outputs in a `Sandbox.host_dir`."""

    source: Path
    """Host path (file or dir)."""
    target: str
    """Absolute path inside the sandbox, normally under /tmp/work."""
    writable: bool = False


@dataclass(frozen=True)
class SandboxRun:
    """What happened to one run. A program's failure is data here; only our own failures raise SandboxError."""

    exit_code: int | None
    """The program's exit status when it exited normally, else None."""
    signal: int | None
    """The signal that killed it (None if it exited, or if we killed it on timeout/cancel)."""
    timed_out: bool
    """We killed it at limits.wall_s."""
    cancelled: bool
    """We killed it because `cancel` was set."""
    wall_s: float
    """Parent-measured wall time (monotonic) from spawn to exit."""
    stdout: bytes
    """Truncated to limits.output_bytes."""
    stderr: bytes
    """Truncated to limits.output_bytes."""
    channel: bytes
    """Everything the program wrote on the trusted result channel (truncated to limits.output_bytes)."""
    cpu_s: float
    """User + system CPU seconds of the whole process tree."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled

    def describe(self) -> str:
        """Short human text: "exit 3", "killed by SIGSEGV", "wall-clock limit exceeded after 2.0 s", ..."""
        if self.cancelled:
            return f"cancelled after {self.wall_s:.1f} s"
        if self.timed_out:
            return f"wall-clock limit exceeded after {self.wall_s:.1f} s"
        if self.signal is not None:
            return f"killed by {_signal_name(self.signal)}{_SIGNAL_HINTS.get(self.signal, '')}"
        return f"exit {self.exit_code}"


_SIGNAL_HINTS: dict[int, str] = {
    signal.SIGXCPU: " (CPU time limit exceeded)",
    signal.SIGXFSZ: " (file size limit exceeded)",
}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Sandbox:
    """Runs untrusted programs under bwrap as an unprivileged uid. Thread-safe: runs may go on concurrently."""

    def __init__(self, uid: int | None = None, seccomp: bool = True) -> None:
        """uid: the unprivileged uid (and gid) programs run as. Default: 65534 (nobody) when we are root, else
        None meaning 'our own uid' (a plain user cannot switch; bwrap's user namespace still isolates). Raises
        SandboxError with the fix (e.g. 'apt-get install bubblewrap') if bwrap is missing or does not work."""
        euid = os.geteuid()
        if uid is None:
            uid = NOBODY_UID if euid == 0 else None
        elif uid == 0:
            raise SandboxError("refusing to run sandboxed programs as uid 0: pass an unprivileged uid such as 65534")
        elif euid != 0:
            if uid != euid:
                raise SandboxError(f"only root can run programs as uid {uid}; we are uid {euid}: pass uid=None")
            uid = None
        self.uid: int | None = uid
        """The uid programs run as; None: our own uid (no switch)."""
        self._bwrap = _find_tool("bwrap", "apt-get install bubblewrap")
        self._prlimit = _find_tool("prlimit", "apt-get install util-linux")
        try:
            self._seccomp_bpf = seccomp_filter() if seccomp else None
        except SeccompUnavailable as error:
            raise SandboxError(str(error)) from error
        self._system_layout = _system_layout()
        _become_child_subreaper()
        _remove_orphaned_host_dirs()
        self._check_works()
        log.info(
            "sandbox_ready uid=%s seccomp=%s bwrap=%s denied_syscalls=%d",
            self.uid if self.uid is not None else f"own({euid})",
            seccomp,
            self._bwrap,
            len(DENIED_SYSCALLS) if seccomp else 0,
        )

    def run(
        self,
        argv: list[str],
        *,
        limits: Limits,
        mounts: Sequence[Mount] = (),
        env: Mapping[str, str] | None = None,
        channel: bool = False,
        cancel: threading.Event | None = None,
    ) -> SandboxRun:
        """Run argv inside the sandbox with cwd /tmp/work. env replaces the environment completely (PATH defaults
        to /usr/bin:/bin, HOME=/tmp/work, TMPDIR=/tmp/work). If channel: a pipe's write end is open in the program
        and its fd number is in env var HPCRL_CHANNEL_FD (the harness writes its trusted records there; stdout is
        never parsed).

        A program's failure (exit status, signal, limit) is returned; SandboxError means we could not run it."""
        if not argv:
            raise ValueError("argv must name a program")
        for mount in mounts:
            _check_mount(mount)
        with _Pipes(channel=channel) as pipes:
            environment = {"PATH": DEFAULT_PATH, "HOME": WORK_DIR, "TMPDIR": WORK_DIR, **(env or {})}
            if channel:
                environment[CHANNEL_FD_ENV] = str(pipes.channel_w)
            seccomp_fd = pipes.seccomp(self._seccomp_bpf) if self._seccomp_bpf is not None else None
            command = self._command(argv, limits, mounts, status_fd=pipes.status_w, seccomp_fd=seccomp_fd)
            return self._supervise(command, argv, limits, environment, pipes, cancel)

    @contextmanager
    def host_dir(self, prefix: str) -> Iterator[Path]:
        """A fresh host temp dir the sandbox uid may write (chown to uid, mode 0700), removed with everything inside
        on exit, even if the sandbox uid created files there. Used to receive the compiler's outputs.

        Its contents are untrusted: a program may leave symlinks to anywhere or FIFOs there. Read outputs with
        O_NOFOLLOW (or check `is_symlink()`/`is_file()` first) and bounded sizes."""
        # Our pid in the name: a later Sandbox removes dirs whose process died (kill -9) before cleaning up.
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
        try:
            if self.uid is not None:
                os.chown(path, self.uid, self.uid)
            path.chmod(0o700)
            _check_reachable(path, self.uid)
            yield path
        finally:
            _remove_tree(path)

    # -- internals -----------------------------------------------------------------------------------------------

    def _command(
        self, argv: list[str], limits: Limits, mounts: Sequence[Mount], *, status_fd: int, seccomp_fd: int | None
    ) -> list[str]:
        # The CPU soft limit sends SIGXCPU (a clear verdict); the hard one a second later is SIGKILL for a program
        # that catches SIGXCPU.
        rlimits = [
            f"--as={limits.address_space_bytes}",
            f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
            f"--nproc={limits.processes}",
            f"--fsize={limits.file_size_bytes}",
            f"--nofile={limits.open_files}",
            "--core=0",
            # Whatever the daemon may (LimitRTPRIO= in a unit): no real-time policy, whose threads would starve the
            # monitor and the node, and no lowering of nice values.
            "--rtprio=0",
            "--nice=0",
        ]
        # bwrap applies these in order on a fresh root tmpfs: the system paths, the /tmp tmpfs, then the mounts
        # inside it; the root itself goes read-only last (it is a tmpfs bounded only by RAM).
        sandbox = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            *self._system_layout,
            "--proc", "/proc",
            "--dev", "/dev", "--remount-ro", "/dev",
            "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp",
            "--dir", WORK_DIR,
        ]  # fmt: skip
        for mount in mounts:
            sandbox += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
        sandbox += ["--remount-ro", "/", "--chdir", WORK_DIR, "--json-status-fd", str(status_fd)]
        if seccomp_fd is not None:
            sandbox += ["--seccomp", str(seccomp_fd)]
        return [self._prlimit, *rlimits, "--", self._bwrap, *sandbox, "--", *argv]

    def _supervise(
        self,
        command: list[str],
        argv: list[str],
        limits: Limits,
        environment: dict[str, str],
        pipes: _Pipes,
        cancel: threading.Event | None,
    ) -> SandboxRun:
        """Spawn, read every pipe until the deadline, kill if needed, reap everything."""
        user: dict[str, Any] = {}
        if self.uid is not None:
            user = {"user": self.uid, "group": self.uid, "extra_groups": []}
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=pipes.stdout_w,
                stderr=pipes.stderr_w,
                pass_fds=pipes.passed(),
                env=environment,
                cwd="/",
                start_new_session=True,
                **user,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start {command[0]}: {exc}") from exc
        pipes.close_child_ends()
        watch = _Watch(process, pipes, limits.output_bytes)
        try:
            kill_reason = watch.pump(deadline=started + limits.wall_s, cancel=cancel)
        finally:
            usage = watch.reap()
        ended = watch.exited_at if watch.exited_at is not None else time.monotonic()
        wall_s = ended - started

        exit_code: int | None = None
        killed_by: int | None = None
        if kill_reason is None:
            if watch.exit_code is None:
                message = watch.output(pipes.stderr_r).decode(errors="replace").strip()
                raise SandboxError(
                    f"bwrap could not start {argv[0]!r} (exit status {process.returncode}): {message[-2000:]}"
                    f"{_START_HINT}"
                )
            exit_code, killed_by = _split_status(watch.exit_code)
        run = SandboxRun(
            exit_code=exit_code,
            signal=killed_by,
            timed_out=kill_reason == "timeout",
            cancelled=kill_reason == "cancel",
            wall_s=wall_s,
            stdout=bytes(watch.output(pipes.stdout_r)),
            stderr=bytes(watch.output(pipes.stderr_r)),
            channel=bytes(watch.output(pipes.channel_r)) if pipes.channel_r is not None else b"",
            cpu_s=usage,
        )
        log.debug(
            "sandbox_run program=%s outcome=%r wall_s=%.3f cpu_s=%.3f stdout_bytes=%d stderr_bytes=%d channel_bytes=%d",
            argv[0],
            run.describe(),
            run.wall_s,
            run.cpu_s,
            len(run.stdout),
            len(run.stderr),
            len(run.channel),
        )
        return run

    def _check_works(self) -> None:
        limits = Limits(
            wall_s=30.0,
            cpu_s=10,
            address_space_bytes=256 << 20,
            processes=4096,
            file_size_bytes=1 << 20,
            open_files=64,
            tmpfs_bytes=1 << 20,
        )
        try:
            run = self.run(["/bin/true"], limits=limits)
        except SandboxError as exc:
            raise SandboxError(f"bwrap does not work here as uid {self.uid}: {exc}") from exc
        if not run.ok:
            raise SandboxError(f"/bin/true failed in the sandbox ({run.describe()}): {run.stderr!r}{_START_HINT}")


_START_HINT = (
    ". If bwrap says it cannot create a namespace or write a uid map, unprivileged user namespaces are off: "
    "sysctl kernel.unprivileged_userns_clone=1 (Debian) or kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu). "
    "If it cannot find a mount source, the sandbox uid cannot reach it: use Sandbox.host_dir."
)


class _Pipes:
    """The fds of one run: ours are the read ends; the write ends go to the child and are closed here after spawn."""

    def __init__(self, *, channel: bool) -> None:
        self._fds: list[int] = []
        self.stdout_r, self.stdout_w = self._pipe()
        self.stderr_r, self.stderr_w = self._pipe()
        self.status_r, self.status_w = self._pipe()
        self.channel_r: int | None = None
        self.channel_w: int | None = None
        if channel:
            self.channel_r, self.channel_w = self._pipe()
        self.seccomp_r: int | None = None
        self._child_ends = [self.stdout_w, self.stderr_w, self.status_w]
        if self.channel_w is not None:
            self._child_ends.append(self.channel_w)

    def _pipe(self) -> tuple[int, int]:
        read_end, write_end = os.pipe()
        self._fds += [read_end, write_end]
        return read_end, write_end

    def seccomp(self, bpf: bytes) -> int:
        """A fresh fd with the compiled filter for bwrap's --seccomp (bwrap reads it to EOF and closes it)."""
        read_end, write_end = self._pipe()
        try:
            os.write(write_end, bpf)  # a few hundred bytes: far below the pipe's capacity
        finally:
            self._close(write_end)
        self.seccomp_r = read_end
        self._child_ends.append(read_end)
        return read_end

    def passed(self) -> tuple[int, ...]:
        """The fds the child inherits under their own numbers (stdout/stderr are dup'ed onto 1 and 2 by Popen)."""
        return tuple(fd for fd in (self.status_w, self.channel_w, self.seccomp_r) if fd is not None)

    def close_child_ends(self) -> None:
        for fd in self._child_ends:
            self._close(fd)
        self._child_ends = []

    def _close(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            os.close(fd)

    def __enter__(self) -> _Pipes:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in list(self._fds):
            self._close(fd)


class _Watch:
    """One running sandbox: reads its pipes, knows bwrap's status records, kills and reaps it."""

    def __init__(self, process: subprocess.Popen[bytes], pipes: _Pipes, output_bytes: int) -> None:
        self.process = process
        self.pipes = pipes
        self.output_bytes = output_bytes
        self._buffers: dict[int, bytearray] = {}
        self._status = bytearray()
        self.child_pid: int | None = None
        """Host pid of the sandbox's pid 1 (the program itself), from bwrap's status records."""
        self.pidfd: int | None = None
        self.exit_code: int | None = None
        """The program's exit status as bwrap reports it (128+N for signal N); None until it exited."""
        self.exited_at: float | None = None
        self.killed = False
        self._selector = selectors.DefaultSelector()
        for fd in (pipes.stdout_r, pipes.stderr_r, pipes.status_r, pipes.channel_r):
            if fd is not None:
                self._buffers[fd] = bytearray()
                self._selector.register(fd, selectors.EVENT_READ)

    def output(self, fd: int | None) -> bytearray:
        return self._buffers.get(fd, bytearray()) if fd is not None else bytearray()

    def pump(self, *, deadline: float, cancel: threading.Event | None) -> str | None:
        """Read until every pipe is closed. Returns why we killed the program ("timeout", "cancel") or None."""
        kill_reason: str | None = None
        kill_asked_at: float | None = None
        grace_until: float | None = None
        while self._selector.get_map():
            now = time.monotonic()
            if kill_reason is None and self.exit_code is None:
                if cancel is not None and cancel.is_set():
                    kill_reason, kill_asked_at = "cancel", now
                elif now >= deadline:
                    kill_reason, kill_asked_at = "timeout", now
            if kill_asked_at is not None and not self.killed:
                # Killing bwrap before it reported its child's pid can strand that child (it waits on bwrap
                # forever), so we give bwrap's setup a moment; it runs no untrusted code before the report.
                if self.child_pid is not None or self.status_closed or now >= kill_asked_at + SETUP_GRACE_S:
                    self.kill()
            if grace_until is None and (self.killed or self.exit_code is not None):
                grace_until = now + DRAIN_GRACE_S
            if grace_until is not None and now >= grace_until:
                log.error("sandbox_drain_timeout pid=%d open_fds=%d", self.process.pid, len(self._selector.get_map()))
                break
            timeout = (grace_until if grace_until is not None else deadline) - now
            if kill_asked_at is not None and not self.killed:
                timeout = min(timeout, 0.01)
            elif cancel is not None and grace_until is None:
                timeout = min(timeout, CANCEL_POLL_S)
            for key, _ in self._selector.select(max(timeout, 0.0)):
                self._read(int(key.fd))
        return kill_reason

    @property
    def status_closed(self) -> bool:
        return self.pipes.status_r not in self._selector.get_map()

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_CHUNK_BYTES)
        except BlockingIOError:
            return
        if not data:
            self._selector.unregister(fd)
            return
        if fd == self.pipes.status_r:
            self._status_records(data)
            return
        buffer = self._buffers[fd]
        room = self.output_bytes - len(buffer)
        if room > 0:
            buffer += data[:room]

    def _status_records(self, data: bytes) -> None:
        """bwrap's --json-status-fd: one JSON document per line, `child-pid` at start and `exit-code` at exit."""
        self._status += data
        while b"\n" in self._status:
            line, _, rest = bytes(self._status).partition(b"\n")
            self._status = bytearray(rest)
            if not line.strip():
                continue
            record = json.loads(line)
            if "child-pid" in record and self.child_pid is None:
                self.child_pid = int(record["child-pid"])
                try:
                    self.pidfd = os.pidfd_open(self.child_pid)
                except ProcessLookupError:
                    self.pidfd = None  # pid 1 already died (bwrap's setup failed); bwrap reaped it
            if "exit-code" in record:
                self.exit_code = int(record["exit-code"])
                self.exited_at = time.monotonic()

    def kill(self) -> None:
        """SIGKILL bwrap's monitor (its process group) and the sandbox's pid 1, which takes everything inside."""
        self.killed = True
        # bwrap first: once SIGKILL is queued it runs no more code, so it cannot reap pid 1 and pid 1 comes to
        # us (a subreaper) with the CPU time of everything it reaped.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone (not yet reaped, so the pgid cannot have been reused)
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone

    def reap(self) -> float:
        """Reap bwrap and the sandbox's pid 1; return the CPU seconds of the tree. Nothing of the run is left after."""
        try:
            if self._selector.get_map() and not self.killed:
                self.kill()  # we stopped reading early (our own error, or a drain timeout)
            _, status, usage = os.wait4(self.process.pid, 0)
            self.process.returncode = os.waitstatus_to_exitcode(status)  # Popen must never reap this pid again
            return usage.ru_utime + usage.ru_stime + self._reap_pid1()
        finally:
            self._selector.close()
            if self.pidfd is not None:
                os.close(self.pidfd)
                self.pidfd = None

    def _reap_pid1(self) -> float:
        """Wait until the sandbox's pid 1 has exited (the kernel kills and reaps the rest of its PID namespace before
        that), then reap it if it was reparented to us, for the CPU time of everything it reaped."""
        if self.pidfd is None:
            return 0.0
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        if not poller.poll(DRAIN_GRACE_S * 1000):
            # Cannot happen: its parent (bwrap) is gone and --die-with-parent sends it SIGKILL.
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            if not poller.poll(DRAIN_GRACE_S * 1000):
                raise SandboxError(f"sandbox pid 1 (host pid {self.child_pid}) survived SIGKILL")
        try:
            if os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
                return 0.0
        except ChildProcessError:
            return 0.0  # bwrap reaped it (it died before the program ended), or we are not a subreaper
        assert self.child_pid is not None
        # It is our zombie, so its pid cannot be reused before this wait4.
        _, _, usage = os.wait4(self.child_pid, 0)
        return usage.ru_utime + usage.ru_stime


def _split_status(code: int) -> tuple[int | None, int | None]:
    """bwrap's exit code -> (exit_code, signal): it reports "killed by signal N" as 128+N, like a shell."""
    if 128 < code < 128 + signal.NSIG:
        return None, code - 128
    return code, None


def _check_mount(mount: Mount) -> None:
    target = mount.target
    if not target.startswith("/") or posixpath.normpath(target) != target or target == "/":
        raise ValueError(f"Mount.target must be an absolute, normalised path below /, got {target!r}")
    if not os.path.lexists(mount.source):
        raise SandboxError(f"mount source {mount.source} does not exist")


def _check_reachable(path: Path, uid: int | None) -> None:
    """bwrap opens mount sources as the sandbox uid: every parent of a host_dir must be searchable by it."""
    if uid is None:
        return
    for parent in path.parents:
        info = parent.stat()
        if not info.st_mode & 0o001 and info.st_uid != uid:
            raise SandboxError(
                f"{parent} is not searchable by uid {uid}, so it cannot reach {path}: "
                "set TMPDIR to a world-searchable directory such as /tmp"
            )


_HOST_DIR_NAME = re.compile(r"hpcrl-[a-z]+-(\d+)-\w+")


def _remove_orphaned_host_dirs() -> None:
    """Remove host dirs (`<prefix><pid>-...` in the temp dir) left by a process that no longer exists."""
    for path in Path(tempfile.gettempdir()).glob("hpcrl-*-*-*"):
        match = _HOST_DIR_NAME.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink() and not Path(f"/proc/{match.group(1)}").exists():
            log.info("removing_orphaned_host_dir path=%s", path)
            with contextlib.suppress(SandboxError):
                _remove_tree(path)


def _remove_tree(path: Path) -> None:
    """rm -rf that also gets through directories the sandbox uid made unreadable (root needs no help)."""
    if os.geteuid() != 0:
        pending = [str(path)]
        while pending:  # a loop, not recursion: the program chose the depth
            directory = pending.pop()
            try:
                os.chmod(directory, 0o700)
                with os.scandir(directory) as entries:
                    pending += [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
            except OSError as exc:
                log.warning("host_dir_unlock_failed path=%s error=%r", directory, exc)
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise SandboxError(f"cannot remove host dir {path}: {exc}") from exc


def _find_tool(name: str, install: str) -> str:
    path = shutil.which(name, path=TRUSTED_PATH)
    if path is None:
        raise SandboxError(f"{name} not found in {TRUSTED_PATH}: {install}")
    return path


def _system_layout() -> list[str]:
    """bwrap arguments that show the program SYSTEM_PATHS (read-only) and the top-level links into /usr."""
    layout: list[str] = []
    for name in _TOP_LEVEL_LINKS:
        link = f"/{name}"
        if os.path.islink(link):
            layout += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            layout += ["--ro-bind", link, link]
    for path in SYSTEM_PATHS:
        if os.path.exists(path):
            layout += ["--ro-bind", path, path]
    return layout


def _become_child_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise SandboxError(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(code)}")
