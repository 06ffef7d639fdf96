"""The client library: submit candidates and await their results, publish events, follow topics.

    from bus.client import BusClient
    from bus.config import load_config

    cfg = load_config("hpcrl.toml")
    with BusClient(cfg.bus, cfg.client, name="my-script") as bus:
        candidate = bus.submit(problem="dgemm", size=256, source=open("mm.c").read())
        result = bus.wait_result(candidate.candidate_id, timeout_s=120)
        print(result.verdict.value, result.gflops_median)

A BusClient is single-threaded: every method pumps the same sockets. Nothing happens between
calls, so a long-running caller calls `pump()` now and then (heartbeats, re-sends).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from bus import metrics, protocol
from bus.config import BusConfig, ClientConfig
from bus.connection import Connection
from bus.outbox import FailedMessage, Outbox
from bus.schema import (
    MAX_DETAIL_CHARS,
    Ack,
    AckStatus,
    Candidate,
    Event,
    FetchReply,
    FetchRequest,
    Heartbeat,
    Message,
    PeerState,
    Result,
    Role,
    Verdict,
    kind_of,
)
from bus.stream import EventsLost, EventStream, decode_fetched

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
COMPLETED_MEMORY = 100_000
"""Finished candidate ids remembered to recognise duplicate results (ids only: ~10 MB)."""


@dataclass
class PendingCandidate:
    candidate: Candidate
    """The message last sent for it (its `attempt` counts the sends that timed out)."""
    sent_at: float
    acked: bool = False
    sends: int = 0
    """Sends of this message that reached a connected broker without an ack (bounded by
    protocol.MAX_UNACKED_SENDS)."""


class BusClient:
    def __init__(
        self,
        bus: BusConfig,
        client: ClientConfig | None = None,
        name: str = "client",
        role: Role = Role.CLIENT,
        subscribe: Iterable[str] = (),
        since: int | None = None,
        results: bool = True,
    ) -> None:
        """`subscribe`: topic prefixes whose events `next_events()` returns. `since`: replay
        journaled events after this bus_seq (None: only new ones). `results`: follow `result.`
        to complete submitted candidates (turn off for pure publishers)."""
        self.cfg = client or ClientConfig()
        self.user_prefixes = tuple(subscribe)
        stream_prefixes = self.user_prefixes + ((protocol.RESULT_TOPIC_PREFIX,) if results else ())
        self.conn = Connection(
            bus,
            name,
            role,
            on_message=self._on_message,
            on_event=self._on_event if stream_prefixes else None,
            subscriptions=(*tuple(sorted(set(stream_prefixes))), protocol.BROKER_HEARTBEAT_TOPIC),
            on_connect=self._on_connect,
            heartbeat_state=lambda: (PeerState.BUSY if self.pending else PeerState.IDLE, []),
        )
        self.pending: dict[str, PendingCandidate] = {}
        self.failed: deque[FailedMessage] = deque()
        """Published events (and releases) the broker will never take: refused, or never acknowledged."""
        self.losses: deque[EventsLost] = deque()
        """Holes in the subscribed topics that can no longer be filled (journal retention)."""
        self._message_to_candidate: dict[str, str] = {}
        self._completion_order: list[str] = []
        """Candidate ids completed since the last wait_results() call (saves rescanning)."""
        """Id of the candidate message last sent -> candidate id (acks name messages)."""
        self.completed: dict[str, Result] = {}
        """Results that arrived and were not yet returned by wait_result(s)."""
        self.finished: OrderedDict[str, None] = OrderedDict()
        """Ids of the last COMPLETED_MEMORY finished candidates, to recognise duplicate results
        without keeping their (large) results alive."""
        self.outbox = Outbox(self.conn.send, self.cfg.ack_timeout_s, on_failed=self.failed.append)
        self.events: deque[Event] = deque()
        self._lookups: dict[str, str] = {}  # fetch id -> candidate id, for results journaled earlier
        self._snapshots: dict[str, list[Event] | None] = {}
        self._next_timer = 0.0
        self._broker_event_heartbeat: Heartbeat | None = None
        self.stream: EventStream | None = None
        if stream_prefixes:
            self.stream = EventStream(
                tuple(sorted(set(stream_prefixes))), since, self._send_fetch, self._deliver, self.losses.append
            )

    def __enter__(self) -> BusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.conn.name

    @property
    def cursor(self) -> int:
        """Every journaled event of the subscribed topics with bus_seq <= cursor has been delivered
        (or counted as lost). Persist it with what you derived from the events and pass it as
        `since` after a restart to miss nothing; events after it may arrive again (de-duplicate)."""
        return self.stream.verified_through if self.stream is not None else 0

    @property
    def worker_names(self) -> list[str]:
        """Names of the workers alive, from the broker's latest published heartbeat (needs an event
        stream: a client made with `results=False` and no subscriptions does not see it)."""
        return self._broker_event_heartbeat.worker_names if self._broker_event_heartbeat else []

    @property
    def workers_alive(self) -> int:
        """Workers the broker reported alive in its latest heartbeat."""
        heartbeat = self.conn.broker_heartbeat
        return heartbeat.workers if heartbeat else 0

    # ------------------------------------------------------------ submitting

    def submit(
        self,
        problem: str,
        size: int,
        source: str,
        run: str = "adhoc",
        stage: int = 0,
        policy_version: int = 0,
        candidate_id: str | None = None,
        remeasure: bool = False,
    ) -> Candidate:
        """Send a candidate; it stays pending (re-sent as needed) until its result arrives.
        `remeasure`: benchers must measure it even if they have it cached (confirmation runs)."""
        candidate = self.conn.stamper.make(
            Candidate,
            candidate_id=candidate_id or uuid.uuid4().hex,
            run=run,
            problem=problem,
            size=size,
            stage=stage,
            policy_version=policy_version,
            source=source,
            remeasure=remeasure,
        )
        if candidate.candidate_id in self.pending or candidate.candidate_id in self.finished:
            raise ValueError(f"candidate id {candidate.candidate_id!r} was already submitted by this client")
        pending = self.pending[candidate.candidate_id] = PendingCandidate(candidate, time.monotonic())
        self._message_to_candidate[candidate.id] = candidate.candidate_id
        self._send_candidate(pending)
        metrics.PENDING_CANDIDATES.set(len(self.pending))
        return candidate

    def wait_result(self, candidate_id: str, timeout_s: float) -> Result | None:
        """The candidate's result, or None if it has not arrived within timeout_s (it stays pending).
        A result is returned once; the client does not keep it afterwards."""
        return self.wait_results([candidate_id], timeout_s).get(candidate_id)

    def wait_results(self, candidate_ids: Iterable[str], timeout_s: float) -> dict[str, Result]:
        """Results of the given candidates that arrive within timeout_s (all of them, if in time).
        Each result is returned once and then forgotten."""
        wanted = set(candidate_ids)
        for cid in wanted:
            if cid not in self.pending and cid not in self.completed:
                raise KeyError(f"candidate {cid!r} is not pending here: never submitted, or its result was returned")
        missing = {cid for cid in wanted if cid not in self.completed}
        deadline = time.monotonic() + timeout_s
        while missing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            seen = len(self._completion_order)
            self.pump(min(remaining, 0.1))
            missing.difference_update(self._completion_order[seen:])
        del self._completion_order[:]
        return {cid: self.completed.pop(cid) for cid in wanted if cid in self.completed}

    def collect_results(self, timeout_s: float) -> dict[str, Result]:
        """Every result that has arrived and not been returned yet, waiting up to timeout_s for the
        first one (for pipelines that take whatever finished, in any order)."""
        deadline = time.monotonic() + timeout_s
        while not self.completed and time.monotonic() < deadline:
            self.pump(min(0.1, max(0.0, deadline - time.monotonic())))
        results, self.completed = self.completed, {}
        del self._completion_order[:]
        return results

    # ------------------------------------------------------------ publishing and following

    def publish(self, event_type: type[E], **fields: Any) -> E:
        """Publish a journaled event (StageChange, TrainerStep, Result); re-sent until acknowledged."""
        event = self.conn.stamper.make(event_type, **fields)
        if not event.journaled:
            raise ValueError(f"{event_type.__name__} is not a journaled event; it cannot be published")
        self.outbox.send(event)
        return event

    def flush(self, timeout_s: float) -> bool:
        """Wait until the broker has acknowledged everything published. True if it has."""
        deadline = time.monotonic() + timeout_s
        while self.outbox and time.monotonic() < deadline:
            self.pump(0.05)
        return not self.outbox

    def next_events(self, timeout_s: float) -> list[Event]:
        """Events of the subscribed topics received so far, waiting up to timeout_s for the first."""
        deadline = time.monotonic() + timeout_s
        while not self.events and time.monotonic() < deadline:
            self.pump(min(0.1, max(0.0, deadline - time.monotonic())))
        events = list(self.events)
        self.events.clear()
        return events

    def take_losses(self) -> list[EventsLost]:
        """Events of the subscribed topics lost for good since the last call (evicted from the broker's
        journal before this client fetched them), each with its range of bus_seq; already logged and
        counted in hpcrl_bus_events_lost_total. A consumer that must not miss anything checks this."""
        losses = list(self.losses)
        self.losses.clear()
        return losses

    def take_failed(self) -> list[FailedMessage]:
        """Published events the broker refused (`rejected`, with its reason) or never acknowledged
        after protocol.MAX_UNACKED_SENDS sends (`unacknowledged`), since the last call. They are no
        longer re-sent; `flush()` does not wait for them. Candidates fail through their result instead."""
        failed = list(self.failed)
        self.failed.clear()
        return failed

    def latest(self, prefixes: Iterable[str], timeout_s: float) -> list[Event] | None:
        """The newest journaled event of every topic matching the prefixes (e.g. the current stage of
        every problem), or None if the broker did not answer within timeout_s."""
        deadline = time.monotonic() + timeout_s
        request = None
        while time.monotonic() < deadline:
            if request is None:
                request = self._send_fetch(prefixes=list(prefixes), latest_only=True)
                if request is not None:
                    self._snapshots[request.id] = None
            self.pump(0.05)
            if request is not None and self._snapshots.get(request.id) is not None:
                return self._snapshots.pop(request.id)
        if request is not None:
            self._snapshots.pop(request.id, None)
        return None

    # ------------------------------------------------------------ driving

    def pump(self, timeout_s: float = 0.0) -> None:
        """Handle traffic for up to timeout_s and run the re-send timers."""
        self.conn.pump(timeout_s)
        now = time.monotonic()
        if now >= self._next_timer:
            self._next_timer = now + 0.1
            self._run_timers(now)

    def close(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) for unacknowledged publications, say goodbye, close the sockets."""
        self.flush(timeout_s)
        self.conn.say_goodbye()
        self.conn.close()

    # ------------------------------------------------------------ internals

    def _send_fetch(self, **fields: Any) -> FetchRequest | None:
        request = self.conn.stamper.make(FetchRequest, **fields)
        return request if self.conn.send(request) else None

    def _send_candidate(self, pending: PendingCandidate) -> None:
        pending.sent_at = time.monotonic()
        if self.conn.send(pending.candidate):
            pending.sends += 1

    def _on_connect(self) -> None:
        for pending in self.pending.values():
            self._send_candidate(pending)
            metrics.RESENDS.labels("reconnect").inc()
        self.outbox.resend_all()
        if self.stream is not None:
            self.stream.on_reconnect()

    def _on_message(self, message: Message) -> None:
        if isinstance(message, Ack):
            self._on_ack(message)
        elif isinstance(message, FetchReply):
            self._on_fetch_reply(message)
        else:
            metrics.drop_frame("unexpected", f"{kind_of(message)} sent to a client")

    def _on_ack(self, ack: Ack) -> None:
        ours = {message.id for message, _ in self.outbox.acknowledge(ack.entries)}  # refusals: self.failed
        for entry in ack.entries:
            pending = self._pending_by_message_id(entry.ref)
            if pending is None:
                if entry.status is AckStatus.REJECTED and entry.ref not in ours:
                    # Something else we sent (a heartbeat, a fetch, a copy already answered): say why anyway.
                    log.warning("broker refused a message ref=%s reason=%s", entry.ref, entry.reason[:300])
                continue
            if entry.status is AckStatus.REJECTED:
                self._fail(pending.candidate, "rejected", f"the broker refused the candidate: {entry.reason}")
                continue
            pending.acked = True
            if entry.status is AckStatus.DONE:
                # Already benchmarked (we missed the result, e.g. across a restart): fetch it.
                request = self._send_fetch(
                    prefixes=[pending.candidate.topic_of_result],
                    after_bus_seq=entry.bus_seq - 1,
                    limit=1,
                )
                if request is not None:
                    self._lookups[request.id] = pending.candidate.candidate_id

    def _pending_by_message_id(self, message_id: str) -> PendingCandidate | None:
        cid = self._message_to_candidate.get(message_id)
        return self.pending.get(cid) if cid else None

    def _on_fetch_reply(self, reply: FetchReply) -> None:
        if reply.ref in self._snapshots:
            self._snapshots[reply.ref] = decode_fetched(reply)
            return
        cid = self._lookups.pop(reply.ref, None)
        if cid is not None:
            for event in decode_fetched(reply):
                if isinstance(event, Result) and event.candidate_id == cid:
                    self._complete(event)
            return
        if self.stream is None or not self.stream.on_fetch_reply(reply):
            log.debug("fetch reply for an unknown request ref=%s (a superseded fetch)", reply.ref)

    def _on_event(self, event: Event) -> None:
        assert self.stream is not None
        if isinstance(event, Heartbeat) and event.role is Role.BROKER:
            self._broker_event_heartbeat = event
        self.stream.on_event(event)

    def _deliver(self, event: Event, recovered: bool) -> None:
        if isinstance(event, Result):
            self._complete(event)
        if event.topic.startswith(self.user_prefixes) and self.user_prefixes:
            self.events.append(event)

    def _complete(self, result: Result) -> None:
        pending = self.pending.pop(result.candidate_id, None)
        if pending is None:
            if result.candidate_id in self.finished:
                metrics.DUPLICATES_DROPPED.inc("result")
            return
        self._message_to_candidate.pop(pending.candidate.id, None)
        self.completed[result.candidate_id] = result
        self.finished[result.candidate_id] = None
        self._completion_order.append(result.candidate_id)
        if len(self.finished) > COMPLETED_MEMORY:
            self.finished.popitem(last=False)
        metrics.PENDING_CANDIDATES.set(len(self.pending))

    def _run_timers(self, now: float) -> None:
        self.outbox.resend_overdue()
        if self.stream is not None:
            self.stream.tick()
        for pending in list(self.pending.values()):
            age = now - pending.sent_at
            if not pending.acked and age > self.cfg.ack_timeout_s:
                if pending.sends >= protocol.MAX_UNACKED_SENDS:
                    detail = (
                        f"the broker never acknowledged the candidate after {pending.sends} sends of "
                        f"{self.cfg.ack_timeout_s:g} s each (it drops what it cannot read: see its log's "
                        "dropped frame lines)"
                    )
                    self._fail(pending.candidate, "unacknowledged", detail)
                    continue
                self._send_candidate(pending)
                metrics.RESENDS.labels("ack_timeout").inc()
            elif pending.acked and age > self.cfg.result_timeout_s:
                self._retry_or_give_up(pending, now)

    def _retry_or_give_up(self, pending: PendingCandidate, now: float) -> None:
        candidate = pending.candidate
        if candidate.attempt >= self.cfg.max_attempts:
            self._give_up(candidate)
            return
        retry = self.conn.stamper.remake(candidate, attempt=candidate.attempt + 1)
        self._message_to_candidate.pop(candidate.id, None)
        self._message_to_candidate[retry.id] = retry.candidate_id
        pending.candidate, pending.acked, pending.sends = retry, False, 0
        self._send_candidate(pending)
        metrics.RESENDS.labels("result_timeout").inc()
        log.warning("no result in time candidate=%s attempt=%d", retry.candidate_id, retry.attempt)

    def _give_up(self, candidate: Candidate) -> None:
        detail = (
            f"no result after {candidate.attempt} attempt(s) of {self.cfg.result_timeout_s:g} s each; "
            "the submitter gave up"
        )
        log.error("giving up candidate=%s attempts=%d", candidate.candidate_id, candidate.attempt)
        metrics.CANDIDATES_GIVEN_UP.inc()
        # Journaled too, so consumers see the loss; if a real result won the race the broker keeps
        # that one and ours is dropped as a duplicate.
        result = self.publish(Result, **Result.for_candidate(candidate, verdict=Verdict.INFRA_ERROR, detail=detail))
        self._complete(result)

    def _fail(self, candidate: Candidate, status: str, detail: str) -> None:
        """The broker will never queue this candidate (it refused it, or never acknowledged it): complete
        it here with an infra_error result saying why. Not published: the broker would refuse a result
        carrying the same fields, and nobody else knows the candidate."""
        log.error("candidate failed candidate=%s status=%s detail=%s", candidate.candidate_id, status, detail[:300])
        metrics.MESSAGES_FAILED.labels(status).inc()
        metrics.CANDIDATES_GIVEN_UP.inc()
        result = self.conn.stamper.make(
            Result, **Result.for_candidate(candidate, verdict=Verdict.INFRA_ERROR, detail=detail[:MAX_DETAIL_CHARS])
        )
        self._complete(result)
