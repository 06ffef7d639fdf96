"""What becomes of a candidate in the broker when its submitter gives up (docs/protocol.md 8.7): a
queued one never runs; a running one finishes, its result is dropped as a duplicate, and its worker
gets its slot back."""

from __future__ import annotations

import pytest

from bus.client import BusClient
from bus.config import ClientConfig
from bus.schema import Verdict
from tests.conftest import BusSite, Processes, scrape, wait_for
from tests.test_bus_refusals import broker_with_metrics
from tests.test_reliability import SOURCE, client_for, journaled_results, wait_workers

IMPATIENT = ClientConfig(ack_timeout_s=1.0, result_timeout_s=0.5, max_attempts=1)
"""A submitter that gives up half a second after the broker acknowledged its candidate."""


def give_up_on_one(site: BusSite) -> str:
    with BusClient(site.bus_config, IMPATIENT, name="impatient") as impatient:
        cid = impatient.submit(problem="dgemm", size=64, source=SOURCE % 0).candidate_id
        result = impatient.wait_result(cid, timeout_s=15)
        assert result is not None and result.verdict is Verdict.INFRA_ERROR
        assert "gave up" in result.detail
        assert impatient.flush(10), "the give-up result was not journaled"
    return cid


@pytest.mark.timeout(90)
def test_a_queued_candidate_whose_submitter_gave_up_never_runs(site: BusSite, processes: Processes) -> None:
    metrics_port = broker_with_metrics(processes)
    given_up = give_up_on_one(site)  # no worker yet: it was still queued
    processes.worker("late")
    with client_for(site) as client:
        wait_workers(client, 1)
        cid = client.submit(problem="dgemm", size=64, source=SOURCE % 1).candidate_id
        result = client.wait_result(cid, timeout_s=15)
    assert result is not None and result.bencher_id == "late"
    assert scrape(metrics_port)["hpcrl_bus_dispatches_total"] == 1, "the given-up candidate was dispatched"
    assert journaled_results(site.journal) == [given_up, cid]


@pytest.mark.timeout(90)
def test_a_worker_running_a_candidate_whose_submitter_gave_up_gets_its_slot_back(
    site: BusSite, processes: Processes
) -> None:
    metrics_port = broker_with_metrics(processes)
    processes.worker("slow", "--delay-s", "2")  # one slot
    with client_for(site) as watcher:
        wait_workers(watcher, 1)
    given_up = give_up_on_one(site)  # the worker holds it for 2 s; the submitter gives up after 0.5 s
    wait_for(
        lambda: scrape(metrics_port)['hpcrl_bus_duplicates_dropped_total{kind="result"}'] >= 1,
        15,
        "the worker's late result to arrive (and be dropped as a duplicate)",
    )
    with client_for(site) as client:
        cid = client.submit(problem="dgemm", size=64, source=SOURCE % 1).candidate_id
        result = client.wait_result(cid, timeout_s=10)
    assert result is not None, "the worker never got another candidate: its slot was not returned"
    assert result.bencher_id == "slow"
    assert journaled_results(site.journal) == [given_up, cid]
