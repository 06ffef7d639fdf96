"""The archive's durable store: SQLite in WAL mode, one transaction per ingested batch.

Tables: `results` (every result exactly once, keyed by candidate id, with its techniques, cell and
what it did to the archive), `elites` (the best result per cell), `stage_changes` (every stage
transition per problem), `confirmations` (re-measurements of would-be bests), and `meta` (schema
version and the bus cursor). A batch's results, elite updates, stage changes and the cursor are
committed together, so after a crash the archive resumes from the cursor and the de-duplication by
candidate id makes the replay harmless. Rows carry `published` until their `archived`/`stage_change`
event is acknowledged by the broker, so a crash between commit and publication republishes them.

Schema versions are migrated forward in order; a database written by a newer hpcrl is refused.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bus.schema import AddStatus, Result, Verdict

SCHEMA_VERSION = 2
# Version -> statements that upgrade the previous version to it. Version 1 creates everything; 2 adds the
# problem's metric, the rate in it and the node's baselines (problems rated in GB/s, or with no flops).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE results (
            candidate_id TEXT PRIMARY KEY, bus_seq INTEGER NOT NULL, stored_at REAL NOT NULL,
            run TEXT NOT NULL, problem TEXT NOT NULL, size INTEGER NOT NULL, stage INTEGER NOT NULL,
            current_stage INTEGER NOT NULL, policy_version INTEGER NOT NULL, attempt INTEGER NOT NULL,
            verdict TEXT NOT NULL, gflops_median REAL NOT NULL, gflops_min REAL NOT NULL,
            gflops_max REAL NOT NULL, cv REAL NOT NULL, repetitions INTEGER NOT NULL,
            compile_s REAL NOT NULL, run_s REAL NOT NULL, detail TEXT NOT NULL, bencher_id TEXT NOT NULL,
            host TEXT NOT NULL, slurm_job_id TEXT NOT NULL, calibration_gflops REAL NOT NULL,
            cached INTEGER NOT NULL, threads INTEGER NOT NULL, node_class TEXT NOT NULL,
            measured_at REAL NOT NULL, source TEXT NOT NULL, techniques TEXT NOT NULL,
            parse_error TEXT NOT NULL, cell TEXT NOT NULL, status TEXT NOT NULL,
            objective REAL NOT NULL, outside_stage INTEGER NOT NULL, confirmation_of TEXT NOT NULL,
            published INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX results_by_problem ON results (problem, stored_at)",
        "CREATE INDEX results_by_stage ON results (problem, current_stage)",
        "CREATE INDEX results_unpublished ON results (published) WHERE published = 0",
        """CREATE TABLE elites (
            problem TEXT NOT NULL, size INTEGER NOT NULL, cell TEXT NOT NULL, candidate_id TEXT NOT NULL,
            objective REAL NOT NULL, techniques TEXT NOT NULL, stage INTEGER NOT NULL, added_at REAL NOT NULL,
            PRIMARY KEY (problem, size, cell))""",
        """CREATE TABLE stage_changes (
            id INTEGER PRIMARY KEY AUTOINCREMENT, problem TEXT NOT NULL, from_stage INTEGER NOT NULL,
            to_stage INTEGER NOT NULL, reason TEXT NOT NULL, techniques TEXT NOT NULL, stats TEXT NOT NULL,
            changed_at REAL NOT NULL, results_in_stage INTEGER NOT NULL, published INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE confirmations (
            candidate_id TEXT PRIMARY KEY, confirmation_id TEXT NOT NULL UNIQUE, problem TEXT NOT NULL,
            size INTEGER NOT NULL, objective REAL NOT NULL, submitted_at REAL NOT NULL,
            state TEXT NOT NULL, confirmed_objective REAL NOT NULL DEFAULT 0)""",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    2: (
        "ALTER TABLE results ADD COLUMN metric TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE results ADD COLUMN rate_median REAL NOT NULL DEFAULT 0",
        "ALTER TABLE results ADD COLUMN naive_rate REAL NOT NULL DEFAULT 0",
        "ALTER TABLE results ADD COLUMN vendor_rate REAL NOT NULL DEFAULT 0",
    ),
}


class StoreError(RuntimeError):
    """The database cannot be used as it is; the message says what to do."""


@dataclass(frozen=True)
class Record:
    """A result as the archive stores it."""

    result: Result
    techniques: tuple[str, ...]
    parse_error: str
    cell: str
    status: AddStatus
    objective: float
    outside_stage: bool
    current_stage: int
    confirmation_of: str = ""
    stored_at: float = 0.0
    """When the archive stored it (set when read back)."""


@dataclass(frozen=True)
class Elite:
    problem: str
    size: int
    cell: str
    candidate_id: str
    objective: float
    techniques: tuple[str, ...]
    stage: int
    added_at: float


@dataclass(frozen=True)
class StageRow:
    id: int
    problem: str
    from_stage: int
    to_stage: int
    reason: str
    techniques: tuple[str, ...]
    stats: dict[str, float]
    changed_at: float
    results_in_stage: int


@dataclass(frozen=True)
class Confirmation:
    candidate_id: str
    confirmation_id: str
    problem: str
    size: int
    objective: float
    submitted_at: float
    state: str
    """pending, confirmed or refuted."""
    confirmed_objective: float = 0.0


@dataclass
class Batch:
    """Everything one ingest step changes, committed in one transaction."""

    records: list[Record]
    elites: list[Elite]
    stage_changes: list[StageRow]
    confirmations: list[Confirmation]
    cursor: int


class ArchiveStore:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            if not path.exists():
                raise StoreError(f"archive database {path} does not exist: start `hpcrl archive` or pass --db")
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0, isolation_level=None)
            self._check_version(writable=False)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed batch survives kill -9
        self._check_version(writable=True)

    def close(self) -> None:
        self.db.close()

    def backup(self, out: Path) -> None:
        """A consistent copy of the store in `out` (SQLite's online backup: safe while the daemon writes;
        the copy is written beside `out` and renamed into place, so `out` is never half a database)."""
        partial = out.with_name(f".{out.name}.partial")
        partial.unlink(missing_ok=True)
        target = sqlite3.connect(partial)
        try:
            self.db.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            target.close()
        partial.replace(out)

    # ------------------------------------------------------------ writing

    def write(self, batch: Batch) -> tuple[list[bool], list[int]]:
        """Commit a batch. Returns, per record, whether it was new (a stored candidate id is kept as is),
        and the row ids given to the batch's stage changes."""
        new: list[bool] = []
        stage_ids: list[int] = []
        with self._transaction():
            for record in batch.records:
                cursor = self.db.execute(_INSERT_RESULT, _result_row(record))
                new.append(cursor.rowcount == 1)
            self.db.executemany(
                "INSERT OR REPLACE INTO elites VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.problem,
                        e.size,
                        e.cell,
                        e.candidate_id,
                        e.objective,
                        ",".join(e.techniques),
                        e.stage,
                        e.added_at,
                    )
                    for e in batch.elites
                ],
            )
            for change in batch.stage_changes:
                inserted = self.db.execute(
                    "INSERT INTO stage_changes (problem, from_stage, to_stage, reason, techniques, stats, changed_at,"
                    " results_in_stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        change.problem,
                        change.from_stage,
                        change.to_stage,
                        change.reason,
                        ",".join(change.techniques),
                        json.dumps(change.stats),
                        change.changed_at,
                        change.results_in_stage,
                    ),
                )
                stage_ids.append(int(inserted.lastrowid or 0))
            self.db.executemany(
                "INSERT OR REPLACE INTO confirmations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (c.candidate_id, c.confirmation_id, c.problem, c.size, c.objective, c.submitted_at, c.state,
                     c.confirmed_objective)
                    for c in batch.confirmations
                ],
            )  # fmt: skip
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', ?)", (str(batch.cursor),))
        return new, stage_ids

    def mark_published(self, candidate_ids: Iterable[str], stage_change_ids: Iterable[int]) -> None:
        with self._transaction():
            self.db.executemany(
                "UPDATE results SET published = 1 WHERE candidate_id = ?", [(c,) for c in candidate_ids]
            )
            self.db.executemany("UPDATE stage_changes SET published = 1 WHERE id = ?", [(i,) for i in stage_change_ids])

    # ------------------------------------------------------------ reading

    def cursor(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        return int(row[0]) if row else 0

    def known(self, candidate_ids: Iterable[str]) -> set[str]:
        ids = list(candidate_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self.db.execute(f"SELECT candidate_id FROM results WHERE candidate_id IN ({marks})", chunk)
            )
        return found

    def count(self, problem: str | None = None) -> int:
        if problem is None:
            return int(self.db.execute("SELECT count(*) FROM results").fetchone()[0])
        return int(self.db.execute("SELECT count(*) FROM results WHERE problem = ?", (problem,)).fetchone()[0])

    def metric(self, problem: str) -> str:
        """The metric the problem's results are rated in (`gflops` or `gbps`): the newest result that says;
        `gflops` when none does (a bencher that predates metrics rated every problem so)."""
        row = self.db.execute(
            "SELECT metric FROM results WHERE problem = ? AND metric != '' ORDER BY stored_at DESC LIMIT 1", (problem,)
        ).fetchone()
        return str(row[0]) if row else "gflops"

    def verdict_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT verdict, count(*) FROM results GROUP BY verdict").fetchall())

    def elites(self, problem: str | None = None) -> list[Elite]:
        query = (
            "SELECT * FROM elites"
            + (" WHERE problem = ?" if problem else "")
            + " ORDER BY problem, size, objective DESC"
        )
        return [_elite(row) for row in self.db.execute(query, (problem,) if problem else ())]

    def stage_changes(self, problem: str | None = None, unpublished: bool = False) -> list[StageRow]:
        clauses = [c for c in ("problem = ?" if problem else "", "published = 0" if unpublished else "") if c]
        query = "SELECT * FROM stage_changes" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id"
        return [_stage_row(row) for row in self.db.execute(query, (problem,) if problem else ())]

    def record(self, candidate_id: str) -> Record | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM results WHERE candidate_id = ?", (candidate_id,)).fetchone()
        return _record(row) if row else None

    def confirmations(self, state: str | None = None) -> list[Confirmation]:
        query = "SELECT * FROM confirmations" + (" WHERE state = ?" if state else "")
        return [Confirmation(*row) for row in self.db.execute(query, (state,) if state else ())]

    def unpublished_records(self, limit: int = 10_000) -> list[Record]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM results WHERE published = 0 LIMIT ?", (limit,))
        return [_record(row) for row in rows]

    def records(self, problem: str | None = None, since_stored_at: float = 0.0) -> Iterator[Record]:
        query = f"SELECT {_COLUMNS} FROM results WHERE stored_at >= ?" + (" AND problem = ?" if problem else "")
        query += " ORDER BY stored_at, rowid"
        args: tuple[Any, ...] = (since_stored_at, problem) if problem else (since_stored_at,)
        for row in self.db.execute(query, args):
            yield _record(row)

    def progress(self, problem: str) -> Iterator[tuple[str, float, int, str]]:
        """(status, objective, current_stage, confirmation_of) of the problem's results in storage order:
        what a restarting archive replays to rebuild its stage trackers, without reading sources."""
        query = (
            "SELECT status, objective, current_stage, confirmation_of FROM results"
            " WHERE problem = ? ORDER BY stored_at, rowid"
        )
        yield from self.db.execute(query, (problem,))

    def stage_counts(self) -> dict[tuple[str, int], int]:
        """Results stored per (problem, current stage): how far each stage has got."""
        rows = self.db.execute("SELECT problem, current_stage, count(*) FROM results GROUP BY problem, current_stage")
        return {(problem, stage): count for problem, stage, count in rows}

    def export(self, out: IO[str], fmt: str, problem: str | None = None) -> int:
        """Every stored result as JSON lines or CSV (one row each, source included); returns the count."""
        count = 0
        writer = csv.writer(out) if fmt == "csv" else None
        if writer:
            writer.writerow(_EXPORT_FIELDS)
        for record in self.records(problem):
            row = _export_row(record)
            if writer:
                writer.writerow([row[k] for k in _EXPORT_FIELDS])
            else:
                out.write(json.dumps(row) + "\n")
            count += 1
        return count

    # ------------------------------------------------------------ internals

    def _transaction(self) -> _Commit:
        self.db.execute("BEGIN IMMEDIATE")
        return _Commit(self.db)

    def _check_version(self, writable: bool) -> None:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = 0
        if "meta" in tables:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
        elif tables:
            raise StoreError(f"{self.path} is an SQLite file but not an hpcrl archive (tables: {sorted(tables)})")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has archive schema version {version}, newer than this hpcrl's {SCHEMA_VERSION}: "
                "upgrade hpcrl to read it (the database was left unchanged)"
            )
        if version < SCHEMA_VERSION:
            if not writable:
                raise StoreError(f"{self.path} has schema version {version}: run `hpcrl archive` once to migrate it")
            with self._transaction():
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[target]:
                        self.db.execute(statement)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (str(time.time()),))


