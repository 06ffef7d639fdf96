"""Nothing is lost: real broker and worker processes on loopback, killed and restarted mid-run."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

from bus.client import BusClient
from bus.config import BusConfig
from bus.schema import Result, StageChange, TrainerStep, Verdict
from tests.conftest import BusSite, Processes, free_port, scrape, wait_for

SOURCE = "void dgemm(int n, const double *A, const double *B, double *C) { /* %d */ }"


def client_for(site: BusSite, name: str = "test-client", **kwargs: object) -> BusClient:
    return BusClient(site.bus_config, site.client_config, name=name, **kwargs)  # type: ignore[arg-type]


def wait_workers(client: BusClient, count: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.workers_alive < count:
        assert time.monotonic() < deadline, f"broker reports {client.workers_alive} workers, expected {count}"
        client.pump(0.05)


def journaled_results(journal: Path) -> list[str]:
    """Candidate ids of every result in the broker's journal (read-only, while it runs)."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT dedup_key FROM events WHERE topic LIKE 'result.%' ORDER BY bus_seq").fetchall()
    return [key.removeprefix("result:") for (key,) in rows]


def submit_many(client: BusClient, count: int, start: int = 0) -> list[str]:
    return [
        client.submit(problem="dgemm", size=64, source=SOURCE % i).candidate_id for i in range(start, start + count)
    ]


def test_candidates_flow_through_the_broker_to_several_workers_and_back(site: BusSite, processes: Processes) -> None:
    processes.broker()
    for name in ("w1", "w2", "w3"):
        processes.worker(name, "--delay-s", "0.01")
    with client_for(site) as client:
        wait_workers(client, 3)
        ids = submit_many(client, 300)
        results = client.wait_results(ids, timeout_s=60)
    assert set(results) == set(ids)
    assert all(r.verdict is Verdict.INFRA_ERROR and r.bencher_id for r in results.values())
    assert {r.bencher_id for r in results.values()} == {"w1", "w2", "w3"}
    assert sorted(r.bus_seq for r in results.values()) == list(range(1, 301))
    assert sorted(journaled_results(site.journal)) == sorted(ids)


def test_a_slow_candidate_never_delays_work_an_idle_worker_could_take(site: BusSite, processes: Processes) -> None:
    processes.broker()
    processes.worker("slow", "--delay-s", "60")
    with client_for(site) as client:
        wait_workers(client, 1)
        slow_id = submit_many(client, 1)[0]
        processes.worker("fast")
        wait_workers(client, 2)
        started = time.monotonic()
        ids = submit_many(client, 40, start=1)
        results = client.wait_results(ids, timeout_s=20)
        elapsed = time.monotonic() - started
        assert set(results) == set(ids), f"only {len(results)} of 40 finished while one candidate was slow"
        assert {r.bencher_id for r in results.values()} == {"fast"}
        assert slow_id in client.pending  # still running on the slow worker, not holding anything up
    assert elapsed < 20


def test_kill_9_of_a_worker_holding_a_candidate_completes_it_elsewhere_exactly_once(
    site: BusSite, processes: Processes
) -> None:
    metrics_port = free_port()
    processes.broker("--metrics-port", str(metrics_port))
    victim = processes.worker("victim", "--delay-s", "60")
    with client_for(site) as client:
        wait_workers(client, 1)
        cid = submit_many(client, 1)[0]
        wait_for(lambda: scrape(metrics_port).get("hpcrl_bus_dispatches_total", 0) >= 1, 10, "the victim to hold it")
        processes.worker("rescuer")
        wait_workers(client, 2)
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        result = client.wait_result(cid, timeout_s=20)
    assert result is not None and result.bencher_id == "rescuer"
    assert journaled_results(site.journal) == [cid]
    assert scrape(metrics_port)['hpcrl_bus_requeued_candidates_total{reason="worker_lost"}'] == 1


def test_broker_restart_mid_run_loses_nothing_pending(site: BusSite, processes: Processes) -> None:
    broker = processes.broker()
    processes.worker("w1", "--delay-s", "0.02")
    processes.worker("w2", "--delay-s", "0.02")
    with client_for(site) as client:
        wait_workers(client, 2)
        ids = submit_many(client, 150)
        first = client.wait_results(ids, timeout_s=0.0)
        wait_for(lambda: len(journaled_results(site.journal)) >= 30, 30, "30 results before the crash")
        broker.send_signal(signal.SIGKILL)
        broker.wait(5)
        processes.broker()  # same ports, same journal
        results = client.wait_results(ids, timeout_s=60)
    assert set(results) == set(ids), f"{len(set(ids) - set(results))} candidates lost across the restart"
    assert first == {}  # nothing completed before we started waiting: the crash really was mid-run
    journal = journaled_results(site.journal)
    assert sorted(journal) == sorted(ids), "every candidate has exactly one result in the journal"


