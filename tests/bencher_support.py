"""Helpers shared by the bencher tests: a fast test configuration and the leak checks."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from bencher.config import BencherConfig
from tests.conftest import skip_unless_required
from tests.proc_support import alive, cmdline, descends_from, parent, pids, uid

SANDBOX_UID = 65534
SANDBOX_TEST_MARKS = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox tests check the uid drop, which needs root"),
    skip_unless_required("needs bubblewrap: apt-get install bubblewrap" if shutil.which("bwrap") is None else ""),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the probes"),
]
"""What the sandbox tests need: root (for the uid drop), bubblewrap and gcc."""
CORPUS = Path(__file__).parent / "bencher_corpus"
LADDER = Path(__file__).parent / "bencher_ladder"


def fast_config(cache_dir: Path, **overrides: object) -> BencherConfig:
    """Production checks with short measurement budgets, so the suite stays fast."""
    settings: dict[str, object] = dict(
        cache_dir=str(cache_dir),
        result_cache=False,
        min_reps=2,
        max_reps=10,
        max_measure_s=0.2,
        call_timeout_max_s=1.5,
        compile_timeout_s=10.0,
        run_memory_bytes=1 << 30,
        calibration_interval_s=0.0,
    )
    settings.update(overrides)
    return BencherConfig(**settings)  # type: ignore[arg-type]


def expectations(path: Path) -> tuple[set[str], str]:
    """The verdicts a corpus file says it must get (`expect: a|b`) and a detail substring, if any."""
    header = path.read_text().split("*/", 1)[0]
    verdicts = re.search(r"expect:\s*([\w|]+)", header)
    assert verdicts, f"{path.name} has no `expect:` line"
    detail = re.search(r"detail:\s*(.+)", header)
    return set(verdicts.group(1).split("|")), detail.group(1).strip() if detail else ""


def sandbox_processes(ancestor: int | None = None) -> list[str]:
    """Processes running as the sandbox uid (a candidate, a compiler, bwrap) that descend from
    `ancestor` (default: this process, which the sandbox makes their subreaper). Other test runs
    on the same machine are not counted."""
    ancestor = os.getpid() if ancestor is None else ancestor
    return [f"{pid}: {cmdline(pid)}" for pid in pids() if uid(pid) == SANDBOX_UID and descends_from(pid, ancestor)]


def temp_dirs() -> set[str]:
    """The bencher's host temp dirs (builds and runs) that exist now: compare before and after."""
    return {p.name for p in Path(tempfile.gettempdir()).glob("hpcrl-*-*") if p.is_dir() and _ours(p)}


def _ours(path: Path) -> bool:
    try:
        return path.stat().st_uid in (SANDBOX_UID, os.getuid())
    except OSError:
        return False


def reap_orphaned_sandbox_zombies() -> None:
    """Reap the sandbox-uid zombies reparented to this process: once an in-process Sandbox has made it a
    subreaper, a killed bencher's sandbox ends here, and nothing else waits for it. Only those pids: a
    wait for any child would steal the exit status of a subprocess a test still waits for."""
    for pid in pids():
        if uid(pid) == SANDBOX_UID and not alive(pid) and parent(pid) == os.getpid():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
