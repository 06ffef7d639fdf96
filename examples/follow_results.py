#!/usr/bin/env python3
"""Follow benchmark results on an hpcrl bus and print each as one JSON line, missing none.

A subscriber written from docs/protocol.md alone: it uses only pyzmq and msgpack (no hpcrl import), so it
doubles as a template for clients in other languages. The dialog (protocol.md sections 3.2, 6.5, 8.4):

    connect   SUB -> event endpoint (subscribed to result.<problem> or result., and heartbeat.broker),
              DEALER -> request endpoint (ZMQ_IMMEDIATE)
    introduce heartbeat {role: client}, then one every interval
    sync      fetch {prefixes, limit: 0}: every topic's head, i.e. where "now" is; or, with --since N,
              fetch {prefixes, after_bus_seq: N, limit: 1000} page by page: replay the journal first.
              Live events are held until the sync is complete.
    follow    print live results in topic_seq order; when a topic_seq gap or a broker heartbeat's
              topic_heads shows a topic ahead of us, fetch {prefixes: [topic], after_bus_seq: <its last
              bus_seq>} and print what was missed, then the held live events

Results are printed as published (the `result` message, `kind` included), in topic_seq order per topic;
across topics a recovered result can come after newer ones. Exit status: 0 once --count results were
printed, or when --timeout-s ends a run without --count; 1 when the timeout came first or on a bad
argument (reason on stderr). Every receive is bounded by a zmq.Poller timeout.

    python examples/follow_results.py --problem dgemm --count 10 --timeout-s 600
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq

SCHEMA_VERSION = 1
HEARTBEAT_LIVENESS = 3
"""Heartbeat intervals of silence after which ZeroMQ drops the connection and reconnects."""
FETCH_RETRY_S = 2.0
"""Re-send a fetch unanswered this long (as a new message)."""
FETCH_PAGE_EVENTS = 1000
RESULT_TOPIC_PREFIX = "result."
BROKER_HEARTBEAT_TOPIC = "heartbeat.broker"
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 5000
HWM_MESSAGES = 100_000
LINGER_MS = 500
SYNC = ""
"""Key of the initial sync fetch among the outstanding fetches (the others are keyed by topic)."""

Message = dict[str, Any]


def log(text: str) -> None:
    print(f"follow_results: {text}", file=sys.stderr, flush=True)


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


def topic_of(result: Message) -> str:
    """A result's topic, derived from its payload (protocol.md 3.3): fetched events carry no topic frame."""
    return RESULT_TOPIC_PREFIX + str(result.get("problem", ""))


# ---------------------------------------------------------------- the two sockets (protocol.md 2, 3, 7)


