#!/usr/bin/env python3
"""Submit one C candidate to an hpcrl bus and print its result as one JSON line.

A client written from docs/protocol.md alone: it uses only pyzmq and msgpack (no hpcrl import), so it
doubles as a template for clients in other languages. The dialog (protocol.md sections 6.1, 6.5, 8.4):

    connect   SUB -> event endpoint (subscribed to "result."), DEALER -> request endpoint (ZMQ_IMMEDIATE)
    introduce heartbeat {role: client}
    learn     fetch {prefixes: [result.<problem>], limit: 0}  -> where "now" is for our topic
    submit    candidate {candidate_id}                         -> ack accepted | duplicate | done | rejected
    wait      result.<problem> events; fetch whatever a gap, a broker heartbeat or a `done` ack says we missed

Exit status: 0 with the result printed on stdout; 1 on timeout, rejection or a bad argument (reason on
stderr). Every receive is bounded by a zmq.Poller timeout.

    python examples/submit_candidate.py --problem dgemm --size 256 mm.c
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zmq

SCHEMA_VERSION = 1
HEARTBEAT_LIVENESS = 3
"""Heartbeat intervals of silence after which ZeroMQ drops the connection and reconnects."""
ACK_TIMEOUT_S = 5.0
"""Re-send the candidate (same message) when the broker has not acknowledged it this long."""
MAX_UNACKED_SENDS = 10
"""Give up after this many sends to a connected broker without an ack (protocol.md 8.1): the broker drops
without a word only what it cannot name, and a refusal comes back as an ack `rejected`."""
FETCH_RETRY_S = 2.0
"""Re-send a fetch unanswered this long."""
FETCH_PAGE_EVENTS = 1000
RESULT_TOPIC_PREFIX = "result."
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 5000
HWM_MESSAGES = 100_000
LINGER_MS = 500

Message = dict[str, Any]


def log(text: str) -> None:
    print(f"submit_candidate: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- encoding (protocol.md section 4)


class Stamper:
    """Fills the envelope every message carries: kind, v, id, sender, seq, sent_at."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        self.incarnation = secrets.token_hex(8)
        self.seq = 0

    def make(self, kind: str, **fields: Any) -> Message:
        self.seq += 1
        return {
            "kind": kind,
            "v": SCHEMA_VERSION,
            "id": f"{self.incarnation}-{self.seq}",
            "sender": self.sender,
            "seq": self.seq,
            "sent_at": time.time(),
            **fields,
        }


def encode(message: Message) -> bytes:
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def decode(frame: bytes) -> Message | None:
    """The message in a frame, or None for anything this client cannot use (dropped, never fatal)."""
    try:
        message = msgpack.unpackb(frame, raw=False)
    except (ValueError, msgpack.UnpackException):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
        return None
    if message.get("v", SCHEMA_VERSION) != SCHEMA_VERSION:
        return None
    return message


# ---------------------------------------------------------------- the client


@dataclass
class TopicPosition:
    """Last event of our topic we have accounted for (protocol.md 8.4)."""

    topic_seq: int = 0
    bus_seq: int = 0


@dataclass
class Fetch:
    request: Message
    purpose: str
    """`sync`: keep our topic position current; `lookup`: find the result a `done` ack points at."""
    sent_at: float = field(default_factory=time.monotonic)


