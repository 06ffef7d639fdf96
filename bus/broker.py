"""The broker (`hpcrl bus`): binds the two well-known endpoints, hands candidates to idle workers
one at a time, journals and publishes every event, and answers fetches for gap recovery.

Loop turn: read a batch from every socket -> apply it (queue, journal) -> commit the journal ->
send acks, fetch replies and publishes (only after the commit, so nothing is acknowledged or
published that a crash could lose) -> hand queued candidates to workers with credit -> heartbeats.
"""

from __future__ import annotations

import functools
import logging
import os
import socket as pysocket
import time
from collections import deque
from dataclasses import dataclass, field

import msgspec
import zmq
import zmq.auth.thread
from zmq.utils.monitor import recv_monitor_message

from bus import metrics, protocol
from bus.config import BrokerConfig, BusConfig, ConfigError
from bus.connection import decode_counted
from bus.journal import Journal, dedup_key_of_message, dedup_key_of_result, prefixes_tuple
from bus.schema import (
    Ack,
    AckEntry,
    AckStatus,
    Candidate,
    Event,
    FetchReply,
    FetchRequest,
    FrameError,
    Heartbeat,
    Message,
    PeerState,
    Ready,
    Release,
    Result,
    Role,
    Stamper,
    Verdict,
    encode,
    kind_of,
)
from bus.sockets import close_monitored, monitor, readable, server_socket

log = logging.getLogger(__name__)

_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_REFUSAL_EVENTS: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "auth",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "protocol",
}


@dataclass
class Peer:
    """A connected process as the broker sees it (keyed by its ROUTER identity)."""

    identity: bytes
    name: str
    last_seen: float
    role: str = "unknown"
    incarnation: str = ""
    state: PeerState = PeerState.IDLE
    credit: int = 0
    is_worker: bool = False
    in_flight: set[str] = field(default_factory=set)


@dataclass
class QueuedCandidate:
    candidate: Candidate
    payload: bytes
    worker: bytes | None = None
    """Identity of the worker running it; None while it waits in the queue."""
    dispatches: int = 0