class _Commit:
    """`with store._transaction():` commits on success and rolls back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


_RESULT_FIELDS = (
    "candidate_id", "bus_seq", "run", "problem", "size", "stage", "policy_version", "attempt", "verdict",
    "gflops_median", "gflops_min", "gflops_max", "cv", "repetitions", "compile_s", "run_s", "detail", "bencher_id",
    "host", "slurm_job_id", "calibration_gflops", "cached", "threads", "node_class", "source", "metric",
    "rate_median", "naive_rate", "vendor_rate",
)  # fmt: skip
_ARCHIVE_FIELDS = (
    "stored_at", "current_stage", "measured_at", "techniques", "parse_error", "cell", "status", "objective",
    "outside_stage", "confirmation_of",
)  # fmt: skip
_COLUMNS = ", ".join(_RESULT_FIELDS + _ARCHIVE_FIELDS)
_PLACEHOLDERS = ", ".join("?" * (len(_RESULT_FIELDS) + len(_ARCHIVE_FIELDS)))
_INSERT_RESULT = f"INSERT OR IGNORE INTO results ({_COLUMNS}) VALUES ({_PLACEHOLDERS})"
_EXPORT_FIELDS = _RESULT_FIELDS + _ARCHIVE_FIELDS


def _result_row(record: Record) -> tuple[Any, ...]:
    r = record.result
    return (
        *(getattr(r, name) for name in _RESULT_FIELDS),
        time.time(),
        record.current_stage,
        r.sent_at,
        ",".join(record.techniques),
        record.parse_error,
        record.cell,
        str(record.status),
        record.objective,
        int(record.outside_stage),
        record.confirmation_of,
    )


def _record(row: tuple[Any, ...]) -> Record:
    values = dict(zip(_RESULT_FIELDS + _ARCHIVE_FIELDS, row, strict=True))
    result_fields = {name: values[name] for name in _RESULT_FIELDS}
    result_fields["verdict"] = Verdict(result_fields["verdict"])
    result_fields["cached"] = bool(result_fields["cached"])
    result = Result(
        id=f"stored-{values['candidate_id']}", sender="archive", seq=0, sent_at=values["measured_at"], **result_fields
    )
    return Record(
        result=result,
        techniques=tuple(t for t in values["techniques"].split(",") if t),
        parse_error=values["parse_error"],
        cell=values["cell"],
        status=AddStatus(values["status"]),
        objective=values["objective"],
        outside_stage=bool(values["outside_stage"]),
        current_stage=values["current_stage"],
        confirmation_of=values["confirmation_of"],
        stored_at=values["stored_at"],
    )


def _export_row(record: Record) -> dict[str, Any]:
    r = record.result
    row: dict[str, Any] = {name: getattr(r, name) for name in _RESULT_FIELDS}
    row["verdict"] = str(r.verdict)
    row.update(
        stored_at=record.stored_at,
        current_stage=record.current_stage,
        measured_at=r.sent_at,
        techniques=",".join(record.techniques),
        parse_error=record.parse_error,
        cell=record.cell,
        status=str(record.status),
        objective=record.objective,
        outside_stage=record.outside_stage,
        confirmation_of=record.confirmation_of,
    )
    return row


def _elite(row: tuple[Any, ...]) -> Elite:
    problem, size, cell, candidate_id, objective, techniques, stage, added_at = row
    return Elite(
        problem, size, cell, candidate_id, objective, tuple(t for t in techniques.split(",") if t), stage, added_at
    )


def _stage_row(row: tuple[Any, ...]) -> StageRow:
    id_, problem, from_stage, to_stage, reason, techniques, stats, changed_at, results_in_stage, _ = row
    return StageRow(
        id_, problem, from_stage, to_stage, reason, tuple(t for t in techniques.split(",") if t), json.loads(stats),
        changed_at, results_in_stage,
    )  # fmt: skip
