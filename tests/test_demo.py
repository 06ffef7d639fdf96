"""The README's main command runs the real system end to end and leaves a summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_demo_benchmarks_every_candidate_with_its_expected_verdict_and_stops_every_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "demo", "--run-dir", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["submitted"] == summary["completed"] == 8
    assert summary["exit_codes"] == {"bencher": 0, "bus": 0}
    assert summary["as_expected"] and summary["calibration_gflops"] > 0
    assert summary["counts"] == {"ok": 5, "wrong_answer": 1, "compile_error": 1, "rejected": 1}
    candidates = {row["name"]: row for row in summary["candidates"]}
    assert {name: row["verdict"] for name, row in candidates.items()} == {
        "naive": "ok",
        "ikj": "ok",
        "tiled": "ok",
        "openmp": "ok",
        "tiled-again": "ok",
        "wrong": "wrong_answer",
        "broken": "compile_error",
        "cheater": "rejected",
    }
    assert candidates["tiled-again"]["cached"] and not candidates["tiled"]["cached"]
    assert candidates["tiled-again"]["gflops_median"] == candidates["tiled"]["gflops_median"]
    assert all(row["gflops_median"] > 0 for row in candidates.values() if row["verdict"] == "ok")
    assert "clock_gettime" in candidates["cheater"]["detail"]
    naive = candidates["naive"]["gflops_median"]
    assert naive < candidates["tiled"]["gflops_median"] and naive < candidates["openmp"]["gflops_median"]
    assert summary["ranking"][-1] == "naive" and "tiled-again" not in summary["ranking"]
    assert "8/8 results" in done.stdout and "every verdict as expected" in done.stdout
    assert (run_dir / "journal.sqlite").exists() and (run_dir / "bencher.log").exists()