class Submitter:
    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        request_endpoint: str,
        event_endpoint: str,
        heartbeat_interval_s: float,
    ) -> None:
        self.heartbeat_interval_s = heartbeat_interval_s
        self.stamper = Stamper(f"submit-example-{socket.gethostname()}-{os.getpid()}")
        # SUB first, so its subscription starts propagating while the DEALER connects.
        self.sub = self._socket(ctx, zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, RESULT_TOPIC_PREFIX.encode())
        self.sub.connect(event_endpoint)
        self.dealer = self._socket(ctx, zmq.DEALER)
        # Fail sends while disconnected instead of queueing stale messages for a future broker.
        self.dealer.setsockopt(zmq.IMMEDIATE, 1)
        self.dealer.connect(request_endpoint)
        self.poller = zmq.Poller()
        self.poller.register(self.dealer, zmq.POLLIN)
        self.poller.register(self.sub, zmq.POLLIN)
        self.broker_incarnation = ""
        self.next_heartbeat = 0.0

    def _socket(self, ctx: zmq.Context[zmq.Socket[bytes]], kind: int) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        sock.setsockopt(zmq.SNDHWM, HWM_MESSAGES)
        sock.setsockopt(zmq.RCVHWM, HWM_MESSAGES)
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(self.heartbeat_interval_s * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(self.heartbeat_interval_s * HEARTBEAT_LIVENESS * 1000))
        return sock

    def close(self) -> None:
        # Say goodbye so the broker forgets us now rather than after the liveness timeout.
        self.send(self._heartbeat("stopping"))
        self.sub.close(linger=0)
        self.dealer.close()

    # ------------------------------------------------------------ sending

    def send(self, message: Message | bytes) -> bool:
        """Non-blocking; False while disconnected (the caller's timers re-send)."""
        try:
            self.dealer.send(message if isinstance(message, bytes) else encode(message), zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _heartbeat(self, state: str) -> Message:
        return self.stamper.make(
            "heartbeat",
            role="client",
            incarnation=self.stamper.incarnation,
            state=state,
            in_flight=[],
            host=socket.gethostname(),
            pid=os.getpid(),
        )

    def heartbeat_if_due(self, state: str) -> None:
        now = time.monotonic()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.heartbeat_interval_s
            self.send(self._heartbeat(state))

    def wait_connected(self, deadline: float) -> bool:
        """With ZMQ_IMMEDIATE the DEALER is writable only once a connection to the broker is up."""
        while time.monotonic() < deadline:
            if self.dealer.poll(100, zmq.POLLOUT):
                return True
        return False

    # ------------------------------------------------------------ receiving

    def receive(self, timeout_s: float) -> list[tuple[str, Message]]:
        """Wait up to timeout_s; returns ("dealer", message) and ("event:<topic>", message) pairs."""
        received: list[tuple[str, Message]] = []
        ready = dict(self.poller.poll(int(max(0.0, timeout_s) * 1000)))
        if self.dealer in ready:
            while True:
                try:
                    frame = self.dealer.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                message = decode(frame)
                if message is not None:
                    received.append(("dealer", message))
        if self.sub in ready:
            while True:
                try:
                    frames = self.sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) != 2:
                    continue  # events are exactly [topic, payload]
                message = decode(frames[1])
                if message is not None:
                    received.append((f"event:{frames[0].decode(errors='replace')}", message))
        return received


