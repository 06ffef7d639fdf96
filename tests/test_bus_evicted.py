"""A follower that resumes after the journal evicted what it wanted is told so: the range lost, how
many events, logged and counted. Never a silent hole (issue 11, section 4).

The set-up of every test: a broker keeping 100 events, 150 trainer steps published one per commit.
Retention then evicted bus_seq 1 to 55 (a tenth at a time whenever a commit leaves more than 100,
docs/protocol.md 8.5) and keeps 56 to 150.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from prometheus_client import REGISTRY

from bus.schema import TrainerStep
from bus.stream import EventsLost
from tests.conftest import HPCRL, REPO, BusSite, Processes
from tests.test_reliability import client_for

PUBLISHED = 150
EVICTED_THROUGH = 55


@pytest.fixture
def evicted_journal(site: BusSite, processes: Processes) -> None:
    processes.broker_env(HPCRL_BROKER__JOURNAL_MAX_EVENTS="100")
    with client_for(site, "publisher", results=False) as publisher:
        for step in range(PUBLISHED):  # one per broker commit, so that retention runs at known heads
            publisher.publish(TrainerStep, run="r", step=step)
            assert publisher.flush(10)


def follow_everything(site: BusSite, since: int, prefixes: list[str]) -> tuple[list[int], list[EventsLost]]:
    """bus_seqs delivered and losses reported to a follower replaying from `since` until it has caught up."""
    delivered: list[int] = []
    losses: list[EventsLost] = []
    with client_for(site, "late", subscribe=prefixes, since=since, results=False) as late:
        for _ in range(100):
            delivered += [e.bus_seq for e in late.next_events(timeout_s=0.3) if e.bus_seq]
            losses += late.take_losses()
            if delivered and delivered[-1] == PUBLISHED and late.cursor >= PUBLISHED:
                break
        losses += late.take_losses()
    return delivered, losses


def lost_metric() -> float:
    return REGISTRY.get_sample_value("hpcrl_bus_events_lost_total") or 0.0


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("evicted_journal")
def test_a_replay_from_since_inside_the_evicted_range_reports_every_lost_event(site: BusSite) -> None:
    before = lost_metric()
    delivered, losses = follow_everything(site, since=5, prefixes=[""])
    assert delivered == list(range(EVICTED_THROUGH + 1, PUBLISHED + 1))
    assert losses == [EventsLost(topic="", after_bus_seq=5, through_bus_seq=EVICTED_THROUGH, count=50, exact=True)]
    assert lost_metric() - before == 50


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("evicted_journal")
def test_a_filtered_replay_reports_the_lost_range_with_an_upper_bound(site: BusSite) -> None:
    """Filtered by topic, the follower cannot know how many of the evicted positions were its topics';
    it reports the range and at most how many (here exactly the 50 trainer steps)."""
    delivered, losses = follow_everything(site, since=5, prefixes=["trainer."])
    assert delivered == list(range(EVICTED_THROUGH + 1, PUBLISHED + 1))
    assert losses == [EventsLost(topic="", after_bus_seq=5, through_bus_seq=EVICTED_THROUGH, count=50, exact=False)]


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("evicted_journal")
def test_a_replay_from_since_past_the_evicted_range_reports_nothing(site: BusSite) -> None:
    delivered, losses = follow_everything(site, since=EVICTED_THROUGH, prefixes=[""])
    assert delivered == list(range(EVICTED_THROUGH + 1, PUBLISHED + 1))
    assert losses == []


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("evicted_journal")
def test_a_full_replay_reports_the_evicted_head_of_each_topic_as_data(site: BusSite) -> None:
    delivered, losses = follow_everything(site, since=0, prefixes=["trainer."])
    assert delivered == list(range(EVICTED_THROUGH + 1, PUBLISHED + 1))
    assert losses == [
        EventsLost(topic="trainer.step", after_bus_seq=0, through_bus_seq=EVICTED_THROUGH, count=55, exact=True)
    ]


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("evicted_journal")
def test_hpcrl_tail_says_which_events_were_lost_and_exits_3(site: BusSite) -> None:
    tail = subprocess.run(
        [*HPCRL, "tail", "--since", "5", "--idle-exit-s", "2"],
        env=site.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=40,
    )
    printed = [line for line in tail.stdout.splitlines() if line.strip()]
    assert len(printed) == PUBLISHED - EVICTED_THROUGH
    assert "50 event(s) lost of the followed topics" in tail.stderr, tail.stderr
    assert "bus_seq 6 to 55" in tail.stderr, tail.stderr
    assert tail.returncode == 3, tail.stderr


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("evicted_journal")
def test_hpcrl_tail_exits_0_when_nothing_was_lost(site: BusSite) -> None:
    tail = subprocess.run(
        [*HPCRL, "tail", "--since", "60", "--idle-exit-s", "2"],
        env=site.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert tail.returncode == 0, tail.stderr
    assert "lost" not in tail.stderr


@pytest.mark.timeout(120)
def test_the_archive_resuming_after_eviction_logs_the_results_it_lost(site: BusSite, processes: Processes) -> None:
    import signal

    from bus.schema import Verdict
    from tests.archive_support import result
    from tests.conftest import log_of, wait_for
    from tests.test_archive_daemon import publish, publisher, start_archive, stored

    processes.broker_env(HPCRL_BROKER__JOURNAL_MAX_EVENTS="100")
    archive = start_archive(processes)
    with publisher(site) as bencher:
        publish(bencher, [result(verdict=Verdict.COMPILE_ERROR) for _ in range(5)])
        wait_for(lambda: stored(site) == 5, 30, "the archive to store the first results")
        archive.send_signal(signal.SIGTERM)
        assert archive.wait(30) == 0
        for _ in range(PUBLISHED):  # while the archive is down: retention evicts most of them
            publish(bencher, [result(verdict=Verdict.COMPILE_ERROR)])
    start_archive(processes)
    wait_for(lambda: "event=results_lost" in log_of(site, "archive"), 30, "the archive to report its loss")
    line = next(line for line in log_of(site, "archive").splitlines() if "event=results_lost" in line)
    assert "topic=* " in line and "exact=False" in line
    count = int(line.split("count=")[1].split()[0])
    after_loss = wait_for(
        lambda: re.search(r"event=ingest new=(\d+)", log_of(site, "archive").split("event=results_lost")[1]),
        30,
        "the archive to store what was left",
    )
    new = int(after_loss.group(1))  # type: ignore[attr-defined]
    wait_for(lambda: stored(site) == 5 + new, 30, "the archive to commit them")
    lost = PUBLISHED - new
    assert 0 < lost <= count, f"{lost} results lost, the archive reported {count} at most: {line}"


@pytest.mark.timeout(90)
def test_the_example_follower_resuming_inside_the_evicted_range_says_how_many_it_lost(
    site: BusSite, processes: Processes
) -> None:
    """examples/follow_results.py (a client written from docs/protocol.md alone) applies the same rule."""

    from bus.schema import Result, Verdict
    from tests.test_example_scripts import FOLLOW_RESULTS, script_args

    processes.broker_env(HPCRL_BROKER__JOURNAL_MAX_EVENTS="100")
    with client_for(site, "fake-bencher", results=False) as bencher:
        for index in range(PUBLISHED):
            bencher.publish(
                Result, candidate_id=f"c{index}", run="r", problem="dgemm", size=64, source="", verdict=Verdict.OK
            )
            assert bencher.flush(10)
    args = script_args(FOLLOW_RESULTS, site, "--since", "5", "--count", str(PUBLISHED - EVICTED_THROUGH))
    follower = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert follower.returncode == 0, follower.stderr
    assert len(follower.stdout.splitlines()) == PUBLISHED - EVICTED_THROUGH
    assert "up to 50 event(s) of result.* (bus_seq 6 to 55) were evicted" in follower.stderr, follower.stderr
    assert "50 lost" in follower.stderr
