"""Reading /proc in tests: which processes exist, what they run, as whom, and below which ancestor.

A process may exit between two reads: every reader here answers as if it had already gone ("", None,
False) rather than raise.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def cmdline(pid: int) -> str:
    """The command line, arguments joined by spaces ("" once the process is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def status(pid: int) -> str:
    """/proc/PID/status ("" once the process is gone)."""
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""


def _field(pid: int, name: str) -> str | None:
    """The first value of a status line (`Uid:` has four; the real uid comes first)."""
    match = re.search(rf"^{name}:\s+(\S+)", status(pid), re.MULTILINE)
    return match.group(1) if match else None


def parent(pid: int) -> int:
    return int(_field(pid, "PPid") or 0)


def uid(pid: int) -> int | None:
    value = _field(pid, "Uid")
    return int(value) if value is not None else None


def alive(pid: int) -> bool:
    """True unless the process is gone or a zombie."""
    state = _field(pid, "State")
    return state is not None and state != "Z"


def descendants(ancestor: int) -> list[int]:
    """Every live process below `ancestor` in the process tree."""
    children: dict[int, list[int]] = {}
    for pid in pids():
        children.setdefault(parent(pid), []).append(pid)
    found: list[int] = []
    todo = [ancestor]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return [pid for pid in found if alive(pid)]


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether `ancestor` is among `pid`'s parents (at most 64 generations up, init excluded)."""
    for _ in range(64):
        pid = parent(pid)
        if pid <= 1:
            return False
        if pid == ancestor:
            return True
    return False


def mentioning(text: str) -> list[str]:
    """Command lines of live processes other than this one that mention `text`."""
    return [cmdline(pid) for pid in pids_mentioning(text)]


def pids_mentioning(text: str) -> list[int]:
    return [pid for pid in pids() if pid != os.getpid() and text in cmdline(pid)]
