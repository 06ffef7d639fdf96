"""`hpcrl archive` under the bus: real broker, archive and subscriber processes on loopback; results
stored exactly once across kill -9, stage changes seen by a real subscriber, confirmations measured
by a real bencher, and the read-only commands beside the running daemon."""

from __future__ import annotations

import csv
import io
import json
import signal
import sqlite3
import subprocess
import time

from archive.store import SCHEMA_VERSION, ArchiveStore
from bus.client import BusClient
from bus.schema import Archived, Result, Role, StageChange, Verdict
from tests.archive_support import IKJ, NAIVE, OPENMP_IKJ, result
from tests.conftest import HPCRL, REPO, BusSite, Processes, log_of, wait_for
from tests.test_bencher_daemon import start_bencher


def archive_env(site: BusSite, **settings: str) -> dict[str, str]:
    env = {**site.env, "HPCRL_ARCHIVE__DB_PATH": str(site.workdir / "archive.sqlite")}
    env.update({f"HPCRL_ARCHIVE__{key.upper()}": value for key, value in settings.items()})
    return env


def start_archive(processes: Processes, **settings: str) -> subprocess.Popen[bytes]:
    return processes.start("archive", env=archive_env(processes.site, **settings))


def publisher(site: BusSite) -> BusClient:
    return BusClient(site.bus_config, site.client_config, name="fake-bencher", role=Role.CLIENT, results=False)


def stored(site: BusSite) -> int:
    return len(stored_ids(site))


def stored_ids(site: BusSite) -> list[str]:
    """The candidate ids of the results in the site's archive (none while it has no store yet)."""
    path = site.workdir / "archive.sqlite"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return [row[0] for row in db.execute("SELECT candidate_id FROM results")]
    except sqlite3.OperationalError:
        return []


def publish(client: BusClient, results: list[Result]) -> None:
    fields = {name for name in Result.__struct_fields__} - {
        "id",
        "sender",
        "seq",
        "sent_at",
        "bus_seq",
        "topic_seq",
        "v",
    }
    for r in results:
        client.publish(Result, **{name: getattr(r, name) for name in fields})
    assert client.flush(30)


def hpcrl(site: BusSite, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HPCRL, *args], env=archive_env(site), capture_output=True, text=True, cwd=REPO, timeout=60)


def test_every_result_is_stored_once_across_kill_9_and_restart(site: BusSite, processes: Processes) -> None:
    processes.broker()
    archive = start_archive(processes, confirm="false")
    sources = [NAIVE, IKJ, OPENMP_IKJ]
    results = [result(sources[i % 3], gflops=1.0 + i % 7) for i in range(600)]
    with publisher(site) as client:
        publish(client, results[:300])
        wait_for(lambda: stored(site) >= 50, 30, "the archive to store results")
        archive.send_signal(signal.SIGKILL)  # mid-stream: some of the first 300 may not be stored yet
        archive.wait(10)
        publish(client, results[300:450])  # published while the archive is down
        start_archive(processes, confirm="false")
        publish(client, results[450:])
        wait_for(lambda: stored(site) == 600, 60, "all 600 results stored")
        publish(client, results[:10])  # duplicates (a resend after a lost ack looks like this)
        time.sleep(1.0)
    store = ArchiveStore(site.workdir / "archive.sqlite", readonly=True)
    assert store.count() == 600 and store.known([r.candidate_id for r in results]) == {r.candidate_id for r in results}
    assert store.verdict_counts() == {"ok": 600}
    assert "event=recovered" in log_of(site, "archive") and "event=started" in log_of(site, "archive")
    elites = {e.cell: e.objective for e in store.elites("dgemm")}
    assert elites == {"dgemm/512/none": 7.0, "dgemm/512/loop_order": 7.0, "dgemm/512/loop_order+openmp": 7.0}


def test_stage_changes_and_archived_events_reach_a_real_subscriber(site: BusSite, processes: Processes) -> None:
    processes.broker()
    start_archive(processes, confirm="false", max_results="20", plateau_window="1000")
    with BusClient(
        site.bus_config, site.client_config, name="watcher", subscribe=["stage.", "archive."], since=0
    ) as watcher:
        first = wait_for(lambda: [e for e in watcher.next_events(0.2) if isinstance(e, StageChange)], 30, "stage 1")
        assert first[0].to_stage == 1 and first[0].from_stage == 0  # type: ignore[index]
        with publisher(site) as client:
            publish(client, [result(IKJ, gflops=float(i % 5 + 1)) for i in range(45)])
        seen: list[object] = []
        wait_for(
            lambda: seen.extend(watcher.next_events(0.2)) or sum(isinstance(e, Archived) for e in seen) >= 45,
            30,
            "45 archived events",
        )
        changes = [e for e in seen if isinstance(e, StageChange)]
        wait_for(
            lambda: (
                changes.extend(e for e in watcher.next_events(0.2) if isinstance(e, StageChange)) or len(changes) >= 2
            ),
            10,
            "two stage changes",
        )
        assert [(c.from_stage, c.to_stage) for c in changes] == [(1, 2), (2, 3)]
        assert "budget" in changes[0].reason and "tiling" in changes[0].techniques
        archived = [e for e in seen if isinstance(e, Archived)]
        assert all(a.techniques == ["loop_order"] and a.cell == "dgemm/512/loop_order" for a in archived)
        # A trainer that starts now asks the bus for the current stage.
        latest = watcher.latest(["stage."], timeout_s=10)
        assert latest is not None and [e.to_stage for e in latest if isinstance(e, StageChange)] == [3]


