"""`hpcrl bench-demo` runs the benchmark side end to end (broker, bencher, archive) and leaves a summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

STAGE_1 = ["loop_order", "transpose"]


def test_bench_demo_benchmarks_archives_and_confirms_every_candidate_and_stops_every_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "bench-demo", "--run-dir", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["submitted"] == summary["completed"] == 8
    assert summary["exit_codes"] == {"archive": 0, "bencher": 0, "bus": 0}
    assert summary["as_expected"] and summary["calibration_gflops"] > 0
    assert summary["counts"] == {"ok": 5, "wrong_answer": 1, "compile_error": 1, "rejected": 1}
    candidates = {row["name"]: row for row in summary["candidates"]}

    # The bencher: every verdict, the duplicate from the result cache, the speed ladder.
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

    # The archive: the stage read from the bus, an archived event per candidate, its techniques and cell.
    assert summary["stage"] == summary["current_stage"] == 1 and summary["stage_techniques"] == STAGE_1
    assert all(row["status"] != "missing" for row in candidates.values())
    assert candidates["naive"]["techniques"] == [] and candidates["naive"]["cell"] == "dgemm/256/none"
    assert candidates["ikj"]["techniques"] == ["loop_order"] and candidates["ikj"]["cell"] == "dgemm/256/loop_order"
    assert {"tiling", "openmp"} <= set(candidates["openmp"]["techniques"])
    assert "tiling" in candidates["tiled"]["techniques"] and "openmp" not in candidates["tiled"]["techniques"]
    assert candidates["tiled-again"]["cell"] == candidates["tiled"]["cell"]
    assert candidates["broken"]["parse_error"] and candidates["broken"]["techniques"] == []
    outside = {name for name, row in candidates.items() if row["outside_stage"]}
    assert outside == {"tiled", "openmp", "tiled-again"}

    # Confirmation: an ok result that would lead when it arrives is measured again, past the result cache.
    # One bencher takes the candidates in order, so every confirmation comes after all of them.
    for name, row in candidates.items():
        if row["verdict"] == "ok":
            assert row["status"] == "awaiting_confirmation", name
            confirmation = row["confirmation"]
            assert confirmation["verdict"] == "ok" and not confirmation["cached"], name
            assert confirmation["candidate_id"] == row["candidate_id"] + "~confirm"
            assert confirmation["objective"] == min(row["gflops_median"], confirmation["gflops_median"])
        else:
            assert row["status"] == "not_added" and row["confirmation"] is None, name

    # The elites: one per cell of the correct kernels, best first; the best kernel's with its confirmed figure.
    elites = {elite["cell"]: elite for elite in summary["elites"]}
    assert set(elites) == {candidates[name]["cell"] for name in ("naive", "ikj", "tiled", "openmp")}
    objectives = [elite["objective"] for elite in summary["elites"]]
    assert objectives == sorted(objectives, reverse=True)
    best = candidates[summary["ranking"][0]]
    repeats = {name for name, row in candidates.items() if row["duplicate_of"] == best["name"]}
    assert elites[best["cell"]]["name"] in {best["name"], *repeats}
    assert elites[best["cell"]]["objective"] >= best["confirmation"]["objective"] > 0
    assert "<- the best" in done.stdout and "elites (hpcrl elites" in done.stdout

    # What the run leaves behind.
    assert [Path(path).name for path in summary["report"]] == [
        "demo-dgemm-progress.png",
        "demo-dgemm-cells.png",
        "demo-dgemm-verdicts.png",
        "demo-dgemm-elites.png",
    ]
    assert all(Path(path).read_bytes().startswith(b"\x89PNG") for path in summary["report"])
    for name in ("journal.sqlite", "archive.sqlite", "bencher.log", "archive.log"):
        assert (run_dir / name).exists(), name
    assert summary["total_wall_s"] < 60