def submit_and_wait(client: Submitter, candidate: Message, timeout_s: float) -> Message | None:
    """Run the whole dialog; returns the result map, or None at the deadline."""
    deadline = time.monotonic() + timeout_s
    topic = RESULT_TOPIC_PREFIX + candidate["problem"]
    candidate_frame = encode(candidate)
    if not client.wait_connected(deadline):
        log("timed out: no connection to the broker's request endpoint")
        return None
    client.heartbeat_if_due("busy")

    position: TopicPosition | None = None  # unknown until the first complete sync reply
    fetches: dict[str, Fetch] = {}
    acked = False
    candidate_sent_at = 0.0
    unacked_sends = 0

    def fetch(purpose: str, **fields: Any) -> None:
        request = client.stamper.make("fetch", prefixes=[topic], **fields)
        if purpose == "sync":  # one sync fetch at a time: a newer one supersedes the old
            for ref in [r for r, f in fetches.items() if f.purpose == "sync"]:
                del fetches[ref]
        fetches[request["id"]] = Fetch(request, purpose)
        client.send(request)

    def send_candidate() -> None:
        nonlocal candidate_sent_at, unacked_sends
        candidate_sent_at = time.monotonic()
        if client.send(candidate_frame):  # a re-send is the same message: same id, same candidate_id
            unacked_sends += 1  # a send while disconnected fails at once and does not count

    def is_ours(event: Message) -> bool:
        return event.get("kind") == "result" and event.get("candidate_id") == candidate["candidate_id"]

    fetch("sync", limit=0)  # learn our topic's head first, so any later gap is visible
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log(f"timed out after {timeout_s:g} s waiting for the result of candidate {candidate['candidate_id']}")
            return None
        for source, message in client.receive(min(remaining, 0.1)):
            kind = message["kind"]
            if source.startswith("event:"):
                if source != f"event:{topic}":
                    continue  # another problem's results ("result." is a prefix subscription)
                if is_ours(message):
                    log(f"result received live at bus_seq={message.get('bus_seq', 0)}")
                    return message
                seq = message.get("topic_seq", 0)
                if position is None or any(f.purpose == "sync" for f in fetches.values()):
                    continue  # a fetch is under way; its reply accounts for this event
                if seq == position.topic_seq + 1:
                    position = TopicPosition(seq, message.get("bus_seq", 0))
                elif seq > position.topic_seq + 1:
                    fetch("sync", after_bus_seq=position.bus_seq, limit=FETCH_PAGE_EVENTS)  # a gap
            elif kind == "fetch_reply" and message.get("ref") in fetches:
                purpose = fetches.pop(message["ref"]).purpose
                for event in message.get("events", []):
                    if isinstance(event, dict) and is_ours(event):
                        log(f"result recovered by a {purpose} fetch at bus_seq={event.get('bus_seq', 0)}")
                        return event
                if purpose != "sync":
                    continue
                if not message.get("complete", False):
                    fetch("sync", after_bus_seq=message.get("upto_bus_seq", 0), limit=FETCH_PAGE_EVENTS)
                    continue
                upto = message.get("upto_bus_seq", 0)
                head = message.get("topic_heads", {}).get(topic, 0)
                position = TopicPosition(max(head, position.topic_seq if position else 0), upto)
                if not candidate_sent_at:
                    log(f"journal head {message.get('head_bus_seq', 0)}, {topic} at topic_seq {head}: submitting")
                    send_candidate()
            elif kind == "ack":
                for entry in message.get("entries", []):
                    if entry.get("ref") != candidate["id"]:
                        continue
                    status = entry.get("status")
                    acked = True
                    if status == "rejected":
                        log(f"the broker rejected the candidate: {entry.get('reason', '')}")
                        return None
                    if status == "done":
                        # Already benchmarked: the broker does not send the result again; fetch it.
                        fetch("lookup", after_bus_seq=max(0, entry.get("bus_seq", 0) - 1), limit=1)
                    log(f"ack {status} bus_seq={entry.get('bus_seq', 0)}")
            elif kind == "heartbeat" and message.get("role") == "broker":
                incarnation = message.get("incarnation", "")
                if client.broker_incarnation and incarnation != client.broker_incarnation and candidate_sent_at:
                    log("the broker restarted: submitting again")  # its candidate queue was in memory
                    acked, unacked_sends = False, 0  # a new broker: count its sends afresh
                    send_candidate()
                client.broker_incarnation = incarnation
                behind = message.get("topic_heads", {}).get(topic, 0) > (position.topic_seq if position else 0)
                if position is not None and behind and not any(f.purpose == "sync" for f in fetches.values()):
                    fetch("sync", after_bus_seq=position.bus_seq, limit=FETCH_PAGE_EVENTS)

        # Timers: our heartbeat, the candidate's ack, unanswered fetches.
        now = time.monotonic()
        client.heartbeat_if_due("busy")
        if candidate_sent_at and not acked and now - candidate_sent_at > ACK_TIMEOUT_S:
            if unacked_sends >= MAX_UNACKED_SENDS:
                log(f"the broker never acknowledged the candidate after {unacked_sends} sends: giving up")
                return None
            log("no ack in time: sending the candidate again")
            send_candidate()
        for ref, pending in list(fetches.items()):
            if now - pending.sent_at > FETCH_RETRY_S and fetches.pop(ref, None) is not None:
                fields = {k: pending.request[k] for k in ("after_bus_seq", "limit") if k in pending.request}
                fetch(pending.purpose, **fields)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="C source file of the candidate")
    parser.add_argument(
        "--request-endpoint",
        default=os.environ.get("HPCRL_BUS__REQUEST_ENDPOINT", "tcp://127.0.0.1:5555"),
        help="the broker's ROUTER endpoint (default: $HPCRL_BUS__REQUEST_ENDPOINT or tcp://127.0.0.1:5555)",
    )
    parser.add_argument(
        "--event-endpoint",
        default=os.environ.get("HPCRL_BUS__EVENT_ENDPOINT", "tcp://127.0.0.1:5556"),
        help="the broker's XPUB endpoint (default: $HPCRL_BUS__EVENT_ENDPOINT or tcp://127.0.0.1:5556)",
    )
    parser.add_argument(
        "--heartbeat-interval-s",
        type=float,
        default=float(os.environ.get("HPCRL_BUS__HEARTBEAT_INTERVAL_S", "1.0")),
        help="must match the bus (default: $HPCRL_BUS__HEARTBEAT_INTERVAL_S or 1.0)",
    )
    parser.add_argument("--problem", default="dgemm", help="benchmark problem (default: dgemm)")
    parser.add_argument("--size", type=int, default=256, help="problem size (default: 256)")
    parser.add_argument("--run", default="adhoc", help="run name (default: adhoc)")
    parser.add_argument("--candidate-id", help="idempotency key (default: a random UUID); re-use it to re-ask")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    try:
        source = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        log(f"cannot read {args.file}: {error}")
        return 1
    if args.heartbeat_interval_s <= 0 or args.timeout_s <= 0 or args.size <= 0:
        log("--heartbeat-interval-s, --timeout-s and --size must be > 0")
        return 1

    ctx = zmq.Context()
    client = Submitter(ctx, args.request_endpoint, args.event_endpoint, args.heartbeat_interval_s)
    try:
        candidate = client.stamper.make(
            "candidate",
            candidate_id=args.candidate_id or uuid.uuid4().hex,
            run=args.run,
            problem=args.problem,
            size=args.size,
            stage=0,
            policy_version=0,
            source=source,
            attempt=1,
        )
        result = submit_and_wait(client, candidate, args.timeout_s)
    finally:
        client.close()
        ctx.term()
    if result is None:
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
