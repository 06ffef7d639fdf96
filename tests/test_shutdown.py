"""Clean shutdown: SIGTERM (and SIGINT) make every daemon drain, close and exit 0 within seconds;
a worker stopped mid-candidate hands the candidate back so another worker completes it."""

from __future__ import annotations

import signal
import subprocess
import time

from bus.client import BusClient
from bus.schema import StageChange, Verdict
from tests.conftest import BusSite, Processes, free_port, log_of, scrape, wait_for

SOURCE = "void dgemm(int n, const double *A, const double *B, double *C) { }"
EXIT_WITHIN_S = 5.0
"""A daemon asked to stop has this long to exit (the worker's own ack wait is bounded at 2 s)."""
REQUEUED = "hpcrl_bus_requeued_candidates_total"


def client_for(site: BusSite, name: str = "shutdown-test", **kwargs: object) -> BusClient:
    return BusClient(site.bus_config, site.client_config, name=name, **kwargs)  # type: ignore[arg-type]


def wait_serving(client: BusClient, workers: int = 0, timeout_s: float = 15.0) -> None:
    """Until the broker's own heartbeat reached the client (so its main loop, and the signal
    handler installed before it, are running) and it reports `workers` live workers."""
    wait_for(
        lambda: client.pump(0.05) or (client.conn.broker_heartbeat is not None and client.workers_alive == workers),
        timeout_s,
        f"the broker to serve with {workers} worker(s)",
    )


def stop_with(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> tuple[int, float]:
    """Send the signal; return (exit code, seconds it took). Fails the test if it never exits."""
    started = time.monotonic()
    process.send_signal(signum)
    code = process.wait(EXIT_WITHIN_S)
    return code, time.monotonic() - started


def test_sigterm_stops_the_broker_with_exit_0(site: BusSite, processes: Processes) -> None:
    broker = processes.broker()
    with client_for(site) as client:
        wait_serving(client)
        code, took_s = stop_with(broker)
    assert code == 0, log_of(site, "bus")
    assert took_s < EXIT_WITHIN_S
    assert "broker stopped" in log_of(site, "bus")


def test_sigint_stops_the_broker_with_exit_0(site: BusSite, processes: Processes) -> None:
    broker = processes.broker()
    with client_for(site) as client:
        wait_serving(client)
        code, _ = stop_with(broker, signal.SIGINT)
    assert code == 0, log_of(site, "bus")
    assert "KeyboardInterrupt" not in log_of(site, "bus")


def test_sigterm_stops_an_idle_test_worker_with_exit_0_and_the_broker_forgets_it_at_once(
    site: BusSite, processes: Processes
) -> None:
    processes.broker()
    worker = processes.worker("idle")
    with client_for(site) as client:
        wait_serving(client, workers=1)
        code, _ = stop_with(worker)
        assert code == 0, log_of(site, "test-worker")
        wait_serving(client, workers=0)
    # Its goodbye heartbeat removed it, rather than the liveness timeout after it fell silent.
    assert "name=idle role=bencher why=stopping" in log_of(site, "bus")


def test_sigterm_stops_tail_with_exit_0(site: BusSite, processes: Processes) -> None:
    processes.broker()
    tail = processes.start("tail", "--topic", "stage.", "--since", "0")  # replays it, however late tail starts
    with client_for(site, results=False) as client:
        wait_serving(client)
        # Only once tail has printed an event is it certainly inside its loop, signal handler set.
        client.publish(StageChange, problem="dgemm", from_stage=0, to_stage=1)
        wait_for(lambda: client.pump(0.05) or '"stage_change"' in log_of(site, "tail"), 15, "tail to print the event")
        code, _ = stop_with(tail)
    assert code == 0, log_of(site, "tail")


def test_sigterm_of_a_worker_mid_candidate_releases_it_to_the_next_worker(site: BusSite, processes: Processes) -> None:
    metrics_port = free_port()
    processes.broker("--metrics-port", str(metrics_port))
    slow = processes.worker("slow", "--delay-s", "30")
    with client_for(site) as client:
        wait_serving(client, workers=1)
        cid = client.submit(problem="dgemm", size=64, source=SOURCE).candidate_id
        wait_for(
            lambda: client.pump(0.05) or scrape(metrics_port)["hpcrl_bus_dispatches_total"] >= 1,
            10,
            "the slow worker to hold the candidate",
        )

        code, took_s = stop_with(slow)
        assert code == 0, log_of(site, "test-worker")
        assert took_s < EXIT_WITHIN_S, "the worker waited for its 30 s candidate instead of releasing it"
        wait_for(
            lambda: scrape(metrics_port)[f'{REQUEUED}{{reason="released"}}'] == 1,
            10,
            "the candidate to come back through a Release",
        )
        assert scrape(metrics_port)[f'{REQUEUED}{{reason="worker_lost"}}'] == 0

        processes.worker("next")
        result = client.wait_result(cid, timeout_s=15)
    assert result is not None, "the released candidate was never completed"
    assert result.verdict is Verdict.INFRA_ERROR
    assert result.bencher_id == "next"
    assert scrape(metrics_port)["hpcrl_bus_dispatches_total"] == 2
