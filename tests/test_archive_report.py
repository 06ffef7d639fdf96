"""`hpcrl archive report`: a run becomes three readable PNG files per problem, and nothing else does."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
from matplotlib.image import imread

from archive.report import write_report
from archive.store import ArchiveStore, Batch, Elite, Record, StageRow
from bus.schema import AddStatus, Result, Stamper, Verdict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TECHNIQUE_SETS = [(), ("loop_order",), ("loop_order", "tiling"), ("openmp", "simd_pragma", "tiling"), ("unrolling",)]
FAILURES = [Verdict.COMPILE_ERROR, Verdict.WRONG_ANSWER, Verdict.TIMEOUT, Verdict.CRASH]
stamper = Stamper("test-report")


def scripted_run(store: ArchiveStore, run: str, problems: dict[str, int], seed: int) -> None:
    """`count` results per problem in batches of 50, speeds rising, a stage change after each third of
    dgemm's results, and the elites the archive would keep."""
    rng = random.Random(seed)
    best: dict[str, Elite] = {}
    for problem, count in problems.items():
        stage = 1
        for start in range(0, count, 50):
            records: list[Record] = []
            changes: list[StageRow] = []
            for i in range(start, min(start + 50, count)):
                techniques = rng.choice(TECHNIQUE_SETS)
                size = rng.choice((256, 512))
                ok = rng.random() < 0.7
                gflops = (1.0 + i / 10 + 3 * len(techniques)) * rng.uniform(0.8, 1.2) if ok else 0.0
                result = stamper.make(
                    Result,
                    candidate_id=f"{run}-{problem}-{i}",
                    run=run,
                    problem=problem,
                    size=size,
                    stage=stage,
                    source="void kernel(void) {}",
                    verdict=Verdict.OK if ok else rng.choice(FAILURES),
                    gflops_median=gflops,
                )
                cell = f"{problem}/{size}/{'+'.join(techniques) or 'none'}"
                status = AddStatus.NOT_ADDED
                if ok and (cell not in best or gflops > best[cell].objective):
                    status = AddStatus.IMPROVE_EXISTING if cell in best else AddStatus.NEW
                    best[cell] = Elite(problem, size, cell, result.candidate_id, gflops, techniques, stage, 0.0)
                records.append(Record(result, techniques, "", cell, status, gflops, False, stage))
                if problem == "dgemm" and i + 1 in (count // 3, 2 * count // 3):
                    reason = "plateau: flat" if stage == 1 else "budget: spent"
                    changes.append(StageRow(0, problem, stage, stage + 1, reason, ("tiling",), {}, 0.0, i))
                    stage += 1
            store.write(Batch(records, list(best.values()), changes, [], cursor=start))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArchiveStore]:
    db = ArchiveStore(tmp_path_factory.mktemp("archive") / "archive.db")
    scripted_run(db, "r1", {"dgemm": 240, "stencil": 120}, seed=1)
    scripted_run(db, "r2", {"stencil": 60}, seed=2)
    yield db
    db.close()


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert len(data) > 20_000, f"{path.name} is only {len(data)} bytes: probably an empty plot"
    height, width = imread(path).shape[:2]
    assert width == 1200 and height >= 600, f"{path.name} is {width}x{height} px, expected 10x5 in at 120 dpi"


def elite_runs(store: ArchiveStore, problem: str) -> set[str]:
    """The runs whose results hold the problem's elites."""
    records = [store.record(elite.candidate_id) for elite in store.elites(problem)]
    return {record.result.run for record in records if record}


def test_a_run_gives_progress_cells_verdict_and_elite_plots_per_problem(store: ArchiveStore, tmp_path: Path) -> None:
    paths = write_report(store, "r1", tmp_path / "out")
    with_elites = [problem for problem in ("dgemm", "stencil") if "r1" in elite_runs(store, problem)]
    assert with_elites, "the fixture's run r1 holds elites"
    assert sorted(p.name for p in paths) == sorted(
        [f"r1-{problem}-{plot}.png" for problem in ("dgemm", "stencil") for plot in ("progress", "cells", "verdicts")]
        + [f"r1-{problem}-elites.png" for problem in with_elites]
    )
    for path in paths:
        assert path.parent == tmp_path / "out"
        assert_png(path)


def test_the_run_id_selects_the_results_plotted(store: ArchiveStore, tmp_path: Path) -> None:
    r2 = write_report(store, "r2", tmp_path)
    elites = ["r2-stencil-elites.png"] if "r2" in elite_runs(store, "stencil") else []
    assert sorted(p.name for p in r2) == sorted(
        ["r2-stencil-cells.png", "r2-stencil-progress.png", "r2-stencil-verdicts.png", *elites]
    )
    for path in r2:
        assert_png(path)
    r1 = write_report(store, "r1", tmp_path)
    assert (tmp_path / "r1-stencil-progress.png").read_bytes() != (tmp_path / "r2-stencil-progress.png").read_bytes()
    assert len(r1) == 6 + sum("r1" in elite_runs(store, problem) for problem in ("dgemm", "stencil"))


def test_all_plots_every_run_together(store: ArchiveStore, tmp_path: Path) -> None:
    paths = write_report(store, "all", tmp_path)
    assert {p.name.split("-")[1] for p in paths} == {"dgemm", "stencil"}
    assert all(p.name.startswith("all-") for p in paths)


def test_a_run_without_results_writes_nothing(store: ArchiveStore, tmp_path: Path) -> None:
    assert write_report(store, "no-such-run", tmp_path / "out") == []
    assert not (tmp_path / "out").exists()


def test_an_empty_archive_writes_nothing(tmp_path: Path) -> None:
    empty = ArchiveStore(tmp_path / "empty.db")
    assert write_report(empty, "all", tmp_path / "out") == []
    empty.close()


@pytest.mark.filterwarnings("error")
def test_a_run_of_one_failed_result_still_draws_every_plot(tmp_path: Path) -> None:
    db = ArchiveStore(tmp_path / "archive.db")
    result = stamper.make(
        Result, candidate_id="c", run="r", problem="dgemm", size=64, source="", verdict=Verdict.COMPILE_ERROR
    )
    db.write(Batch([Record(result, (), "", "dgemm/64/none", AddStatus.NOT_ADDED, 0.0, False, 1)], [], [], [], 1))
    paths = write_report(db, "r", tmp_path)
    db.close()
    assert len(paths) == 3 and all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)


def test_a_run_id_with_a_slash_stays_in_the_output_directory(tmp_path: Path) -> None:
    db = ArchiveStore(tmp_path / "archive.db")
    scripted_run(db, "team/r3", {"dgemm": 30}, seed=3)
    paths = write_report(db, "team/r3", tmp_path / "out")
    db.close()
    assert paths and all(p.parent == tmp_path / "out" and p.name.startswith("team_r3-") for p in paths)
