"""The worker side of the bus: take candidates one credit at a time, return results reliably.

    with BusWorker(cfg.bus, name="bencher-1") as worker:
        while not stopping:
            candidate = worker.next_candidate(timeout_s=0.5)
            if candidate is not None:
                worker.finish(candidate, verdict=Verdict.OK, gflops_median=..., ...)

The broker sends a worker a candidate only when the worker has announced a free slot (Ready), so
no candidate ever waits behind a busy worker while another is idle.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import zmq

from bus import metrics
from bus.config import BusConfig
from bus.connection import Connection
from bus.outbox import FailedMessage, Outbox
from bus.schema import (
    MAX_DETAIL_CHARS,
    Ack,
    AckStatus,
    Candidate,
    Message,
    PeerState,
    Ready,
    Release,
    Result,
    Role,
    Verdict,
    kind_of,
)

log = logging.getLogger(__name__)


class BusWorker:
    def __init__(self, bus: BusConfig, name: str, slots: int = 1, ack_timeout_s: float = 5.0) -> None:
        """`slots`: candidates this worker runs at once (a bencher runs 1)."""
        self.slots = slots
        self.running: dict[str, Candidate] = {}
        self.inbox: deque[Candidate] = deque()
        self.draining = False
        self.conn = Connection(
            bus,
            name,
            Role.BENCHER,
            on_message=self._on_message,
            on_connect=self._announce,
            heartbeat_state=self._state,
        )
        self.outbox = Outbox(self.conn.send, ack_timeout_s, on_failed=self._on_failed)
        self._replacements: set[str] = set()
        """Ids of the infra_error results sent in place of refused ones (never replaced in turn)."""

    def __enter__(self) -> BusWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.conn.name

    def next_candidate(self, timeout_s: float) -> Candidate | None:
        """The next candidate to run (now counted as running), or None after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while not self.inbox:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.pump(min(remaining, 0.1))
        candidate = self.inbox.popleft()
        self.running[candidate.candidate_id] = candidate
        return candidate

    def finish(self, candidate: Candidate, **measurement: Any) -> Result:
        """Report the candidate's result (kept and re-sent until the broker acknowledges it). The
        broker counts the result as a free slot again (unless we are draining), so no Ready follows."""
        result = self.conn.stamper.make(Result, **Result.for_candidate(candidate, bencher_id=self.name, **measurement))
        self.running.pop(candidate.candidate_id, None)
        self.outbox.send(result)
        return result

    def release(self, candidates: list[Candidate], reason: str) -> None:
        """Hand candidates back to the broker for another worker (e.g. when stopping mid-run)."""
        for candidate in candidates:
            self.running.pop(candidate.candidate_id, None)
        self.outbox.send(
            self.conn.stamper.make(Release, candidate_ids=[c.candidate_id for c in candidates], reason=reason)
        )

    def drain(self) -> None:
        """Take no more candidates; hand back those received but not started."""
        self.draining = True
        if self.inbox:
            self.release(list(self.inbox), "draining")
            self.inbox.clear()

    def wake_on(self, fd: int) -> None:
        """Also end `pump`'s wait as soon as `fd` is readable: a pipe another thread of the process
        writes when it has news for the loop (the caller reads the fd). Without it the loop would
        notice only at its next poll timeout."""
        self.conn.poller.register(fd, zmq.POLLIN)

    def pump(self, timeout_s: float = 0.0) -> None:
        self.conn.pump(timeout_s)
        self.outbox.resend_overdue()

    def close(self, timeout_s: float = 2.0) -> None:
        """Drain, wait (bounded) for results and releases to be acknowledged, say goodbye, close."""
        self.drain()
        deadline = time.monotonic() + timeout_s
        while self.outbox and time.monotonic() < deadline:
            self.pump(0.05)
        if self.outbox:
            log.warning("closing with %d unacknowledged messages", len(self.outbox))
        self.conn.say_goodbye()
        self.conn.close()

    # ------------------------------------------------------------ internals

    def _state(self) -> tuple[PeerState, list[str]]:
        if self.draining:
            state = PeerState.DRAINING
        else:
            state = PeerState.BUSY if self.running else PeerState.IDLE
        return state, list(self.running)

    def _announce(self) -> None:
        """On every (re)connection: re-send unacknowledged results, offer our free slots."""
        self.outbox.resend_all()
        free = self.slots - len(self.running) - len(self.inbox)
        if free > 0 and not self.draining:
            self.conn.send(self.conn.stamper.make(Ready, credit=free))

    def _on_failed(self, failed: FailedMessage) -> None:
        """The broker refused one of our results (e.g. a field out of range): report the candidate as an
        infra_error instead, or it would stay in flight on this live worker and its submitter would wait
        for its result timeout. A result never acknowledged is only logged (the outbox did): the broker
        does not answer anything, so a replacement would fare no better."""
        result = failed.message
        if failed.status != "rejected" or not isinstance(result, Result) or result.id in self._replacements:
            return
        detail = f"the broker refused this worker's result ({result.verdict.value}): {failed.reason}"
        replacement = self.conn.stamper.make(
            Result,
            candidate_id=result.candidate_id,
            run=result.run,
            problem=result.problem,
            size=result.size,
            stage=result.stage,
            policy_version=result.policy_version,
            attempt=result.attempt,
            source=result.source,
            verdict=Verdict.INFRA_ERROR,
            detail=detail[:MAX_DETAIL_CHARS],
            bencher_id=self.name,
        )
        self._replacements.add(replacement.id)
        self.outbox.send(replacement)

    def _on_message(self, message: Message) -> None:
        if isinstance(message, Candidate):
            if message.candidate_id in self.running or any(c.candidate_id == message.candidate_id for c in self.inbox):
                metrics.DUPLICATES_DROPPED.inc("candidate")
                return
            if self.draining:
                self.release([message], "draining")
                return
            self.inbox.append(message)
        elif isinstance(message, Ack):
            ours = {m.id for m, _ in self.outbox.acknowledge(message.entries)}  # refusals: _on_failed
            for entry in message.entries:
                if entry.status is AckStatus.REJECTED and entry.ref not in ours:
                    log.warning("broker refused a message ref=%s reason=%s", entry.ref, entry.reason[:300])
        else:
            metrics.drop_frame("unexpected", f"{kind_of(message)} sent to a worker")
