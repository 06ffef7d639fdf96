"""What the demo reports once every process has stopped: the training run's learning figures and plot,
the archive's stages, elites and report, and the best elite measured again next to OpenBLAS.

Each function returns the summary.json entries it owns; nothing here changes the run's data.
"""

from __future__ import annotations

import os
import statistics
from contextlib import closing
from pathlib import Path
from typing import Any

from bus.schema import Verdict


def read_training(trainer_dir: Path, window: int, plot_to: Path) -> dict[str, Any]:
    """The step log's learning figures (`first5_mean_gflops`, ...) and `training.png` in `plot_to`."""
    from trainer.report import PLOT_FILE, learning, plot
    from trainer.steplog import read_log

    records = read_log(trainer_dir)
    if not records:
        return {"steps": 0}
    figures = learning(records, window)
    return {
        "steps": figures.steps,
        f"first{window}_mean_gflops": round(figures.first_mean_gflops, 3),
        f"last{window}_mean_gflops": round(figures.last_mean_gflops, 3),
        "learning_ratio": round(figures.learning_ratio, 3),
        "best_sample_gflops": round(figures.best_sample_gflops, 3),
        f"last{window}_top_program_share": round(figures.top_program_share, 3),
        "prompt_stage_changes": [{"step": step, "stage": stage} for step, stage in figures.stage_changes],
        "trainer_idle_ratio_mean": round(statistics.fmean(r["idle_ratio"] for r in records), 3),
        "bencher_idle_ratio_mean": round(statistics.fmean(r.get("bencher_idle_ratio", 0.0) for r in records), 3),
        "step_s_mean": round(statistics.fmean(r["step_s"] for r in records), 3),
        "verdicts": _verdict_totals(records),
        "training_plot": str(plot(records, plot_to / PLOT_FILE, "hpcrl demo: reward and measured GFLOPS per step")),
    }


def _verdict_totals(records: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for record in records:
        for verdict, count in record["verdicts"].items():
            totals[verdict] = totals.get(verdict, 0) + count
    return totals


def read_archive(db: Path, run: str, problem: str, report_to: Path) -> dict[str, Any]:
    """Stage changes, elites (by the stage that found them) and the archive's report PNGs; the best
    elite's source under `best_source` (for the comparison, not for summary.json)."""
    from archive.report import write_report
    from archive.store import ArchiveStore, StoreError

    try:
        store = ArchiveStore(db, readonly=True)
    except StoreError as error:
        return {"error": f"cannot read the archive {db}: {error}"}
    try:
        changes = [c for c in store.stage_changes(problem) if c.from_stage >= 1]
        elites = store.elites(problem)
        best = max(elites, key=lambda e: e.objective, default=None)
        record = store.record(best.candidate_id) if best else None
        per_stage: dict[str, list[dict[str, Any]]] = {}
        for elite in elites:
            per_stage.setdefault(str(elite.stage), []).append(
                {"cell": elite.cell, "objective": round(elite.objective, 3), "techniques": list(elite.techniques)}
            )
        return {
            "stage_changes": len(changes),
            "stage_history": [
                {
                    "from_stage": c.from_stage,
                    "to_stage": c.to_stage,
                    "reason": c.reason,
                    "results_in_stage": c.results_in_stage,
                    "techniques": list(c.techniques),
                }
                for c in changes
            ],
            "results_stored": store.count(problem),
            "elites": len(elites),
            "elites_per_stage": per_stage,
            "best_gflops": round(best.objective, 3) if best else 0.0,
            "best_cell": best.cell if best else "",
            "best_source": record.result.source if record else "",
            "report": [str(path) for path in write_report(store, run, report_to)],
        }
    finally:
        store.close()


def trusted_kernel_failures(run_dir: Path) -> list[str]:
    """The benchers' own kernels that their pipeline did not pass (`event=calibration_failed` in a bencher's
    log): the bencher's mistake, which would have been charged to candidates too."""
    return [
        f"{log.name}: {line.strip()[:300]}"
        for log in sorted(run_dir.glob("bencher-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "event=calibration_failed" in line
    ]


def compare_with_openblas(config: Path, source: str, size: int, cpu: int, rounds: int) -> dict[str, Any]:
    """`source` and OpenBLAS's DGEMM measured alternately `rounds` times by the bencher's pipeline (past its
    result cache) on `cpu` alone, as the demo's benchers measured: the same threads, flags, monitor and peak.
    OpenBLAS is trusted: if the pipeline does not pass it, `trusted_kernel_rejected` says so."""
    from bencher.calibration import OPENBLAS_KERNEL, OPENBLAS_LIBRARIES, library_pipeline
    from bencher.config import BencherConfig
    from bencher.pipeline import Pipeline
    from bus.config import read_toml, section

    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})  # the node's thread count comes from this process's affinity
    try:
        bencher = section(BencherConfig, read_toml(config), "bencher", env={})
        kernel = OPENBLAS_KERNEL.read_text()
        with closing(Pipeline(bencher)) as pipeline, closing(library_pipeline(pipeline)) as library:
            best, openblas = [], []
            for _ in range(rounds):
                best.append(pipeline.evaluate("dgemm", size, source, use_cache=False))
                openblas.append(
                    library.evaluate("dgemm", size, kernel, use_cache=False, trusted_libraries=OPENBLAS_LIBRARIES)
                )
            threads = pipeline.node.threads
    finally:
        os.sched_setaffinity(0, affinity)
    rejected = [e for e in openblas if e.verdict is not Verdict.OK]
    if rejected:
        return {
            "comparison_error": "OpenBLAS was not measured",
            "trusted_kernel_rejected": f"OpenBLAS: {rejected[0].verdict.value}: {rejected[0].detail[:300]}",
        }
    failed = [e for e in best if e.verdict is not Verdict.OK]
    if failed:
        return {"comparison_error": f"the best elite: {failed[0].verdict.value}: {failed[0].detail[:300]}"}
    best_gflops = statistics.median(e.gflops_median for e in best)
    openblas_gflops = statistics.median(e.gflops_median for e in openblas)
    return {
        "comparison_threads": threads,
        "comparison_cpu": cpu,
        "best_remeasured_gflops": round(best_gflops, 3),
        "openblas_gflops": round(openblas_gflops, 3),
        "best_vs_openblas": round(best_gflops / openblas_gflops, 3),
    }
