"""The broker's replay journal on a real SQLite file: numbering, de-duplication, paged and
filtered reads, retention, restart, and refusing a newer schema."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from bus.journal import Journal, JournalError


def payload_for(topic: str, bus_seq: int, topic_seq: int) -> bytes:
    return f"{topic}|{bus_seq}|{topic_seq}".encode()


def fill(journal: Journal, topics: list[str]) -> None:
    for index, topic in enumerate(topics):
        journal.append(topic, f"k{journal.head + 1}-{index}", lambda b, t, topic=topic: payload_for(topic, b, t))
    journal.commit()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(str(tmp_path / "j.sqlite"), max_events=1000, sync="normal")


def test_events_are_numbered_globally_and_per_topic(journal: Journal) -> None:
    fill(journal, ["result.a", "stage.a", "result.a", "result.b"])
    payloads, upto = journal.read_after(0, ("",), limit=10, scan_rows=100)
    assert payloads == [b"result.a|1|1", b"stage.a|2|1", b"result.a|3|2", b"result.b|4|1"]
    assert upto == journal.head == 4
    assert journal.topic_heads == {"result.a": 2, "stage.a": 1, "result.b": 1}


def test_a_repeated_dedup_key_returns_the_first_position_and_stores_nothing(journal: Journal) -> None:
    first = journal.append("result.a", "result:c1", lambda b, t: b"first")
    again = journal.append("result.a", "result:c1", lambda b, t: b"second")
    journal.commit()
    assert first == (1, True) and again == (1, False)
    assert journal.read_after(0, ("",), 10, 100)[0] == [b"first"]


def test_reads_filter_by_prefix_and_page_with_a_complete_upto(journal: Journal) -> None:
    fill(journal, ["result.a", "stage.a", "result.ab", "stage.b", "result.a", "trainer.step"])
    payloads, upto = journal.read_after(0, ("stage.",), limit=1, scan_rows=100)
    assert payloads == [b"stage.a|2|1"] and upto == 3  # complete through 3: the next stage event is 4
    payloads, upto = journal.read_after(upto, ("stage.",), limit=1, scan_rows=100)
    assert payloads == [b"stage.b|4|1"] and upto == 6
    assert journal.read_after(0, ("result.a",), 10, 100)[0] == [b"result.a|1|1", b"result.ab|3|1", b"result.a|5|2"]
    assert journal.read_after(0, ("result.", "trainer."), 10, 100)[0][-1] == b"trainer.step|6|1"


def test_a_read_looks_at_a_bounded_window_of_positions(journal: Journal) -> None:
    fill(journal, ["trainer.step"] * 50 + ["stage.a"])
    payloads, upto = journal.read_after(0, ("stage.",), limit=10, scan_rows=20)
    assert (payloads, upto) == ([], 20)
    payloads, upto = journal.read_after(40, ("stage.",), limit=10, scan_rows=20)
    assert (payloads, upto) == ([b"stage.a|51|1"], 51)


def test_retention_evicts_old_events_but_keeps_the_newest_of_every_topic(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "j.sqlite"), max_events=100, sync="normal")
    fill(journal, ["stage.a"] + ["trainer.step"] * 120)
    assert journal.evicted_through > 1
    assert journal.read_latest(("stage.",)) == [b"stage.a|1|1"]
    payloads, _ = journal.read_after(0, ("",), limit=1000, scan_rows=1000)
    assert payloads[0] == b"stage.a|1|1" and len(payloads) < 121


def test_a_restarted_journal_continues_the_numbering(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    first = Journal(path, 1000, "normal")
    fill(first, ["result.a", "result.a", "stage.a"])
    first.close()
    second = Journal(path, 1000, "full")
    assert (second.head, second.topic_heads) == (3, {"result.a": 2, "stage.a": 1})
    assert second.append("result.a", "new", lambda b, t: payload_for("result.a", b, t)) == (4, True)
    second.close()


def test_a_journal_from_a_newer_hpcrl_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    Journal(str(path), 1000, "normal").close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(JournalError, match="newer than this hpcrl"):
        Journal(str(path), 1000, "normal")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("99",)


def test_the_broker_refuses_a_newer_journal_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO, free_port

    path = tmp_path / "j.sqlite"
    Journal(str(path), 1000, "normal").close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "bus", "--journal", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "HPCRL_BUS__REQUEST_ENDPOINT": f"tcp://127.0.0.1:{free_port()}",
            "HPCRL_BUS__EVENT_ENDPOINT": f"tcp://127.0.0.1:{free_port()}",
        },
    )
    assert done.returncode == 2
    assert "schema version 99" in done.stderr and "Traceback" not in done.stderr