class Broker:
    def __init__(self, bus: BusConfig, cfg: BrokerConfig) -> None:
        if bus.curve and not cfg.allowed_keys_dir:
            raise ConfigError(
                "bus.secret_key_file is set, so the broker needs broker.allowed_keys_dir: a directory "
                "holding the public key of every client allowed to connect (`hpcrl keys` makes one)"
            )
        self.bus = bus
        self.cfg = cfg
        self.stamper = Stamper("broker")
        # The journal first: a refused journal must stop the broker before it touches the network.
        self.journal = Journal(cfg.journal_path, cfg.journal_max_events, cfg.journal_sync)
        self.ctx = zmq.Context()
        self.authenticator: zmq.auth.thread.ThreadAuthenticator | None = None
        if bus.curve:
            # The ZAP handler must run before the first handshake, or CURVE would admit any key.
            self.authenticator = zmq.auth.thread.ThreadAuthenticator(self.ctx, log=log)
            self.authenticator.start()
            self.authenticator.configure_curve(domain="*", location=cfg.allowed_keys_dir)
        self.router = server_socket(self.ctx, zmq.ROUTER, bus)
        # Sending to a vanished worker must fail loudly so its candidate goes back in the queue.
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.xpub = server_socket(self.ctx, zmq.XPUB, bus)
        self.monitors = [
            monitor(
                sock,
                zmq.EVENT_HANDSHAKE_FAILED_AUTH
                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
            )
            for sock in (self.router, self.xpub)
        ]
        self.router.bind(bus.request_endpoint)
        self.xpub.bind(bus.event_endpoint)
        self.peers: dict[bytes, Peer] = {}
        self.ready: deque[bytes] = deque()
        self.queue: deque[str] = deque()
        self.candidates: dict[str, QueuedCandidate] = {}
        self.claims: dict[str, bytes] = {}
        """Candidates a worker says it is running that no submitter has (re-)sent yet (after a
        broker restart): when the candidate arrives it is not queued again."""
        self.acks: dict[bytes, list[AckEntry]] = {}
        self.after_commit: list[tuple[zmq.Socket[bytes], list[bytes]]] = []
        self.poller = zmq.Poller()
        for sock in (self.router, self.xpub, *self.monitors):
            self.poller.register(sock, zmq.POLLIN)
        self.host = pysocket.gethostname()
        self.next_heartbeat = 0.0
        self.stopping = False
        metrics.JOURNAL_HEAD.set(self.journal.head)
        log.info(
            "broker up request=%s event=%s curve=%s journal=%s head=%d",
            bus.request_endpoint,
            bus.event_endpoint,
            bus.curve,
            cfg.journal_path,
            self.journal.head,
        )

    # ------------------------------------------------------------ main loop

    def run(self) -> None:
        """Serve until stop() is called (e.g. by a signal handler), then close cleanly."""
        try:
            while not self.stopping:
                self.turn(timeout_s=min(0.2, self.bus.heartbeat_interval_s))
        finally:
            self.close()

    def stop(self) -> None:
        self.stopping = True

    def turn(self, timeout_s: float) -> None:
        ready = dict(self.poller.poll(round(timeout_s * 1000)))
        now = time.monotonic()
        if self.router in ready:
            self._read_router(now)
        if self.xpub in ready:
            self._read_xpub()
        for monitor_socket in self.monitors:
            if monitor_socket in ready:
                self._read_monitor(monitor_socket)
        self._flush()
        self._dispatch()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.bus.heartbeat_interval_s
            self._expire_peers(now)
            self._send_heartbeats(queued=self._update_gauges())
            self._flush()

    def close(self) -> None:
        self._flush()
        self.journal.close()
        for sock, monitor_socket in zip((self.router, self.xpub), self.monitors, strict=True):
            close_monitored(sock, monitor_socket)
        if self.authenticator is not None:
            self.authenticator.stop()
        self.ctx.term()
        log.info("broker stopped head=%d queued=%d", self.journal.head, len(self.queue))

    # ------------------------------------------------------------ reading

    def _read_router(self, now: float) -> None:
        for _ in range(protocol.MAX_BATCH_MESSAGES):
            if not readable(self.router):
                return
            frames = self.router.recv_multipart()
            if len(frames) != 2:
                metrics.drop_frame("framing", f"{len(frames) - 1} frames from a peer, expected 1")
                continue
            identity, payload = frames
            message = decode_counted(payload, functools.partial(self._refuse, identity))
            if message is None:
                continue
            peer = self.peers.get(identity)
            if peer is None:
                peer = self.peers[identity] = Peer(identity=identity, name=message.sender, last_seen=now)
            peer.last_seen = now
            self._handle(peer, message, payload)

    def _handle(self, peer: Peer, message: Message, payload: bytes) -> None:
        if isinstance(message, Candidate):
            self._on_candidate(peer, message, payload)
        elif isinstance(message, Result):
            self._on_result(peer, message)
        elif isinstance(message, Ready):
            self._on_ready(peer, message.credit)
        elif isinstance(message, Heartbeat):
            self._on_heartbeat(peer, message, payload)
        elif isinstance(message, FetchRequest):
            self._on_fetch(peer, message)
        elif isinstance(message, Release):
            self._on_release(peer, message)
        elif isinstance(message, Event) and message.journaled:
            self._on_event(peer, message)
        else:
            metrics.drop_frame("unexpected", f"{kind_of(message)} is not sent to the broker")

    def _read_xpub(self) -> None:
        # Subscriptions arrive as b"\x01topic"/b"\x00topic"; anything else is junk from outside.
        for _ in range(protocol.MAX_BATCH_MESSAGES):
            if not readable(self.xpub):
                return
            frames = self.xpub.recv_multipart()
            if len(frames) != 1 or not frames[0] or frames[0][0] not in (0, 1):
                metrics.drop_frame("framing", "non-subscription frame on the event socket")

    def _read_monitor(self, monitor: zmq.Socket[bytes]) -> None:
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            reason = _REFUSAL_EVENTS.get(int(event["event"]))
            if reason:
                metrics.REFUSED_CLIENTS.labels(reason).inc()
                log.warning("refused client reason=%s endpoint=%s", reason, event.get("endpoint"))

    # ------------------------------------------------------------ handlers

    def _on_candidate(self, peer: Peer, candidate: Candidate, payload: bytes) -> None:
        cid = candidate.candidate_id
        if cid in self.candidates:
            metrics.DUPLICATES_DROPPED.inc("candidate")
            self._ack(peer, candidate, AckStatus.DUPLICATE)
            return
        done_at = self.journal.lookup(dedup_key_of_result(cid))
        if done_at is not None:
            metrics.DUPLICATES_DROPPED.inc("candidate")
            self._ack(peer, candidate, AckStatus.DONE, done_at)
            return
        entry = self.candidates[cid] = QueuedCandidate(candidate=candidate, payload=payload)
        claimer = self.peers.get(self.claims.pop(cid, b""))
        if claimer is not None:
            self._assign(entry, claimer)
        else:
            self.queue.append(cid)
        self._ack(peer, candidate, AckStatus.ACCEPTED)

    def _assign(self, entry: QueuedCandidate, worker: Peer) -> None:
        worker.in_flight.add(entry.candidate.candidate_id)
        entry.worker = worker.identity
        entry.dispatches += 1

    def _on_result(self, peer: Peer, result: Result) -> None:
        bus_seq, is_new = self._journal_event(result, dedup_key_of_result(result.candidate_id))
        if result.candidate_id in peer.in_flight:
            # Finishing a candidate frees the slot it took: the result returns the worker's credit,
            # so a busy pipeline needs no Ready per candidate.
            peer.in_flight.discard(result.candidate_id)
            self._on_ready(peer, 1)
        self.claims.pop(result.candidate_id, None)
        if is_new:
            # Another worker (or a giving-up submitter) may have ended it while a worker still runs it:
            # that worker keeps it in flight, so its late result (a duplicate) still returns its slot.
            self.candidates.pop(result.candidate_id, None)
        else:
            metrics.DUPLICATES_DROPPED.inc("result")
        self._ack(peer, result, AckStatus.ACCEPTED if is_new else AckStatus.DUPLICATE, bus_seq)

    def _on_event(self, peer: Peer, event: Event) -> None:
        bus_seq, is_new = self._journal_event(event, dedup_key_of_message(event.id))
        if not is_new:
            metrics.DUPLICATES_DROPPED.inc(kind_of(event))
        self._ack(peer, event, AckStatus.ACCEPTED if is_new else AckStatus.DUPLICATE, bus_seq)

    def _journal_event(self, event: Event, dedup_key: str) -> tuple[int, bool]:
        topic = event.topic
        encoded: list[bytes] = []

        def build(bus_seq: int, topic_seq: int) -> bytes:
            encoded.append(encode(msgspec.structs.replace(event, bus_seq=bus_seq, topic_seq=topic_seq)))
            return encoded[0]

        bus_seq, is_new = self.journal.append(topic, dedup_key, build)
        if is_new:
            self.after_commit.append((self.xpub, [topic.encode(), encoded[0]]))
            metrics.EVENTS_PUBLISHED.inc(kind_of(event))
        return bus_seq, is_new

    def _on_ready(self, peer: Peer, credit: int) -> None:
        peer.is_worker = True
        peer.credit += credit
        self.ready.extend([peer.identity] * credit)

    def _on_release(self, peer: Peer, release: Release) -> None:
        for cid in release.candidate_ids:
            if cid in peer.in_flight:
                self._requeue(peer, cid, "released")
        self._ack(peer, release, AckStatus.ACCEPTED)

    def _on_heartbeat(self, peer: Peer, heartbeat: Heartbeat, payload: bytes) -> None:
        if heartbeat.role is Role.BROKER:
            metrics.drop_frame("unexpected", f"peer {heartbeat.sender} claims the broker role")
            return
        peer.name = heartbeat.sender
        peer.role = heartbeat.role.value
        peer.incarnation = heartbeat.incarnation
        peer.state = heartbeat.state
        if heartbeat.role is Role.BENCHER:
            peer.is_worker = True
        for cid in heartbeat.in_flight:
            if cid in peer.in_flight:
                continue
            entry = self.candidates.get(cid)
            if entry is None:
                self.claims[cid] = peer.identity
            elif entry.worker is None:
                self._assign(entry, peer)  # its queue slot turns stale and is skipped
        # Heartbeats are ephemeral: re-published, never journaled, and never with sequence numbers
        # a peer made up (subscribers would chase them as gaps).
        if heartbeat.bus_seq or heartbeat.topic_seq:
            payload = encode(msgspec.structs.replace(heartbeat, bus_seq=0, topic_seq=0))
        self.after_commit.append((self.xpub, [heartbeat.topic.encode(), payload]))
        if heartbeat.state is PeerState.STOPPING:
            self._forget(peer, "stopping", requeue_reason="released")

    def _on_fetch(self, peer: Peer, request: FetchRequest) -> None:
        prefixes = prefixes_tuple(request.prefixes)
        journal = self.journal
        if request.latest_only:
            payloads, upto = journal.read_latest(prefixes), journal.head
        elif request.limit == 0:
            payloads, upto = [], journal.head
        else:
            payloads, upto = journal.read_after(
                min(request.after_bus_seq, journal.head), prefixes, request.limit, protocol.MAX_FETCH_SCAN_ROWS
            )
        complete = upto >= journal.head
        reply = self.stamper.make(
            FetchReply,
            ref=request.id,
            events=[msgspec.Raw(p) for p in payloads],
            upto_bus_seq=upto,
            head_bus_seq=journal.head,
            complete=complete,
            evicted_through=journal.evicted_through,
            topic_heads=journal.matching_heads(prefixes) if complete else {},
        )
        self.after_commit.append((self.router, [peer.identity, encode(reply)]))
        metrics.MESSAGES_SENT.inc("fetch_reply")

    # ------------------------------------------------------------ writing

    def _ack(self, peer: Peer, message: Message, status: AckStatus, bus_seq: int = 0) -> None:
        self.acks.setdefault(peer.identity, []).append(AckEntry(ref=message.id, status=status, bus_seq=bus_seq))

    def _refuse(self, identity: bytes, error: FrameError) -> None:
        """Answer a malformed message with a `rejected` ack entry giving the decoder's reason, so its
        sender stops re-sending it and can tell its owner why. Possible only when the frame names itself
        with a usable `id`; anything else stays dropped without an answer (counted and logged)."""
        if not error.ref or error.reason not in ("invalid", "unknown_kind"):
            return
        reason = f"{error.reason}: {error.detail}"[: protocol.MAX_REFUSAL_REASON_CHARS]
        self.acks.setdefault(identity, []).append(AckEntry(ref=error.ref, status=AckStatus.REJECTED, reason=reason))
        metrics.REFUSALS_SENT.inc(error.kind or "unknown")

    def _flush(self) -> None:
        """Commit the journal, then send everything that had to wait for the commit."""
        if self.journal.dirty:
            started = time.perf_counter()
            self.journal.commit()
            metrics.JOURNAL_COMMIT_SECONDS.inc(time.perf_counter() - started)
            metrics.JOURNAL_HEAD.set(self.journal.head)
        for identity, entries in self.acks.items():
            self._send(self.router, [identity, encode(self.stamper.make(Ack, entries=entries))], "ack")
        self.acks.clear()
        for sock, frames in self.after_commit:
            self._send(sock, frames, None)
        self.after_commit.clear()

    def _send(self, sock: zmq.Socket[bytes], frames: list[bytes], kind: str | None) -> int:
        """Send without ever blocking. Returns 0, or the errno (EAGAIN: peer's queue full;
        EHOSTUNREACH: peer gone); the peer recovers by re-sending or fetching."""
        try:
            # Frame by frame with int flags: send_multipart's flag arithmetic costs more than the sends.
            for frame in frames[:-1]:
                sock.send(frame, _MORE_NOBLOCK)
            sock.send(frames[-1], _NOBLOCK)
        except zmq.ZMQError as error:
            if kind:
                metrics.SEND_DROPPED.inc(kind)
            return int(error.errno or zmq.EAGAIN)
        if kind:
            metrics.MESSAGES_SENT.inc(kind)
        return 0

    def _dispatch(self) -> None:
        """Hand queued candidates to workers that have credit, least recently ready first."""
        while self.queue and self.ready:
            cid = self.queue[0]
            entry = self.candidates.get(cid)
            if entry is None or entry.worker is not None:
                self.queue.popleft()  # finished or already running: a stale queue slot
                continue
            identity = self.ready.popleft()
            peer = self.peers.get(identity)
            if peer is None or peer.credit <= 0 or peer.state in (PeerState.DRAINING, PeerState.STOPPING):
                continue
            self.queue.popleft()
            peer.credit -= 1
            error = self._send(self.router, [identity, entry.payload], "candidate")
            if error:
                self.queue.appendleft(cid)
                if error == zmq.EHOSTUNREACH:
                    self._forget(peer, "unreachable")
                else:  # its queue is full: keep its credit and try again next turn
                    peer.credit += 1
                    self.ready.appendleft(identity)
                    break
                continue
            self._assign(entry, peer)
            metrics.DISPATCHES.inc()

    def _requeue(self, peer: Peer, cid: str, reason: str) -> None:
        peer.in_flight.discard(cid)
        entry = self.candidates.get(cid)
        if entry is None or entry.worker != peer.identity:
            return
        entry.worker = None
        if reason == "worker_lost" and entry.dispatches >= self.cfg.max_dispatches:
            self._give_up(entry)
            return
        metrics.REDISPATCHES.labels(reason).inc()
        self.queue.appendleft(cid)

    def _give_up(self, entry: QueuedCandidate) -> None:
        candidate = entry.candidate
        detail = f"the broker gave up: {entry.dispatches} workers were lost while running this candidate"
        log.warning("giving up candidate=%s dispatches=%d", candidate.candidate_id, entry.dispatches)
        result = self.stamper.make(
            Result, **Result.for_candidate(candidate, verdict=Verdict.INFRA_ERROR, detail=detail, host=self.host)
        )
        self._journal_event(result, dedup_key_of_result(candidate.candidate_id))
        del self.candidates[candidate.candidate_id]

    def _forget(self, peer: Peer, why: str, requeue_reason: str = "worker_lost") -> None:
        for cid in list(peer.in_flight):
            self._requeue(peer, cid, requeue_reason)
        for cid in [c for c, identity in self.claims.items() if identity == peer.identity]:
            del self.claims[cid]
        self.peers.pop(peer.identity, None)
        log.info("peer gone name=%s role=%s why=%s", peer.name, peer.role, why)

    def _expire_peers(self, now: float) -> None:
        deadline = now - self.bus.peer_timeout_s
        for peer in [p for p in self.peers.values() if p.last_seen < deadline]:
            self._forget(peer, "silent")

    def _send_heartbeats(self, queued: int) -> None:
        worker_names = sorted(p.name for p in self.peers.values() if p.is_worker)
        workers = len(worker_names)
        heartbeat = self.stamper.make(
            Heartbeat,
            role=Role.BROKER,
            incarnation=self.stamper.incarnation,
            host=self.host,
            pid=os.getpid(),
            journal_head=self.journal.head,
            topic_heads=dict(self.journal.topic_heads),
            workers=workers,
            queued=queued,
        )
        payload = encode(heartbeat)
        for identity in self.peers:
            self._send(self.router, [identity, payload], "heartbeat")
        published = encode(msgspec.structs.replace(heartbeat, worker_names=worker_names))
        self.after_commit.append((self.xpub, [protocol.BROKER_HEARTBEAT_TOPIC.encode(), published]))
        metrics.CONNECTED_WORKERS.set(workers)
        metrics.CONNECTED_PEERS.set(len(self.peers))

    def _update_gauges(self) -> int:
        """Set the candidate gauges; returns the number waiting for a worker."""
        in_flight = sum(1 for e in self.candidates.values() if e.worker is not None)
        queued = len(self.candidates) - in_flight
        metrics.IN_FLIGHT_CANDIDATES.set(in_flight)
        metrics.QUEUED_CANDIDATES.set(queued)
        return queued