def test_a_would_be_best_is_confirmed_by_a_real_bencher(site: BusSite, processes: Processes) -> None:
    processes.broker()
    start_bencher(processes, "b1", result_cache="true")
    start_archive(processes, confirm="true")
    lucky = result(IKJ, gflops=5000.0, size=128)  # an impossible figure, as from a broken timer
    with BusClient(site.bus_config, site.client_config, name="watcher", subscribe=["archive."], since=0) as watcher:
        with publisher(site) as client:
            publish(client, [lucky])
        seen: list[Archived] = []
        wait_for(
            lambda: seen.extend(e for e in watcher.next_events(0.2) if isinstance(e, Archived)) or len(seen) >= 2,
            60,
            "the result and its confirmation",
        )
    original, confirmation = seen[0], seen[1]
    assert original.candidate_id == lucky.candidate_id and original.status == "awaiting_confirmation"
    assert confirmation.confirmation_of == lucky.candidate_id and confirmation.verdict is Verdict.OK
    store = ArchiveStore(site.workdir / "archive.sqlite", readonly=True)
    (elite,) = store.elites()
    assert elite.candidate_id == lucky.candidate_id and 0 < elite.objective < 1000, "the measured figure, not 5000"
    measured = store.record(lucky.candidate_id + "~confirm")
    assert measured is not None and not measured.result.cached and measured.result.bencher_id == "b1"


def test_the_read_only_commands_work_beside_the_daemon(site: BusSite, processes: Processes) -> None:
    processes.broker()
    start_archive(processes, confirm="false")
    with publisher(site) as client:
        publish(client, [result(IKJ, gflops=3.0), result(NAIVE, gflops=1.0), result(IKJ, verdict=Verdict.CRASH)])
    wait_for(lambda: stored(site) == 3, 30, "three results stored")
    elites = [json.loads(line) for line in hpcrl(site, "elites", "--json").stdout.splitlines()]
    assert [(e["cell"], e["objective"]) for e in elites] == [("dgemm/512/loop_order", 3.0), ("dgemm/512/none", 1.0)]
    text = hpcrl(site, "elites").stdout
    assert "dgemm/512/loop_order" in text and "3.00 GFLOPS" in text
    stages = [json.loads(line) for line in hpcrl(site, "stages", "--json").stdout.splitlines()]
    current = stages[-1]
    assert (current["event"], current["problem"], current["stage"], current["results_in_stage"]) == (
        "current",
        "dgemm",
        1,
        3,
    )
    assert current["stats"]["num_elites"] == 2 and current["stats"]["obj_max"] == 3.0
    assert current["stage_stats"]["coverage"] == 2 / 4, "stage 1 permits loop_order and transpose: 2 of 4 sets"
    rows = hpcrl(site, "archive", "export", "--format", "jsonl").stdout.splitlines()
    assert len(rows) == 3 and {json.loads(r)["verdict"] for r in rows} == {"ok", "crash"}
    table = list(csv.DictReader(io.StringIO(hpcrl(site, "archive", "export", "--format", "csv").stdout)))
    assert len(table) == 3 and all("void dgemm" in row["source"] for row in table)
    # A backup taken while the daemon runs is a complete store of its own.
    copy = site.workdir / "backup" / "archive-copy.sqlite"
    copy.parent.mkdir()
    assert hpcrl(site, "archive", "backup", str(copy)).returncode == 0
    backed_up = ArchiveStore(copy, readonly=True)
    assert backed_up.count() == 3 and [e.cell for e in backed_up.elites()] == [e["cell"] for e in elites]
    backed_up.close()
    assert list(copy.parent.iterdir()) == [copy], "no partial file left beside the copy"
    onto_itself = hpcrl(site, "archive", "backup", str(site.workdir / "archive.sqlite"))
    assert onto_itself.returncode == 2 and "the archive itself" in onto_itself.stderr


def test_an_archive_of_a_newer_schema_stops_the_daemon_with_the_reason(site: BusSite, processes: Processes) -> None:
    path = site.workdir / "archive.sqlite"
    ArchiveStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    daemon = start_archive(processes)
    assert daemon.wait(30) == 2
    assert "upgrade hpcrl" in log_of(site, "archive")
    assert hpcrl(site, "elites").returncode == 2


def test_a_bad_archive_setting_stops_every_archive_command_with_the_fix(site: BusSite) -> None:
    env = {**archive_env(site), "HPCRL_ARCHIVE__PLATEAU_WINDOW": "0"}
    for command in (["archive"], ["elites"], ["stages"], ["archive", "export"]):
        done = subprocess.run([*HPCRL, *command], env=env, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert done.returncode == 2 and "archive.plateau_window" in done.stderr, (command, done.stderr)
    ladder = site.workdir / "hpcrl.toml"
    ladder.write_text('[[archive.stages]]\ntechniques = ["warp_speed"]\n')
    done = subprocess.run(
        [*HPCRL, "archive", "--config", str(ladder)], env=archive_env(site), capture_output=True, text=True, cwd=REPO,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown names ['warp_speed']" in done.stderr