class Bus:
    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        request_endpoint: str,
        event_endpoint: str,
        subscriptions: list[str],
        heartbeat_interval_s: float,
    ) -> None:
        self.heartbeat_interval_s = heartbeat_interval_s
        self.stamper = Stamper(f"follow-results-{socket.gethostname()}-{os.getpid()}")
        # SUB first, so its subscriptions start propagating while the DEALER connects.
        self.sub = self._socket(ctx, zmq.SUB)
        for prefix in subscriptions:
            self.sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.sub.connect(event_endpoint)
        self.dealer = self._socket(ctx, zmq.DEALER)
        # Fail sends while disconnected instead of queueing stale messages for a future broker.
        self.dealer.setsockopt(zmq.IMMEDIATE, 1)
        self.dealer.connect(request_endpoint)
        self.poller = zmq.Poller()
        self.poller.register(self.dealer, zmq.POLLIN)
        self.poller.register(self.sub, zmq.POLLIN)
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

    def send(self, message: Message) -> bool:
        """Non-blocking; False while disconnected (the caller's timers re-send)."""
        try:
            self.dealer.send(encode(message), zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def heartbeat(self, state: str) -> None:
        self.send(
            self.stamper.make(
                "heartbeat",
                role="client",
                incarnation=self.stamper.incarnation,
                state=state,
                in_flight=[],
                host=socket.gethostname(),
                pid=os.getpid(),
            )
        )

    def heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.heartbeat_interval_s
            self.heartbeat("idle")

    def wait_connected(self, deadline: float) -> bool:
        """With ZMQ_IMMEDIATE the DEALER is writable only once a connection to the broker is up."""
        while time.monotonic() < deadline:
            if self.dealer.poll(100, zmq.POLLOUT):
                return True
        return False

    def receive(self, timeout_s: float) -> list[tuple[str | None, Message]]:
        """Wait up to timeout_s; returns (None, message) from the DEALER and (topic, event) from the SUB."""
        received: list[tuple[str | None, Message]] = []
        ready = dict(self.poller.poll(int(max(0.0, timeout_s) * 1000)))
        if self.dealer in ready:
            while True:
                try:
                    frame = self.dealer.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                message = decode(frame)
                if message is not None:
                    received.append((None, message))
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
                    received.append((frames[0].decode(errors="replace"), message))
        return received

    def close(self) -> None:
        # Say goodbye so the broker forgets us now rather than after the liveness timeout.
        self.heartbeat("stopping")
        self.sub.close(linger=0)
        self.dealer.close()


# ---------------------------------------------------------------- gap recovery (protocol.md 8.4)


@dataclass
class Position:
    """The last event of a topic accounted for: printed, or counted as lost."""

    topic_seq: int = 0
    bus_seq: int = 0


@dataclass
class Fetch:
    fields: dict[str, Any]
    """prefixes, after_bus_seq, limit: kept to re-send it as a new message."""
    request_id: str
    sent_at: float = field(default_factory=time.monotonic)


class Follower:
    """Delivers every journaled result of the wanted topics once, in topic_seq order per topic.

    Protocol.md 8.4 describes one fetch for all topics; this follower keeps one fetch per topic
    instead, which makes every hole in a topic's fetch reply an eviction (the fetch starts at the
    topic's own last position), at the price of a fetch per topic that fell behind."""

    def __init__(
        self, bus: Bus, prefix: str, exact_topic: str | None, since: int | None, deliver: Callable[[Message], None]
    ) -> None:
        self.bus = bus
        self.prefix = prefix
        self.exact_topic = exact_topic
        self.since = since
        self.deliver_to = deliver
        self.positions: dict[str, Position] = {}
        self.base_bus_seq = since or 0
        """Topics without a position have nothing we missed up to here."""
        self.synced = False
        self.outstanding: dict[str, Fetch] = {}
        self.held: list[tuple[str, Message]] = []
        self.broker_incarnation = ""
        self.recovered = 0
        self.lost = 0

    def wants(self, topic: str) -> bool:
        return topic == self.exact_topic if self.exact_topic else topic.startswith(self.prefix)

    def position(self, topic: str) -> Position:
        return self.positions.get(topic) or Position(0, self.base_bus_seq)

    # ------------------------------------------------------------ fetching

    def start(self) -> None:
        if self.since is None:
            self.fetch(SYNC, prefixes=[self.prefix], limit=0)  # heads only: start from now
        else:
            self.fetch(SYNC, prefixes=[self.prefix], after_bus_seq=self.since, limit=FETCH_PAGE_EVENTS)

    def fetch(self, key: str, **fields: Any) -> None:
        request = self.bus.stamper.make("fetch", **fields)
        self.outstanding[key] = Fetch(fields, request["id"])
        self.bus.send(request)  # if this fails (disconnected), tick() re-sends it

    def recover(self, topic: str) -> None:
        """Fetch every event of `topic` after the last one we accounted for."""
        after = self.position(topic).bus_seq
        self.fetch(topic, prefixes=[topic], after_bus_seq=after, limit=FETCH_PAGE_EVENTS)

    def tick(self) -> None:
        """Re-send fetches unanswered for FETCH_RETRY_S, as new messages (fetches are idempotent)."""
        now = time.monotonic()
        for key, pending in list(self.outstanding.items()):
            if now - pending.sent_at > FETCH_RETRY_S:
                self.fetch(key, **pending.fields)

    # ------------------------------------------------------------ what arrives

    def on_live(self, topic: str, event: Message) -> None:
        """A result from the SUB socket (or a held one being replayed)."""
        if not self.wants(topic) or topic != topic_of(event):
            return  # another problem (prefixes overlap), or a topic frame that lies about its payload
        if not self.synced or topic in self.outstanding:
            self.held.append((topic, event))  # the fetch under way accounts for it
            return
        last = self.position(topic).topic_seq
        seq = int(event.get("topic_seq", 0))
        if seq <= last:
            return  # a duplicate: already printed
        if seq == last + 1:
            self.deliver(topic, event)
            return
        self.held.append((topic, event))
        self.recover(topic)  # a gap: topic_seq last+1 .. seq-1 went missing

    def on_broker_heartbeat(self, heartbeat: Message) -> None:
        """Head check: a broker heartbeat shows a topic ahead of us when we missed its *last* event."""
        incarnation = str(heartbeat.get("incarnation", ""))
        if self.broker_incarnation and incarnation != self.broker_incarnation:
            log("the broker restarted: sending outstanding fetches again")
            for key, pending in list(self.outstanding.items()):
                self.fetch(key, **pending.fields)
        self.broker_incarnation = incarnation
        if not self.synced:
            return
        for topic, head in heartbeat.get("topic_heads", {}).items():
            if self.wants(topic) and topic not in self.outstanding and head > self.position(topic).topic_seq:
                self.recover(topic)

    def on_fetch_reply(self, reply: Message) -> None:
        key = next((k for k, f in self.outstanding.items() if f.request_id == reply.get("ref")), None)
        if key is None:
            return  # a reply to a fetch we re-sent since, or no longer wait for
        answered = self.outstanding.pop(key)
        upto = int(reply.get("upto_bus_seq", 0))
        first_sync = key == SYNC and not self.synced
        for event in reply.get("events", []):
            topic = topic_of(event) if isinstance(event, dict) else ""
            if self.wants(topic) and (key == SYNC or topic == key):
                self.account_fetched(topic, event, first_sync)
        if not reply.get("complete", False):  # one page of several: continue where it stopped
            self.fetch(key, **{**answered.fields, "after_bus_seq": upto})
            return
        for topic, head in reply.get("topic_heads", {}).items():
            if not self.wants(topic) or (key != SYNC and topic != key):
                continue
            if first_sync and topic not in self.positions:
                self.positions[topic] = Position(head, upto)  # nothing of it after the starting point
            elif head > self.position(topic).topic_seq:
                # Every event of the topic up to `upto` was in the reply: the missing ones were evicted.
                self.count_lost(topic, head - self.position(topic).topic_seq)
                self.positions[topic] = Position(head, upto)
        if first_sync:
            self.synced = True
            self.base_bus_seq = upto
            log(f"in sync at bus_seq {upto}: following {self.exact_topic or self.prefix + '*'}")
        # Replay the live events held meanwhile: all of them after the sync, else this topic's.
        replay = [(t, e) for t, e in self.held if key == SYNC or t == key]
        self.held = [(t, e) for t, e in self.held if not (key == SYNC or t == key)]
        for topic, event in sorted(replay, key=lambda held: int(held[1].get("bus_seq", 0))):
            self.on_live(topic, event)

    def account_fetched(self, topic: str, event: Message, first_sync: bool) -> None:
        seq = int(event.get("topic_seq", 0))
        if first_sync and topic not in self.positions:
            # A replay from --since starts anywhere in a topic; from 0 it must start at topic_seq 1.
            if self.since == 0 and seq > 1:
                self.count_lost(topic, seq - 1)
            self.deliver(topic, event)
            return
        last = self.position(topic).topic_seq
        if seq <= last:
            return  # printed already (it also came live)
        if seq > last + 1:
            # This fetch started at the topic's own last position: what is missing was evicted.
            self.count_lost(topic, seq - last - 1)
        if not first_sync:
            self.recovered += 1
        self.deliver(topic, event)

    def count_lost(self, topic: str, count: int) -> None:
        self.lost += count
        log(f"{count} event(s) of {topic} were evicted from the broker's journal before we could fetch them")

    def deliver(self, topic: str, event: Message) -> None:
        self.positions[topic] = Position(int(event.get("topic_seq", 0)), int(event.get("bus_seq", 0)))
        self.deliver_to(event)


# ---------------------------------------------------------------- command line


def follow(bus: Bus, follower: Follower, deadline: float, done: Callable[[], bool]) -> None:
    follower.start()
    while not done() and time.monotonic() < deadline:
        for topic, message in bus.receive(min(max(0.0, deadline - time.monotonic()), 0.1)):
            kind = message["kind"]
            if kind == "heartbeat" and message.get("role") == "broker":
                follower.on_broker_heartbeat(message)  # from the DEALER or on heartbeat.broker
            elif topic is not None and kind == "result":
                follower.on_live(topic, message)
            elif topic is None and kind == "fetch_reply":
                follower.on_fetch_reply(message)
        bus.heartbeat_if_due()
        follower.tick()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    parser.add_argument("--problem", help="only this problem's results (default: every problem's)")
    parser.add_argument("--since", type=int, help="first print every journaled result after this bus_seq (0: all)")
    parser.add_argument("--count", type=int, help="exit 0 after printing this many results")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="stop after this many seconds (default: 600)")
    args = parser.parse_args(argv)
    if args.heartbeat_interval_s <= 0 or args.timeout_s <= 0:
        log("--heartbeat-interval-s and --timeout-s must be > 0")
        return 1
    if (args.count is not None and args.count < 0) or (args.since is not None and args.since < 0):
        log("--count and --since must be >= 0")
        return 1

    exact_topic = RESULT_TOPIC_PREFIX + args.problem if args.problem else None
    prefix = exact_topic or RESULT_TOPIC_PREFIX
    printed = 0

    def print_result(result: Message) -> None:
        nonlocal printed
        if args.count is None or printed < args.count:
            print(json.dumps(result), flush=True)
            printed += 1

    def done() -> bool:
        return args.count is not None and printed >= args.count

    deadline = time.monotonic() + args.timeout_s
    ctx = zmq.Context()
    bus = Bus(
        ctx, args.request_endpoint, args.event_endpoint, [prefix, BROKER_HEARTBEAT_TOPIC], args.heartbeat_interval_s
    )
    follower = Follower(bus, prefix, exact_topic, args.since, print_result)
    try:
        if not bus.wait_connected(deadline):
            log("timed out: no connection to the broker's request endpoint")
            return 1
        bus.heartbeat_if_due()  # introduce ourselves before anything else
        follow(bus, follower, deadline, done)
    finally:
        bus.close()
        ctx.term()
    log(f"printed {printed} result(s): {follower.recovered} recovered from the journal, {follower.lost} lost")
    if args.count is not None and not done():
        log(f"timed out after {args.timeout_s:g} s with {printed} of {args.count} results")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
