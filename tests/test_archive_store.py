"""The archive's SQLite store: exactly once, cursor with the batch, versions, readers beside a writer."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from archive.store import SCHEMA_VERSION, ArchiveStore, Batch, Elite, Record, StoreError
from bus.schema import AddStatus, Verdict
from tests.archive_support import result


def record(**kwargs: object) -> Record:
    r = result(**kwargs)  # type: ignore[arg-type]
    return Record(r, ("loop_order",), "", "dgemm/512/loop_order", AddStatus.NEW, r.gflops_median, False, 1)


def test_a_result_is_stored_once_however_often_it_is_written(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path / "a.sqlite")
    first = record(gflops=3.0)
    assert store.write(Batch([first], [], [], [], cursor=10)) == ([True], [])
    again = Record(first.result, (), "", "other", AddStatus.NOT_ADDED, 0.0, False, 1)
    assert store.write(Batch([again, record()], [], [], [], cursor=11)) == ([False, True], [])
    assert store.count() == 2 and store.cursor() == 11
    kept = store.record(first.result.candidate_id)
    assert kept is not None and kept.cell == "dgemm/512/loop_order" and kept.result.source == first.result.source
    assert kept.result.verdict is Verdict.OK and kept.techniques == ("loop_order",)


def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path / "a.sqlite")
    store.write(Batch([record()], [], [], [], cursor=5))
    broken = Elite("dgemm", 512, "c", "x", 1.0, (), 1, 0.0)
    with pytest.raises(sqlite3.Error):
        store.write(Batch([record()], [broken, Elite("dgemm", 512, "c", object(), 1.0, (), 1, 0.0)], [], [], 9))  # type: ignore[arg-type]
    assert store.count() == 1 and store.cursor() == 5 and store.elites() == []


def test_a_database_of_a_newer_schema_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    ArchiveStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"newer than this hpcrl's.*upgrade hpcrl"):
        ArchiveStore(path)
    with pytest.raises(StoreError, match="newer"):
        ArchiveStore(path, readonly=True)
    assert path.read_bytes() == before


def test_another_sqlite_file_is_not_taken_for_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (x)")
    with pytest.raises(StoreError, match="not an hpcrl archive"):
        ArchiveStore(path)


def test_a_reader_needs_an_existing_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        ArchiveStore(tmp_path / "missing.sqlite", readonly=True)


def test_readers_see_committed_batches_while_the_writer_writes(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    writer = ArchiveStore(path)
    done = threading.Event()
    seen: list[int] = []

    def read() -> None:
        reader = ArchiveStore(path, readonly=True)
        while not done.is_set():
            seen.append(reader.count())
        reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    for batch in range(50):
        writer.write(Batch([record() for _ in range(20)], [], [], [], cursor=batch))
    done.set()
    thread.join(10)
    assert seen and all(count % 20 == 0 for count in seen), "a reader sees whole batches only"
    assert seen == sorted(seen) and writer.count() == 1000


def test_export_writes_every_result_as_json_lines_or_csv(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path / "a.sqlite")
    store.write(Batch([record(gflops=2.5), record(verdict=Verdict.WRONG_ANSWER)], [], [], [], cursor=1))
    lines = io.StringIO()
    assert store.export(lines, "jsonl") == 2
    rows = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [r["verdict"] for r in rows] == ["ok", "wrong_answer"] and rows[0]["gflops_median"] == 2.5
    assert "void dgemm" in rows[0]["source"] and rows[0]["techniques"] == "loop_order"
    table = io.StringIO()
    store.export(table, "csv")
    parsed = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert len(parsed) == 2 and parsed[1]["verdict"] == "wrong_answer" and parsed[0]["cell"] == "dgemm/512/loop_order"


def test_a_problems_metric_is_the_newest_result_that_names_one(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path / "a.sqlite")
    assert store.metric("transpose") == "gflops"  # nothing stored yet: as every pre-metric bencher rated
    old = record(problem="transpose")
    store.write(Batch([old], [], [], [], cursor=1))
    assert store.metric("transpose") == "gflops"
    rated = record(problem="transpose", metric="gbps", rate_median=12.0)
    store.write(Batch([rated], [], [], [], cursor=2))
    assert store.metric("transpose") == "gbps" and store.metric("dgemm") == "gflops"
    kept = store.record(rated.result.candidate_id)
    assert kept is not None and kept.result.rate_median == 12.0 and kept.result.metric == "gbps"
