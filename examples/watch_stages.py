#!/usr/bin/env python3
"""Print the current stage of every problem on an hpcrl bus, then every stage change, as JSON lines.

A subscriber written from docs/protocol.md alone: it uses only pyzmq and msgpack (no hpcrl import), so it
doubles as a template for clients in other languages. It is the Clone pattern: a snapshot, then updates
(protocol.md sections 3.2, 5.5, 6.5, 8.4):

    connect   SUB -> event endpoint (subscribed to stage.<problem> or stage., and heartbeat.broker),
              DEALER -> request endpoint (ZMQ_IMMEDIATE)
    introduce heartbeat {role: client}, then one every interval
    snapshot  fetch {prefixes, latest_only: true}: the newest stage_change of every problem (the journal
              never evicts a topic's newest event); print them. Live events are held until it is answered.
    follow    print live stage changes in topic_seq order; when a topic_seq gap or a broker heartbeat's
              topic_heads shows a problem ahead of us, fetch {prefixes: [topic], after_bus_seq: <its last
              bus_seq>} and print the changes that were missed, then the held live ones

Stage changes are printed as published (the `stage_change` message, `kind` included); a problem's current
stage is the `to_stage` of its last line. Exit status: 0 once --count changes after the snapshot were
printed (--count 0: the snapshot only), or when --timeout-s ends a run without --count; 1 when the timeout
came first or on a bad argument (reason on stderr). Every receive is bounded by a zmq.Poller timeout.

    python examples/watch_stages.py --timeout-s 3600
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
STAGE_TOPIC_PREFIX = "stage."
BROKER_HEARTBEAT_TOPIC = "heartbeat.broker"
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 5000
HWM_MESSAGES = 100_000
LINGER_MS = 500
SYNC = ""
"""Key of the snapshot fetch among the outstanding fetches (the others are keyed by topic)."""

Message = dict[str, Any]


def log(text: str) -> None:
    print(f"watch_stages: {text}", file=sys.stderr, flush=True)


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


def topic_of(stage_change: Message) -> str:
    """A stage change's topic, derived from its payload (protocol.md 3.3): fetched events carry no topic frame."""
    return STAGE_TOPIC_PREFIX + str(stage_change.get("problem", ""))


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
        self.stamper = Stamper(f"watch-stages-{socket.gethostname()}-{os.getpid()}")
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
    """Delivers the newest stage change of every wanted topic (the snapshot), then every later one once,
    in topic_seq order per topic.

    Protocol.md 8.4 describes one fetch for all topics; this follower keeps one fetch per topic
    instead, which makes every hole in a topic's fetch reply an eviction (the fetch starts at the
    topic's own last position), at the price of a fetch per topic that fell behind."""

    def __init__(self, bus: Bus, prefix: str, exact_topic: str | None, deliver: Callable[[Message], None]) -> None:
        self.bus = bus
        self.prefix = prefix
        self.exact_topic = exact_topic
        self.deliver_to = deliver
        self.positions: dict[str, Position] = {}
        self.base_bus_seq = 0
        """Topics without a position have nothing we missed up to here."""
        self.synced = False
        """True once the snapshot is in."""
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
        self.fetch(SYNC, prefixes=[self.prefix], latest_only=True)  # the snapshot: each topic's newest event

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
        """A stage change from the SUB socket (or a held one being replayed)."""
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
            log(f"snapshot of {len(self.positions)} problem(s) at bus_seq {upto}: following changes")
        # Replay the live events held meanwhile: all of them after the sync, else this topic's.
        replay = [(t, e) for t, e in self.held if key == SYNC or t == key]
        self.held = [(t, e) for t, e in self.held if not (key == SYNC or t == key)]
        for topic, event in sorted(replay, key=lambda held: int(held[1].get("bus_seq", 0))):
            self.on_live(topic, event)

    def account_fetched(self, topic: str, event: Message, first_sync: bool) -> None:
        seq = int(event.get("topic_seq", 0))
        if first_sync:
            self.deliver(topic, event)  # the snapshot: the problem's current stage
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
            elif topic is not None and kind == "stage_change":
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
    parser.add_argument("--problem", help="only this problem's stage (default: every problem's)")
    parser.add_argument(
        "--count", type=int, help="exit 0 after printing this many changes after the snapshot (0: the snapshot only)"
    )
    parser.add_argument("--timeout-s", type=float, default=600.0, help="stop after this many seconds (default: 600)")
    args = parser.parse_args(argv)
    if args.heartbeat_interval_s <= 0 or args.timeout_s <= 0:
        log("--heartbeat-interval-s and --timeout-s must be > 0")
        return 1
    if args.count is not None and args.count < 0:
        log("--count must be >= 0")
        return 1

    exact_topic = STAGE_TOPIC_PREFIX + args.problem if args.problem else None
    prefix = exact_topic or STAGE_TOPIC_PREFIX
    current = changes = 0

    def print_stage_change(stage_change: Message) -> None:
        nonlocal current, changes
        if not follower.synced:  # part of the snapshot
            current += 1
        elif args.count is None or changes < args.count:
            changes += 1
        else:
            return
        print(json.dumps(stage_change), flush=True)

    def done() -> bool:
        return follower.synced and args.count is not None and changes >= args.count

    deadline = time.monotonic() + args.timeout_s
    ctx = zmq.Context()
    bus = Bus(
        ctx, args.request_endpoint, args.event_endpoint, [prefix, BROKER_HEARTBEAT_TOPIC], args.heartbeat_interval_s
    )
    follower = Follower(bus, prefix, exact_topic, print_stage_change)
    try:
        if not bus.wait_connected(deadline):
            log("timed out: no connection to the broker's request endpoint")
            return 1
        bus.heartbeat_if_due()  # introduce ourselves before anything else
        follow(bus, follower, deadline, done)
    finally:
        bus.close()
        ctx.term()
    log(
        f"printed the current stage of {current} problem(s) and {changes} change(s): "
        f"{follower.recovered} recovered from the journal, {follower.lost} lost"
    )
    if args.count is not None and not done():
        log(f"timed out after {args.timeout_s:g} s with {changes} of {args.count} changes")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
