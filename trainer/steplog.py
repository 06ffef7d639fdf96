"""The trainer's step log, `train.jsonl`: one JSON record per step, appended and flushed as each step ends.

A line is a record only once its newline is written. A run killed mid-write (SIGKILL, a lost node) leaves
a torn last line, and a reader of a live run can see a line half-written (the kernel copies a write that
crosses a page boundary a page at a time). Every reader here skips an unterminated last line; the
trainer's resume also drops it, so the redone step is logged once, whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

LOG_FILE = "train.jsonl"


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """The complete step records of a run, in step order (a missing log is an empty run)."""
    path = run_dir / LOG_FILE
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def open_resumed_at(run_dir: Path, step: int) -> TextIO:
    """The step log, open for appending, keeping only the complete records of steps up to `step` (the
    checkpoint's): a step logged by a run killed before its checkpoint is redone, and must appear once."""
    path = run_dir / LOG_FILE
    kept = [record for record in read_log(run_dir) if record["step"] <= step]
    path.write_text("".join(json.dumps(record) + "\n" for record in kept))
    return path.open("a")


def append(log: TextIO, record: dict[str, Any]) -> None:
    """One step's record, flushed: a reader (the demo, `hpcrl train-report`) sees it at once."""
    log.write(json.dumps(record) + "\n")
    log.flush()
