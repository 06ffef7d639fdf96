"""The grid, the stage rules and ingest, on scripted streams of results (no bus)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive.config import ArchiveConfig
from archive.ingest import CONFIRMATION_SUFFIX, Archive
from archive.qd import Grid, cell_of
from archive.store import ArchiveStore, Elite
from bus.config import ConfigError
from bus.schema import DEFAULT_STAGE_LADDER, AddStatus, Result, Verdict
from tests.archive_support import IKJ, NAIVE, OPENMP_IKJ, result


def elite(cell: str, objective: float, techniques: tuple[str, ...] = ()) -> Elite:
    return Elite("dgemm", 512, cell, f"id-{cell}-{objective}", objective, techniques, 1, 0.0)


def test_each_cell_keeps_its_best_and_add_says_what_it_did() -> None:
    grid = Grid()
    assert grid.add_batch([elite("a", 1.0), elite("a", 2.0), elite("a", 1.5), elite("b", 0.5)]) == [
        AddStatus.NEW,
        AddStatus.IMPROVE_EXISTING,
        AddStatus.NOT_ADDED,
        AddStatus.NEW,
    ]
    assert grid.cells["a"].objective == 2.0 and grid.best("dgemm", 512) == 2.0 and grid.best("dgemm", 256) == 0.0


def test_stats_count_elites_coverage_and_qd_score() -> None:
    grid = Grid([elite("x", 4.0, ("tiling",)), elite("y", 2.0, ()), elite("z", 6.0, ("openmp", "tiling"))])
    everything = grid.stats("dgemm")
    assert everything.num_elites == 3 and everything.qd_score == 12.0 and everything.obj_max == 6.0
    assert everything.obj_mean == 4.0 and everything.coverage == 3 / 2**10
    stage = grid.stats("dgemm", frozenset({"tiling", "loop_order"}))
    assert stage.num_elites == 2 and stage.coverage == 2 / 4, "openmp lies outside the stage"


def test_cells_name_the_problem_size_and_sorted_techniques() -> None:
    assert cell_of("dgemm", 512, ["tiling", "loop_order"]) == "dgemm/512/loop_order+tiling"
    assert cell_of("dgemm", 128, []) == "dgemm/128/none"


def make_archive(tmp_path: Path, **settings: object) -> tuple[Archive, ArchiveStore]:
    store = ArchiveStore(tmp_path / "archive.sqlite")
    config = ArchiveConfig(db_path=str(store.path), **settings)  # type: ignore[arg-type]
    archive = Archive(config, store)
    store.write(archive_start(archive))
    return archive, store


def archive_start(archive: Archive):  # type: ignore[no-untyped-def]
    from archive.store import Batch

    return Batch([], [], archive.start(), [], 0)


def feed(archive: Archive, store: ArchiveStore, results: list[Result]) -> list:  # type: ignore[type-arg]
    outcome = archive.ingest(results, cursor=store.cursor() + len(results))
    store.write(outcome.batch)
    return outcome.batch.stage_changes


def test_the_first_stage_is_announced_once(tmp_path: Path) -> None:
    archive, store = make_archive(tmp_path)
    assert [(r.problem, r.from_stage, r.to_stage) for r in store.stage_changes()] == [("dgemm", 0, 1)]
    assert set(store.stage_changes()[0].techniques) == set(DEFAULT_STAGE_LADDER[0])
    assert Archive(archive.config, store).start() == [], "a restarted archive does not announce again"


def test_a_stage_ends_after_its_result_budget(tmp_path: Path) -> None:
    archive, store = make_archive(tmp_path, max_results=5, plateau_window=1000, confirm=False)
    changes = feed(archive, store, [result(gflops=float(i + 1)) for i in range(12)])
    assert [(c.from_stage, c.to_stage) for c in changes] == [(1, 2), (2, 3)]
    assert all("budget" in c.reason for c in changes) and archive.stage_of("dgemm") == 3


def test_a_plateau_with_enough_coverage_ends_a_stage(tmp_path: Path) -> None:
    ladder = [{"techniques": ["loop_order"]}, {"techniques": ["loop_order", "openmp"]}]
    archive, store = make_archive(
        tmp_path, stages=ladder, max_results=0, plateau_window=4, plateau_improvement=0.05, min_coverage=1.0,
        confirm=False,
    )  # fmt: skip
    # Improving steadily: no plateau, whatever the coverage.
    assert feed(archive, store, [result(IKJ, gflops=g) for g in (1.0, 2.0, 3.0, 4.0, 5.0)]) == []
    # Flat, but only one of the stage's two cells (none, loop_order) is covered: no plateau yet.
    assert feed(archive, store, [result(IKJ, gflops=5.0) for _ in range(4)]) == []
    # The naive cell fills coverage; best still flat over the window: the stage ends.
    changes = feed(archive, store, [result(NAIVE, gflops=0.5)])
    assert [(c.from_stage, c.to_stage) for c in changes] == [(1, 2)] and "plateau" in changes[0].reason
    assert changes[0].stats["results_in_previous_stage"] == 10.0
    # The last stage never ends.
    assert feed(archive, store, [result(OPENMP_IKJ, gflops=5.0) for _ in range(20)]) == []


def test_a_result_outside_its_stage_is_stored_and_flagged(tmp_path: Path) -> None:
    archive, store = make_archive(tmp_path, confirm=False)
    inside, outside = result(IKJ, stage=1), result(OPENMP_IKJ, stage=1)
    feed(archive, store, [inside, outside])
    assert not store.record(inside.candidate_id).outside_stage  # type: ignore[union-attr]
    flagged = store.record(outside.candidate_id)
    assert flagged is not None and flagged.outside_stage and "openmp" in flagged.techniques


def test_a_would_be_best_waits_for_its_confirmation_and_keeps_the_lower_figure(tmp_path: Path) -> None:
    archive, store = make_archive(tmp_path)
    first = result(IKJ, gflops=10.0)
    outcome = archive.ingest([first], cursor=1)
    store.write(outcome.batch)
    assert [r.candidate_id for r in outcome.to_confirm] == [first.candidate_id]
    assert outcome.batch.records[0].status is AddStatus.AWAITING_CONFIRMATION and store.elites() == []
    confirmation = result(IKJ, gflops=8.0, candidate_id=first.candidate_id + CONFIRMATION_SUFFIX)
    outcome = archive.ingest([confirmation], cursor=2)
    store.write(outcome.batch)
    (kept,) = store.elites()
    assert kept.candidate_id == first.candidate_id and kept.objective == 8.0
    stored = store.record(confirmation.candidate_id)
    assert stored is not None and stored.confirmation_of == first.candidate_id and stored.status is AddStatus.NEW
    assert store.confirmations("confirmed")[0].confirmed_objective == 8.0


def test_a_refuted_confirmation_keeps_the_outlier_out(tmp_path: Path) -> None:
    archive, store = make_archive(tmp_path)
    lucky = result(IKJ, gflops=50.0)
    store.write(archive.ingest([lucky], cursor=1).batch)
    refuted = result(IKJ, verdict=Verdict.WRONG_ANSWER, candidate_id=lucky.candidate_id + CONFIRMATION_SUFFIX)
    store.write(archive.ingest([refuted], cursor=2).batch)
    assert store.elites() == [] and store.confirmations("refuted")


def test_results_that_do_not_lead_need_no_confirmation(tmp_path: Path) -> None:
    archive, store = make_archive(tmp_path, confirm=False)
    feed(archive, store, [result(IKJ, gflops=10.0)])
    archive.config = ArchiveConfig(db_path=str(store.path), confirm=True)
    outcome = archive.ingest([result(NAIVE, gflops=2.0)], cursor=9)
    assert outcome.to_confirm == [] and outcome.batch.records[0].status is AddStatus.NEW


def test_a_restarted_archive_continues_the_stage_where_it_was(tmp_path: Path) -> None:
    archive, store = make_archive(tmp_path, max_results=6, plateau_window=1000, confirm=False)
    feed(archive, store, [result(gflops=1.0) for _ in range(4)])
    again = Archive(archive.config, store)
    assert again.stage_of("dgemm") == 1 and again.trackers["dgemm"].results_in_stage == 4
    changes = feed(again, store, [result(gflops=1.0) for _ in range(2)])
    assert [(c.from_stage, c.to_stage) for c in changes] == [(1, 2)], (
        "the budget counts results from before the restart"
    )


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([{"techniques": ["warp_speed"]}], "unknown names ['warp_speed']"),
        ([{"techniques": "tiling"}], "must be a list"),
        ([{"techniques": ["tiling"], "colour": 1}], "unknown keys ['colour']"),
        ([{"techniques": ["tiling"], "max_results": -1}], "must be a number >= 0"),
        (["tiling"], "must be a table"),
    ],
)
def test_a_bad_ladder_is_refused_with_the_reason(stages: list[object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"archive\.stages"):
        ArchiveConfig(stages=stages)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as error:
        ArchiveConfig(stages=stages)  # type: ignore[arg-type]
    assert message in str(error.value)


def test_one_technique_per_stage_is_expressible_in_config_alone() -> None:
    ladder = ArchiveConfig(stages=[{"techniques": [t]} for t in ("loop_order", "tiling", "openmp")]).ladder()
    assert [set(s.techniques) for s in ladder] == [{"loop_order"}, {"tiling"}, {"openmp"}]


def test_an_unparseable_source_is_stored_without_techniques_and_with_the_reason(tmp_path: Path) -> None:
    archive, store = make_archive(tmp_path, confirm=False)
    broken = result("void dgemm(int n, const double *A, const double *B, double *C) { for (;; }", gflops=1.0)
    feed(archive, store, [broken])
    stored = store.record(broken.candidate_id)
    assert stored is not None and stored.techniques == () and stored.parse_error
    assert stored.cell == "dgemm/512/none"


def test_elites_of_a_problem_rated_in_gbps_are_exported_under_gbps_gauges(tmp_path: Path) -> None:
    """A GB/s figure under a GFLOPS name would mislead every dashboard that compares them."""
    from archive import metrics

    archive, store = make_archive(tmp_path, problems=["dgemm", "transpose"], confirm=False)
    feed(archive, store, [result(problem="transpose", size=127, metric="gbps", rate_median=7.5, gflops=0.0)])
    feed(archive, store, [result(problem="dgemm", size=512, gflops=3.0, metric="gflops", rate_median=3.0)])
    metrics.refresh(store, archive)
    assert metrics.BEST_GBPS.labels("transpose")._value.get() == 7.5
    assert metrics.BEST_GFLOPS.labels("dgemm")._value.get() == 3.0
    assert ("transpose",) not in metrics.BEST_GFLOPS._metrics, "no GFLOPS series for a GB/s problem"
