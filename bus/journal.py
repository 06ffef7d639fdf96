"""The broker's replay journal: every journaled event, numbered, persisted in SQLite, bounded.

Subscribers recover anything they missed with "everything after bus_seq N" (FetchRequest);
the newest event of every topic is never evicted, so "current state" snapshots (e.g. the stage
of every problem) stay answerable forever.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

JOURNAL_SCHEMA_VERSION = 1
CHECKPOINT_INTERVAL_S = 1.0


class JournalError(RuntimeError):
    pass


@dataclass(frozen=True)
class StoredEvent:
    bus_seq: int
    topic: str
    payload: bytes


class Journal:
    def __init__(self, path: str, max_events: int, sync: str) -> None:
        self.path = path
        self.max_events = max_events
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        # SQLite's automatic checkpoint runs inside a commit and stalls the broker loop for
        # milliseconds; a helper thread with its own connection checkpoints instead.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        try:
            self._migrate()
        except JournalError:
            self._db.close()
            raise
        self.head = self._scalar("SELECT COALESCE(MAX(bus_seq), 0) FROM events")
        self.evicted_through = int(self._meta("evicted_through", "0"))
        self.topic_heads: dict[str, int] = {}
        self.topic_last_bus_seq: dict[str, int] = {}
        for topic, topic_seq, bus_seq in self._db.execute(
            "SELECT topic, MAX(topic_seq), MAX(bus_seq) FROM events GROUP BY topic"
        ):
            self.topic_heads[topic] = topic_seq
            self.topic_last_bus_seq[topic] = bus_seq
        self._count = self._scalar("SELECT COUNT(*) FROM events")
        self._in_transaction = False
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if path != ":memory:":
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="journal-checkpoint", daemon=True)
            self._checkpointer.start()

    # ------------------------------------------------------------ writing

    def append(self, topic: str, dedup_key: str, build_payload: Callable[[int, int], bytes]) -> tuple[int, bool]:
        """Journal one event unless `dedup_key` is already there.

        Returns (bus_seq, is_new). `build_payload(bus_seq, topic_seq)` encodes the event stamped with
        its position, so the stored bytes are exactly what is published.
        """
        if not self._in_transaction:
            self._db.execute("BEGIN")
            self._in_transaction = True
        bus_seq = self.head + 1
        topic_seq = self.topic_heads.get(topic, 0) + 1
        payload = build_payload(bus_seq, topic_seq)
        try:
            self._db.execute(
                "INSERT INTO events(bus_seq, topic, topic_seq, dedup_key, payload) VALUES (?, ?, ?, ?, ?)",
                (bus_seq, topic, topic_seq, dedup_key, payload),
            )
        except sqlite3.IntegrityError:
            existing = self.lookup(dedup_key)
            if existing is None:
                raise
            return existing, False
        self.head = bus_seq
        self.topic_heads[topic] = topic_seq
        self.topic_last_bus_seq[topic] = bus_seq
        self._count += 1
        return bus_seq, True

    def lookup(self, dedup_key: str) -> int | None:
        row = self._db.execute("SELECT bus_seq FROM events WHERE dedup_key = ?", (dedup_key,)).fetchone()
        return None if row is None else int(row[0])

    @property
    def dirty(self) -> bool:
        """True while appended events are not yet committed."""
        return self._in_transaction

    def commit(self) -> bool:
        """Make everything appended so far durable. Returns whether there was anything to commit."""
        if not self._in_transaction:
            return False
        self._db.execute("COMMIT")
        self._in_transaction = False
        if self._count > self.max_events:
            self._evict()
        return True

    def _evict(self) -> None:
        # Evict a tenth at a time so eviction cost is amortised over many appends.
        keep = self.max_events - self.max_events // 10
        boundary = self.head - keep
        protected = set(self.topic_last_bus_seq.values())
        with self._db:
            self._db.execute("BEGIN")
            cursor = self._db.execute(
                f"DELETE FROM events WHERE bus_seq <= ? AND bus_seq NOT IN ({','.join('?' * len(protected))})",
                (boundary, *protected),
            )
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('evicted_through', ?)", (str(boundary),))
        self._count -= cursor.rowcount
        self.evicted_through = boundary

    # ------------------------------------------------------------ reading

    def read_after(
        self, after_bus_seq: int, prefixes: tuple[str, ...], limit: int, scan_rows: int
    ) -> tuple[list[bytes], int]:
        """Matching payloads with bus_seq > after, in order. Returns (payloads, upto_bus_seq): every
        matching event up to upto_bus_seq is included.

        One call looks at no more than `scan_rows` journal positions, so a fetch for a rare topic
        over a long journal is answered in pages instead of stalling the broker. Topics are
        filtered in SQL: a non-matching row's payload (stored in overflow pages) is never read.
        """
        window_end = min(after_bus_seq + scan_rows, self.head)
        topic_filter, topic_params = _prefix_filter(prefixes)
        rows = self._db.execute(
            f"SELECT bus_seq, payload FROM events WHERE bus_seq > ? AND bus_seq <= ?{topic_filter} "
            "ORDER BY bus_seq LIMIT ?",
            (after_bus_seq, window_end, *topic_params, limit + 1),
        ).fetchall()
        if len(rows) > limit:
            # More matches than asked for: complete up to just before the first one left out.
            return [bytes(payload) for _, payload in rows[:limit]], rows[limit][0] - 1
        return [bytes(payload) for _, payload in rows], window_end

    def read_latest(self, prefixes: tuple[str, ...]) -> list[bytes]:
        seqs = sorted(seq for topic, seq in self.topic_last_bus_seq.items() if topic.startswith(prefixes))
        return [self._payload(seq) for seq in seqs]

    def matching_heads(self, prefixes: tuple[str, ...]) -> dict[str, int]:
        return {topic: seq for topic, seq in self.topic_heads.items() if topic.startswith(prefixes)}

    def close(self) -> None:
        if self._in_transaction:
            self.commit()
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    def _checkpoint_loop(self) -> None:
        """Copy the WAL into the database file once a second without blocking the writer (PASSIVE)."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_INTERVAL_S):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    # ------------------------------------------------------------ internals

    def _payload(self, bus_seq: int) -> bytes:
        row = self._db.execute("SELECT payload FROM events WHERE bus_seq = ?", (bus_seq,)).fetchone()
        return bytes(row[0])

    def _scalar(self, sql: str) -> int:
        return int(self._db.execute(sql).fetchone()[0])

    def _meta(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def _migrate(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        version = int(self._meta("schema_version", "0"))
        if version > JOURNAL_SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this hpcrl "
                f"({JOURNAL_SCHEMA_VERSION}): upgrade hpcrl or point broker.journal_path elsewhere"
            )
        if version == 0:
            self._db.executescript(
                """
                BEGIN;
                CREATE TABLE events(
                    bus_seq INTEGER PRIMARY KEY,
                    topic TEXT NOT NULL,
                    topic_seq INTEGER NOT NULL,
                    dedup_key TEXT NOT NULL UNIQUE,
                    payload BLOB NOT NULL
                );
                INSERT INTO meta(key, value) VALUES ('schema_version', '1');
                COMMIT;
                """
            )


def _prefix_filter(prefixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """SQL condition matching topics that start with any prefix, as index-friendly ranges
    (`"result."` -> `topic >= 'result.' AND topic < 'result/'`); "" matches everything."""
    if "" in prefixes:
        return "", []
    ranges, params = [], []
    for prefix in prefixes:
        ranges.append("(topic >= ? AND topic < ?)")
        params += [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
    return f" AND ({' OR '.join(ranges)})", params


def dedup_key_of_result(candidate_id: str) -> str:
    return f"result:{candidate_id}"


def dedup_key_of_message(message_id: str) -> str:
    return f"message:{message_id}"


def prefixes_tuple(prefixes: Iterable[str]) -> tuple[str, ...]:
    return tuple(prefixes) or ("",)
