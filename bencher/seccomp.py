"""The sandbox's seccomp filter: what a sandboxed program (the compiler, the monitor and its candidate) may not
ask the kernel for. bencher/sandbox.py says why each layer of the sandbox exists; this is the one behind the
namespaces, the uid and the rlimits."""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

log = logging.getLogger(__name__)


class SeccompUnavailable(RuntimeError):
    """libseccomp's Python binding is missing: the sandbox cannot be built (the message names the fix)."""


DENIED_SYSCALLS: tuple[str, ...] = (
    # Networking: the network namespace already isolates; socketpair stays allowed (it only talks to itself).
    "socket",
    # Other processes' memory and execution (the harness and its timer live in the same sandbox).
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    # New namespaces and mounts (clone with namespace flags and clone3 are handled in seccomp_filter).
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # Kernel interfaces with a record of privilege escalations, useless to a numerical program.
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "personality",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    # Memory that no process's RLIMIT_AS is charged for: a memfd holds written data without a mapping, SysV
    # segments and message queues outlive their mappings (POSIX queues too, through mq_open).
    "memfd_create", "memfd_secret", "shmget", "msgget", "mq_open",
)  # fmt: skip
"""Syscalls refused with EPERM. Everything else is allowed: a deny-list, because gcc, ld, libgomp and the harness
need a broad and version-dependent set of syscalls (fork, pipes, threads, mmap)."""

INIT_PID = 1
"""The program's pid inside its PID namespace (bwrap --as-pid-1): the benchmark monitor, the compiler driver."""

PID_1_GUARDED_ARGS: tuple[tuple[str, tuple[int, ...]], ...] = (
    # Signals: the kernel already drops every signal sent to pid 1 from inside its namespace unless pid 1 handles
    # it (SIGKILL and SIGSTOP included); refusing makes the attempt visible and does not rely on handlers.
    ("kill", (0,)), ("tkill", (0,)), ("tgkill", (0, 1)), ("rt_sigqueueinfo", (0,)), ("rt_tgsigqueueinfo", (0, 1)),
    ("pidfd_open", (0,)),
    # Scheduling: same-uid processes may re-pin, renice and reschedule each other without any privilege.
    ("sched_setaffinity", (0,)), ("sched_setscheduler", (0,)), ("sched_setparam", (0,)), ("sched_setattr", (0,)),
    ("setpriority", (1,)), ("ioprio_set", (1,)),
    # Its limits and its memory's placement.
    ("prlimit64", (0,)), ("migrate_pages", (0,)), ("move_pages", (0,)),
)  # fmt: skip
"""Syscalls refused with EPERM when the named argument is pid 1, the program itself, which processes inside the
sandbox may then not signal, re-pin, renice, SCHED_IDLE or re-limit. pid 1 names itself 0 for these calls."""

GROUP_TARGETS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("setpriority", (1, 2)),  # PRIO_PGRP, PRIO_USER: pid 1's process group and uid include it
    ("ioprio_set", (2, 3)),  # IOPRIO_WHO_PGRP, IOPRIO_WHO_USER
)
"""setpriority and ioprio_set may also name a process group or a uid (first argument): refused outright."""

INT_MASK = 0xFFFF_FFFF
"""pid and `which` arguments are C ints: the kernel ignores the upper 32 bits, so the filter must too."""

CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


def seccomp_filter() -> bytes:
    """The compiled BPF program, built once per Sandbox: default allow; EPERM for DENIED_SYSCALLS, for the calls of
    PID_1_GUARDED_ARGS that name pid 1, and for setpriority/ioprio_set on a process group or uid."""
    try:
        import pyseccomp  # type: ignore[import-untyped]
    except ImportError as exc:
        raise SeccompUnavailable(
            "pyseccomp is not installed: pip install pyseccomp (and apt-get install libseccomp2)"
        ) from exc
    refuse = pyseccomp.ERRNO(errno.EPERM)

    def int_argument(index: int, value: int) -> Any:
        return pyseccomp.Arg(index, pyseccomp.MASKED_EQ, INT_MASK, value)

    def known(name: str) -> bool:
        if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) >= 0:
            return True
        log.warning("seccomp_unknown_syscall name=%s", name)  # an old libseccomp; the kernel may lack it too
        return False

    program = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    for name in filter(known, DENIED_SYSCALLS):
        program.add_rule(refuse, name)
    for name, indices in PID_1_GUARDED_ARGS:
        for index in indices if known(name) else ():
            program.add_rule(refuse, name, int_argument(index, INIT_PID))
    for name, whiches in GROUP_TARGETS:
        for which in whiches:
            program.add_rule(refuse, name, int_argument(0, which))
    # clone3 passes its flags in memory seccomp cannot read: ENOSYS makes glibc fall back to clone, whose flags
    # we can check.
    program.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    for flag in CLONE_NAMESPACE_FLAGS:
        program.add_rule(pyseccomp.ERRNO(errno.EPERM), "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    fd = os.memfd_create("hpcrl-seccomp")
    try:
        with os.fdopen(os.dup(fd), "rb") as exported:
            program.export_bpf(exported)
        return os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)