def test_a_subscriber_killed_and_restarted_mid_stream_ends_with_every_event_exactly_once(
    site: BusSite, processes: Processes, tmp_path: Path
) -> None:
    processes.broker()
    first_out = tmp_path / "first.jsonl"
    with client_for(site, "publisher", results=False) as publisher:
        subscriber = processes.start("tail", "--topic", "trainer.", "--since", "0", stdout=first_out)
        for step in range(150):
            publisher.publish(TrainerStep, run="r", step=step, loss=float(step))
            publisher.pump(0.002)
        assert publisher.flush(10)
        wait_for(lambda: len(_lines(first_out)) >= 50, 20, "the subscriber to print 50 events")
        subscriber.send_signal(signal.SIGKILL)
        subscriber.wait(5)
        seen_first = _lines(first_out)
        for step in range(150, 300):
            publisher.publish(TrainerStep, run="r", step=step, loss=float(step))
            publisher.pump(0.002)
        assert publisher.flush(10)
        resume_from = seen_first[-1]["bus_seq"]
        second_out = tmp_path / "second.jsonl"
        processes.start(
            "tail",
            "--topic",
            "trainer.",
            "--since",
            str(resume_from),
            "--count",
            str(300 - len(seen_first)),
            stdout=second_out,
        ).wait(30)
    steps = [e["step"] for e in seen_first + _lines(second_out)]
    assert steps == list(range(300))


def test_a_subscriber_that_falls_behind_recovers_every_event_from_the_journal(
    site: BusSite, processes: Processes
) -> None:
    # A tiny send queue in the broker makes it drop events for a subscriber that does not read.
    processes.broker_env(HPCRL_BUS__SEND_HWM="20")
    small = BusConfig(**{**site.bus_config.__dict__, "receive_hwm": 20})
    with BusClient(small, site.client_config, name="sleepy", subscribe=["stage."], results=False) as subscriber:
        subscriber.next_events(timeout_s=0.5)  # connected and in sync
        with client_for(site, "publisher", results=False) as publisher:
            for i in range(2000):
                publisher.publish(StageChange, problem=f"p{i % 3}", from_stage=i, to_stage=i + 1, reason="x" * 2000)
                if i % 50 == 0:
                    publisher.pump(0.0)
            assert publisher.flush(30)
        received = []
        deadline = time.monotonic() + 60
        while len(received) < 2000 and time.monotonic() < deadline:
            received += subscriber.next_events(timeout_s=0.5)
    by_topic: dict[str, list[int]] = {}
    for event in received:
        by_topic.setdefault(event.topic, []).append(event.topic_seq)
    assert len(received) == 2000
    assert sorted(e.from_stage for e in received) == list(range(2000))  # type: ignore[attr-defined]
    assert {t: s == list(range(1, len(s) + 1)) for t, s in by_topic.items()} == dict.fromkeys(
        ("stage.p0", "stage.p1", "stage.p2"), True
    ), "each topic arrives complete and in topic order"
    recovered = scrape_client_metric("hpcrl_bus_events_delivered_total", 'path="recovered"')
    assert recovered > 0, "the test did not make the broker drop anything; it proves nothing"


def test_a_candidate_whose_result_is_already_journaled_is_answered_from_the_journal(
    site: BusSite, processes: Processes
) -> None:
    processes.broker()
    processes.worker("w1")
    with client_for(site, "first") as first:
        wait_workers(first, 1)
        cid = submit_many(first, 1)[0]
        original = first.wait_result(cid, timeout_s=10)
    assert original is not None
    # A restarted trainer re-submits the same candidate id: it is not benchmarked again.
    with client_for(site, "second") as second:
        again = second.submit(problem="dgemm", size=64, source=SOURCE % 0, candidate_id=cid)
        result = second.wait_result(again.candidate_id, timeout_s=10)
    assert result == original
    assert journaled_results(site.journal) == [cid]


def test_the_submitter_gives_up_after_max_attempts_with_an_infra_error_result(
    site: BusSite, processes: Processes
) -> None:
    processes.broker()
    config = BusConfig(**site.bus_config.__dict__)
    from bus.config import ClientConfig

    impatient = ClientConfig(result_timeout_s=0.5, max_attempts=2, ack_timeout_s=1.0)
    with BusClient(config, impatient, name="impatient") as client:
        cid = submit_many(client, 1)[0]  # no worker: it can never finish
        result = client.wait_result(cid, timeout_s=10)
        assert client.flush(5)
    assert isinstance(result, Result) and result.verdict is Verdict.INFRA_ERROR
    assert "gave up" in result.detail and result.attempt == 2
    assert journaled_results(site.journal) == [cid]


def _lines(path: Path) -> list[dict[str, object]]:
    """The complete lines a running (or killed) subscriber has printed: its last line may be half-written."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def scrape_client_metric(name: str, labels: str) -> float:
    from prometheus_client import REGISTRY

    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == name and all(f'{k}="{v}"' in labels for k, v in sample.labels.items()):
                return float(sample.value)
    raise AssertionError(f"metric {name}{{{labels}}} not found")
