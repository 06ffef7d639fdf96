"""Prometheus metrics of the bus layer (broker and client library), declared once with bounded labels."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bus.schema import FRAME_ERROR_REASONS, KINDS

_log = logging.getLogger(__name__)
_KIND_LABELS = [*sorted(KINDS), "unknown"]


class HotCounter(Collector):
    """A counter for the per-message hot path: `inc()` is a plain dict update (prometheus_client's
    Counter takes a lock and several calls, a large share of a broker's time per candidate);
    the values are read when Prometheus scrapes. Increment from one thread only."""

    def __init__(self, name: str, documentation: str, label: str = "", values: list[str] | None = None) -> None:
        self.name = name.removesuffix("_total")
        self.documentation = documentation
        self.label = label
        self.counts: dict[str, float] = dict.fromkeys(values or [""], 0.0)
        REGISTRY.register(self)

    def inc(self, value: str = "", amount: float = 1.0) -> None:
        self.counts[value] += amount

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label] if self.label else [])
        for value, count in list(self.counts.items()):
            family.add_metric([value] if self.label else [], count)
        yield family


MESSAGES_RECEIVED = HotCounter(
    "hpcrl_bus_messages_received_total", "Messages decoded from the bus, by kind.", "kind", _KIND_LABELS
)
MESSAGES_SENT = HotCounter("hpcrl_bus_messages_sent_total", "Messages sent on the bus, by kind.", "kind", _KIND_LABELS)
SEND_DROPPED = HotCounter(
    "hpcrl_bus_send_dropped_total",
    "Sends dropped because the peer's queue was full or it was unreachable (re-sent later if needed).",
    "kind",
    _KIND_LABELS,
)
MALFORMED_FRAMES = Counter(
    "hpcrl_bus_malformed_frames_total",
    "Frames dropped because they were not a usable message, by reason.",
    ["reason"],
)
EXTRA_FIELDS = Counter(
    "hpcrl_bus_extra_fields_total", "Messages that carried fields this reader does not know (ignored)."
)
DUPLICATES_DROPPED = HotCounter(
    "hpcrl_bus_duplicates_dropped_total",
    "Messages recognised as duplicates and not applied again.",
    "kind",
    _KIND_LABELS,
)
RESENDS = Counter("hpcrl_bus_resends_total", "Messages re-sent, by reason.", ["reason"])
MESSAGES_FAILED = Counter(
    "hpcrl_bus_messages_failed_total",
    "Messages this sender gave up on, by status (rejected: the broker refused it; unacknowledged: no ack "
    "after MAX_UNACKED_SENDS sends); each is reported to its owner.",
    ["status"],
)
REFUSALS_SENT = HotCounter(
    "hpcrl_bus_refusals_sent_total",
    "Malformed messages the broker answered with a `rejected` ack entry, by the kind they claimed.",
    "kind",
    _KIND_LABELS,
)
PENDING_CANDIDATES = Gauge(
    "hpcrl_bus_pending_candidates", "Candidates this submitter has sent and holds until their result arrives."
)
CANDIDATES_GIVEN_UP = Counter("hpcrl_bus_candidates_given_up_total", "Candidates abandoned with an infra_error result.")
QUEUED_CANDIDATES = Gauge("hpcrl_bus_queued_candidates", "Candidates in the broker waiting for a worker.")
IN_FLIGHT_CANDIDATES = Gauge(
    "hpcrl_bus_in_flight_candidates", "Candidates the broker has handed to a worker and has no result for yet."
)
DISPATCHES = HotCounter("hpcrl_bus_dispatches_total", "Candidates handed to a worker by the broker.")
REDISPATCHES = Counter(
    "hpcrl_bus_requeued_candidates_total",
    "Candidates put back in the queue, by reason.",
    ["reason"],
)
CONNECTED_WORKERS = Gauge("hpcrl_bus_connected_workers", "Workers alive (heartbeating) as seen by the broker.")
CONNECTED_PEERS = Gauge("hpcrl_bus_connected_peers", "Peers alive (heartbeating) as seen by the broker.")
REFUSED_CLIENTS = Counter(
    "hpcrl_bus_refused_clients_total", "Connections refused, by reason (auth: CURVE key not allowed).", ["reason"]
)
JOURNAL_HEAD = Gauge("hpcrl_bus_journal_head_seq", "Highest bus_seq journaled by the broker.")
JOURNAL_COMMIT_SECONDS = Counter(
    "hpcrl_bus_journal_commit_seconds_total", "Seconds the broker spent committing the journal."
)
EVENTS_PUBLISHED = HotCounter(
    "hpcrl_bus_events_published_total", "Events published by the broker, by kind.", "kind", _KIND_LABELS
)
EVENTS_DELIVERED = HotCounter(
    "hpcrl_bus_events_delivered_total",
    "Journaled events delivered to this subscriber, by how.",
    "path",
    ["live", "recovered"],
)
GAPS_DETECTED = Counter("hpcrl_bus_gaps_detected_total", "Sequence gaps a subscriber detected and recovered.")
EVENTS_LOST = Counter(
    "hpcrl_bus_events_lost_total", "Events a subscriber could not recover (evicted from the journal first)."
)
BROKER_UP = Gauge("hpcrl_bus_broker_up", "1 while this client hears the broker's heartbeats, else 0.")
BROKER_RESTARTS = Counter(
    "hpcrl_bus_broker_restarts_seen_total", "Broker restarts this client noticed (new incarnation)."
)

for _reason in FRAME_ERROR_REASONS:
    MALFORMED_FRAMES.labels(_reason)
for _reason in ("ack_timeout", "result_timeout", "reconnect"):
    RESENDS.labels(_reason)
for _status in ("rejected", "unacknowledged"):
    MESSAGES_FAILED.labels(_status)
for _reason in ("worker_lost", "released"):
    REDISPATCHES.labels(_reason)
for _reason in ("auth", "protocol"):
    REFUSED_CLIENTS.labels(_reason)


def scrape(port: int, host: str = "127.0.0.1", timeout_s: float = 5.0) -> dict[str, float]:
    """Read another process's /metrics once, as {sample name with its labels: value} (tests,
    benchmarks and ops scripts use it). Raises OSError when the endpoint does not answer."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def serve_metrics(port: int, address: str = "127.0.0.1") -> None:
    """Expose this process's metrics on http://address:port/metrics (no-op for port 0)."""
    if port:
        start_http_server(port, addr=address)


_dropped_by_reason: dict[str, int] = {}


def drop_frame(reason: str, detail: str) -> None:
    """Count a dropped frame and log the 1st, 10th, 100th, ... of each reason, so a flood of junk
    is visible without filling the log."""
    MALFORMED_FRAMES.labels(reason).inc()
    count = _dropped_by_reason[reason] = _dropped_by_reason.get(reason, 0) + 1
    if str(count).rstrip("0") == "1":
        _log.warning("dropped frame reason=%s count=%d detail=%s", reason, count, detail[:200])
