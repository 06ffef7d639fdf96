"""What a sender learns when the broker cannot use what it sent: a readable refusal (`ack` entry
`rejected` with a reason) instead of silence, and never an endless re-send (issue 11, section 4).
"""

from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from bus import protocol
from bus.client import BusClient
from bus.config import ClientConfig
from bus.schema import MAX_SOURCE_BYTES, Result, StageChange, TrainerStep, Verdict
from bus.worker import BusWorker
from tests.conftest import BusSite, Processes, free_port, scrape, wait_for
from tests.test_reliability import client_for

SOURCE = "void dgemm(int n, const double *A, const double *B, double *C) { }"


def broker_with_metrics(processes: Processes) -> int:
    port = free_port()
    processes.broker("--metrics-port", str(port))
    wait_for(lambda: _scrape_or_none(port), 15, "the broker's metrics endpoint")
    return port


def _scrape_or_none(port: int) -> dict[str, float] | None:
    try:
        return scrape(port)
    except OSError:
        return None


@pytest.mark.timeout(60)
def test_the_broker_answers_a_malformed_candidate_with_a_rejected_ack_naming_the_field(
    site: BusSite, processes: Processes
) -> None:
    """On the wire, as a client written from docs/protocol.md sees it."""
    processes.broker()
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    try:
        dealer.connect(f"tcp://127.0.0.1:{site.request_port}")
        candidate = {
            "kind": "candidate", "v": 1, "id": "c-1", "sender": "c-client", "seq": 1, "sent_at": time.time(),
            "candidate_id": "cid-1", "run": "r", "problem": "Not A Problem", "size": 64, "source": SOURCE,
        }  # fmt: skip
        dealer.send(msgpack.packb(candidate))
        entries = []
        deadline = time.monotonic() + 10
        while not entries and time.monotonic() < deadline:
            if dealer.poll(200):
                reply = msgpack.unpackb(dealer.recv())
                if reply["kind"] == "ack":
                    entries = reply["entries"]
        assert [(e["ref"], e["status"]) for e in entries] == [("c-1", "rejected")]
        assert "problem" in entries[0]["reason"]
    finally:
        dealer.close()
        ctx.term()


@pytest.mark.timeout(60)
def test_a_malformed_event_is_refused_reported_to_the_publisher_and_sent_once(
    site: BusSite, processes: Processes
) -> None:
    metrics_port = broker_with_metrics(processes)
    with client_for(site, "archive", results=False) as archive:
        # Connected first: a message sent just before the connection is seen goes out again with it.
        wait_for(lambda: archive.pump(0.05) or archive.conn.connected, 15, "the connection")
        archive.publish(StageChange, problem="Bad-Name", from_stage=0, to_stage=1)
        assert archive.flush(10), "a refused event still waits for an ack"
        failed = archive.take_failed()
        assert [(f.kind, f.status) for f in failed] == [("stage_change", "rejected")]
        assert "problem" in failed[0].reason
        deadline = time.monotonic() + 3 * site.client_config.ack_timeout_s
        while time.monotonic() < deadline:
            archive.pump(0.05)
    assert scrape(metrics_port)['hpcrl_bus_malformed_frames_total{reason="invalid"}'] == 1, "it was re-sent"
    assert scrape(metrics_port)['hpcrl_bus_refusals_sent_total{kind="stage_change"}'] == 1


@pytest.mark.timeout(60)
def test_a_malformed_candidate_ends_with_an_infra_error_result_saying_the_broker_refused_it(
    site: BusSite, processes: Processes
) -> None:
    processes.broker()
    with client_for(site) as client:
        candidate = client.submit(problem="dgemm", size=64, source="x" * (MAX_SOURCE_BYTES + 1))
        result = client.wait_result(candidate.candidate_id, timeout_s=10)
        assert result is not None, "the submitter never learnt that its candidate was refused"
        assert result.verdict is Verdict.INFRA_ERROR
        assert "the broker refused" in result.detail and "source" in result.detail
        assert client.pending == {}


@pytest.mark.timeout(60)
def test_an_event_the_broker_cannot_even_name_is_re_sent_a_bounded_number_of_times_then_reported(
    site: BusSite, processes: Processes
) -> None:
    """An event whose id is unusable cannot be named in a refusal: the broker drops it silently, and the
    publisher gives up after MAX_UNACKED_SENDS sends instead of re-sending it forever."""
    metrics_port = broker_with_metrics(processes)
    fast = ClientConfig(ack_timeout_s=0.2, result_timeout_s=30.0)
    with BusClient(site.bus_config, fast, name="publisher", results=False) as publisher:
        wait_for(lambda: publisher.pump(0.05) or publisher.conn.connected, 15, "the connection")
        publisher.publish(TrainerStep, id="", run="r", step=1)
        assert publisher.flush(protocol.MAX_UNACKED_SENDS * 0.2 + 10), "re-sent without bound"
        failed = publisher.take_failed()
        assert [(f.kind, f.status) for f in failed] == [("trainer_step", "unacknowledged")]
        assert str(protocol.MAX_UNACKED_SENDS) in failed[0].reason
    invalid = scrape(metrics_port)['hpcrl_bus_malformed_frames_total{reason="invalid"}']
    assert invalid == protocol.MAX_UNACKED_SENDS


