"""Client library behaviour beyond submit/wait: snapshots of current state, collecting results in
any order, and what a subscriber learns when the journal's retention dropped events."""

from __future__ import annotations

from bus.client import BusClient
from bus.schema import StageChange, TrainerStep
from tests.conftest import BusSite, Processes
from tests.test_reliability import client_for, submit_many, wait_workers


def publish_stages(client: BusClient, problems: list[str], stages: int) -> None:
    for stage in range(stages):
        for problem in problems:
            client.publish(StageChange, problem=problem, from_stage=stage, to_stage=stage + 1, reason="test")
    assert client.flush(10)


def test_latest_returns_the_current_stage_of_every_problem_even_after_retention(
    site: BusSite, processes: Processes
) -> None:
    processes.broker_env(HPCRL_BROKER__JOURNAL_MAX_EVENTS="100")
    with client_for(site, "archive", results=False) as archive:
        publish_stages(archive, ["dgemm", "spmv", "jacobi"], stages=4)
        for step in range(400):  # push the stage events far out of the 100-event retention window
            archive.publish(TrainerStep, run="r", step=step)
        assert archive.flush(20)
    with client_for(site, "trainer", results=False) as trainer:
        snapshot = trainer.latest(["stage."], timeout_s=10)
    assert snapshot is not None
    assert sorted((e.problem, e.to_stage) for e in snapshot) == [("dgemm", 4), ("jacobi", 4), ("spmv", 4)]  # type: ignore[attr-defined]


def test_a_full_replay_reports_events_lost_to_retention(site: BusSite, processes: Processes) -> None:
    from prometheus_client import REGISTRY

    processes.broker_env(HPCRL_BROKER__JOURNAL_MAX_EVENTS="100")
    with client_for(site, "publisher", results=False) as publisher:
        publish_stages(publisher, ["dgemm"], stages=5)
        for step in range(300):
            publisher.publish(TrainerStep, run="r", step=step)
        assert publisher.flush(20)
    lost_before = REGISTRY.get_sample_value("hpcrl_bus_events_lost_total") or 0.0
    with client_for(site, "late", subscribe=["stage."], since=0, results=False) as late:
        events = late.next_events(timeout_s=10)
    assert [(e.topic_seq, e.to_stage) for e in events] == [(5, 5)]  # type: ignore[attr-defined]
    assert (REGISTRY.get_sample_value("hpcrl_bus_events_lost_total") or 0.0) - lost_before == 4


def test_collect_results_returns_each_result_once_in_arrival_order(site: BusSite, processes: Processes) -> None:
    processes.broker()
    processes.worker("w1")
    with client_for(site) as client:
        wait_workers(client, 1)
        ids = submit_many(client, 20)
        collected: dict[str, object] = {}
        for _ in range(100):
            batch = client.collect_results(timeout_s=0.5)
            assert not set(batch) & set(collected), "a result was returned twice"
            collected.update(batch)
            if len(collected) == len(ids):
                break
        assert set(collected) == set(ids)
        assert client.collect_results(timeout_s=0.2) == {}
        assert client.pending == {}


def test_the_cursor_covers_every_event_delivered_and_a_restart_from_it_misses_nothing(
    site: BusSite, processes: Processes
) -> None:
    from tests.conftest import wait_for

    processes.broker()
    with client_for(site, "publisher", results=False) as publisher:
        publish_stages(publisher, ["dgemm"], stages=3)
        with client_for(site, "reader", subscribe=["stage."], since=0, results=False) as reader:
            first = reader.next_events(timeout_s=10)
            wait_for(lambda: reader.pump(0.05) or reader.cursor >= first[-1].bus_seq, 10, "the cursor to advance")
            cursor = reader.cursor
        publish_stages(publisher, ["dgemm"], stages=2)
    with client_for(site, "reader-again", subscribe=["stage."], since=cursor, results=False) as again:
        later = again.next_events(timeout_s=10)
    assert [e.topic_seq for e in first + later] == [1, 2, 3, 4, 5]


def test_a_client_knows_which_workers_are_alive(site: BusSite, processes: Processes) -> None:
    import signal

    from tests.conftest import wait_for

    processes.broker()
    processes.worker("bencher-a")
    doomed = processes.worker("bencher-b")
    with client_for(site) as client:
        wait_for(lambda: client.pump(0.05) or client.worker_names == ["bencher-a", "bencher-b"], 15, "both workers")
        doomed.send_signal(signal.SIGKILL)
        wait_for(lambda: client.pump(0.05) or client.worker_names == ["bencher-a"], 15, "the dead one to go")
        assert client.workers_alive == 1
