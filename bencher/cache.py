"""The result cache: a candidate measured before on this node class is answered without running it.

Keyed by the build key (the exact bytes of the source, never a normal form of them; compiler identity,
flags, harness and checks), the size and the node class, and kept in SQLite, so it survives restarts
and can be shared by the benchers of one node. Only deterministic verdicts are stored: infra errors,
timeouts and resource limits are measured again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from bus.schema import Verdict

CACHED_VERDICTS = frozenset({Verdict.OK, Verdict.COMPILE_ERROR, Verdict.REJECTED, Verdict.WRONG_ANSWER})


def result_key(build_key: str, size: int, node_class: str) -> str:
    """`build_key` is Builder.build_key: two sources share a result only if gcc read the same bytes."""
    return hashlib.sha256(f"{build_key}\0{size}\0{node_class}".encode()).hexdigest()


class ResultCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per thread that uses it; WAL lets several benchers of a node share the file.
        self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, stored_at REAL, fields TEXT)")

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT fields FROM results WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, verdict: Verdict, fields: dict[str, Any]) -> None:
        if verdict in CACHED_VERDICTS:
            self.db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                (key, time.time(), json.dumps(fields, sort_keys=True)),
            )

    def close(self) -> None:
        self.db.close()
