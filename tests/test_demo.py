"""The README's main command runs end to end and leaves a summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_demo_runs_candidates_through_the_bus_and_stops_every_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "demo", "--run-dir", str(run_dir), "--candidates", "5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["submitted"] == summary["completed"] == 5
    assert summary["exit_codes"] == [0, 0]
    assert "5/5 results back" in done.stdout
    assert (run_dir / "journal.sqlite").exists() and (run_dir / "bus.log").exists()