@pytest.mark.timeout(60)
def test_a_candidate_a_silent_broker_never_acknowledges_fails_after_a_bounded_number_of_sends(
    site: BusSite,
) -> None:
    """A broker that receives but never answers (an older one that drops what it cannot use): a ROUTER
    socket standing in for it counts the copies it gets."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(f"tcp://127.0.0.1:{site.request_port}")
    copies = 0
    try:
        fast = ClientConfig(ack_timeout_s=0.2, result_timeout_s=30.0)
        with BusClient(site.bus_config, fast, name="submitter", results=False) as client:
            candidate = client.submit(problem="dgemm", size=64, source=SOURCE)
            result = None
            deadline = time.monotonic() + protocol.MAX_UNACKED_SENDS * 0.2 + 15
            while result is None and time.monotonic() < deadline:
                result = client.wait_result(candidate.candidate_id, timeout_s=0.1)
                while router.poll(0):
                    _, payload = router.recv_multipart()
                    copies += msgpack.unpackb(payload)["kind"] == "candidate"
            assert result is not None, "the candidate was re-sent without bound"
            assert result.verdict is Verdict.INFRA_ERROR
            assert "never acknowledged" in result.detail
            assert client.pending == {}
        assert copies == protocol.MAX_UNACKED_SENDS
    finally:
        router.close()
        ctx.term()


@pytest.mark.timeout(60)
def test_a_worker_result_the_broker_refuses_is_replaced_by_an_infra_error_result(
    site: BusSite, processes: Processes
) -> None:
    """Otherwise the candidate would stay in flight on a live worker forever and its submitter wait."""
    processes.broker()
    with BusWorker(site.bus_config, name="worker", ack_timeout_s=1.0) as worker, client_for(site) as client:
        cid = client.submit(problem="dgemm", size=64, source=SOURCE).candidate_id
        candidate = None
        deadline = time.monotonic() + 15
        while candidate is None and time.monotonic() < deadline:
            client.pump(0.02)
            candidate = worker.next_candidate(timeout_s=0.1)
        assert candidate is not None
        worker.finish(candidate, verdict=Verdict.OK, gflops_median=1.0, detail="x" * 5000)  # detail: at most 4096
        result: Result | None = None
        deadline = time.monotonic() + 15
        while result is None and time.monotonic() < deadline:
            worker.pump(0.02)
            result = client.wait_result(cid, timeout_s=0.1)
        assert result is not None
        assert result.verdict is Verdict.INFRA_ERROR
        assert "the broker refused" in result.detail and "detail" in result.detail


@pytest.mark.timeout(60)
@pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq was built without CURVE")
def test_a_client_whose_curve_key_is_not_allowed_is_told_so_in_its_log(
    site: BusSite, processes: Processes, caplog: pytest.LogCaptureFixture
) -> None:
    """Without it a refused client only sees its sends fail and nothing arrive (docs/protocol.md 10)."""
    from tests.test_curve import curve_client_config, curve_env, hpcrl_keys

    keys = site.workdir / "keys"
    assert hpcrl_keys(site, keys).returncode == 0
    strangers = site.workdir / "strangers"
    assert hpcrl_keys(site, strangers, "intruder").returncode == 0
    processes.start(
        "bus",
        "--journal",
        str(site.journal),
        env=curve_env(site, keys / "broker.key_secret", HPCRL_BROKER__ALLOWED_KEYS_DIR=str(keys / "allowed")),
    )
    intruder = curve_client_config(site, strangers / "intruder.key_secret", keys / "broker.key")
    with caplog.at_level("ERROR", logger="bus.connection"), BusClient(intruder, name="intruder") as client:
        wait_for(lambda: client.pump(0.05) or client.conn.refused, 15, "the refusal to reach the client")
        assert client.conn.refused == "auth"
        assert not client.conn.connected
    assert "broker refused the handshake reason=auth" in caplog.text
    assert "allowed_keys_dir" in caplog.text


@pytest.mark.timeout(60)
def test_the_example_client_reads_the_refusal_and_exits_1_at_once(site: BusSite, processes: Processes) -> None:
    """examples/submit_candidate.py, written from docs/protocol.md alone, learns why instead of timing out."""
    import subprocess
    import sys

    from tests.conftest import REPO

    processes.broker()
    source = site.workdir / "huge.c"
    source.write_text("x" * (MAX_SOURCE_BYTES + 1))
    started = time.monotonic()
    completed = subprocess.run(
        [
            sys.executable, str(REPO / "examples" / "submit_candidate.py"),
            "--request-endpoint", site.bus_config.request_endpoint,
            "--event-endpoint", site.bus_config.event_endpoint,
            "--heartbeat-interval-s", str(site.bus_config.heartbeat_interval_s),
            "--timeout-s", "30", str(source),
        ],
        capture_output=True, text=True, cwd=REPO, env=site.env, timeout=45,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "the broker rejected the candidate" in completed.stderr and "source" in completed.stderr
    assert time.monotonic() - started < 20, "it waited for its timeout instead"
