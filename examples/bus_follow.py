"""Follow one kind of event on an hpcrl bus, missing none: the code follow_results.py and watch_stages.py share.

Written from docs/protocol.md alone, like the scripts that import it: only pyzmq, msgpack and the standard
library (no hpcrl import), so it is part of the template for clients in other languages. The follower's
side of the protocol (sections 2, 3.2, 4, 6.5, 7, 8.4):

    connect   SUB -> event endpoint (subscribed to the followed topics and heartbeat.broker),
              DEALER -> request endpoint (ZMQ_IMMEDIATE); wait until the DEALER is connected
    introduce heartbeat {role: client}, then one every interval; heartbeat {state: stopping} on close
    sync      one fetch chosen by the script (Sync): every topic's head (limit: 0), a replay of the journal
              after a bus_seq (after_bus_seq, page by page), or each topic's newest event (latest_only).
              Live events are held until it is complete.
    follow    deliver live events in topic_seq order per topic, dropping duplicates; when a topic_seq gap
              or a broker heartbeat's topic_heads shows a topic ahead of us, fetch {prefixes: [topic],
              after_bus_seq: <its last bus_seq>}, deliver what was missed, then the held live events.
              Fetches unanswered for FETCH_RETRY_S are sent again as new messages, and all of them again
              when the broker restarted (its heartbeat's incarnation changed).

Frames that cannot be decoded, other schema versions and other kinds are dropped, never fatal. Log lines
go to the `logging` root logger, which each script configures with its name as the prefix.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
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
BROKER_HEARTBEAT_TOPIC = "heartbeat.broker"
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 5000
HWM_MESSAGES = 100_000
LINGER_MS = 500
SYNC = ""
"""Key of the initial sync fetch among the outstanding fetches (the others are keyed by topic)."""

Message = dict[str, Any]

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------- what is followed (protocol.md 3.3, 6.5)


@dataclass(frozen=True)
class Topics:
    """The topics followed: those of one event kind, for one problem (an exact match) or for all."""

    kind: str
    """The `kind` of the events followed, e.g. "result"."""
    family: str
    """Their topic prefix, e.g. "result." (the topic is the family and the event's problem)."""
    problem: str | None = None
    """Only this problem's topic: "dgemm" follows result.dgemm, not result.dgemm_small."""

    @property
    def exact(self) -> str | None:
        return self.family + self.problem if self.problem else None

    @property
    def prefix(self) -> str:
        """What the SUB subscribes to and fetches ask for."""
        return self.exact or self.family

    def wants(self, topic: str) -> bool:
        return topic == self.exact if self.exact else topic.startswith(self.prefix)

    def of(self, event: Message) -> str:
        """An event's topic, derived from its payload (protocol.md 3.3): fetched events carry no topic frame."""
        return self.family + str(event.get("problem", ""))


@dataclass(frozen=True)
class Sync:
    """Where following starts: the first fetch, answered before any live event is delivered (protocol.md 6.5).

    The default, neither field set, fetches every topic's head (limit: 0): "now", nothing delivered."""

    since: int | None = None
    """Replay first every journaled event after this bus_seq (0: all the journal still holds)."""
    latest_only: bool = False
    """Deliver first the newest event of every topic (the Clone pattern's snapshot; never evicted)."""

    def __post_init__(self) -> None:
        if self.since is not None and self.latest_only:
            raise ValueError("Sync: give since (a replay) or latest_only (a snapshot), not both")

    def fields(self, prefix: str) -> dict[str, Any]:
        if self.latest_only:
            return {"prefixes": [prefix], "latest_only": True}
        if self.since is None:
            return {"prefixes": [prefix], "limit": 0}
        return {"prefixes": [prefix], "after_bus_seq": self.since, "limit": FETCH_PAGE_EVENTS}


# ---------------------------------------------------------------- the two sockets (protocol.md 2, 3, 7)


class Bus:
    """The process's one zmq context, a SUB on the event endpoint and a DEALER on the request endpoint."""

    def __init__(
        self,
        request_endpoint: str,
        event_endpoint: str,
        subscriptions: list[str],
        heartbeat_interval_s: float,
        name: str,
    ) -> None:
        self.heartbeat_interval_s = heartbeat_interval_s
        self.stamper = Stamper(f"{name}-{socket.gethostname()}-{os.getpid()}")
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        # SUB first, so its subscriptions start propagating while the DEALER connects.
        self.sub = self._socket(zmq.SUB)
        for prefix in subscriptions:
            self.sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.sub.connect(event_endpoint)
        self.dealer = self._socket(zmq.DEALER)
        # Fail sends while disconnected instead of queueing stale messages for a future broker.
        self.dealer.setsockopt(zmq.IMMEDIATE, 1)
        self.dealer.connect(request_endpoint)
        self.poller = zmq.Poller()
        self.poller.register(self.dealer, zmq.POLLIN)
        self.poller.register(self.sub, zmq.POLLIN)
        self.next_heartbeat = 0.0

    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self.ctx.socket(kind)
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
        self.ctx.term()


# ---------------------------------------------------------------- gap recovery (protocol.md 8.4)


@dataclass
class Position:
    """The last event of a topic accounted for: delivered, or counted as lost."""

    topic_seq: int = 0
    bus_seq: int = 0


@dataclass
class Fetch:
    fields: dict[str, Any]
    """prefixes, after_bus_seq, limit (or latest_only): kept to re-send it as a new message."""
    request_id: str
    sent_at: float = field(default_factory=time.monotonic)


class Follower:
    """Delivers what the sync fetch returns, then every later journaled event of the wanted topics once,
    in topic_seq order per topic.

    Protocol.md 8.4 describes one fetch for all topics; this follower keeps one fetch per topic
    instead, which makes every hole in a topic's fetch reply an eviction (the fetch starts at the
    topic's own last position), at the price of a fetch per topic that fell behind."""

    def __init__(
        self,
        bus: Bus,
        topics: Topics,
        sync: Sync,
        deliver: Callable[[Message], None],
        on_synced: Callable[[int], None],
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.sync = sync
        self.deliver_to = deliver
        self.on_synced = on_synced
        """Called with the bus_seq of the starting point once the sync is complete (before held events)."""
        self.positions: dict[str, Position] = {}
        self.base_bus_seq = sync.since or 0
        """Topics without a position have nothing we missed up to here."""
        self.synced = False
        self.outstanding: dict[str, Fetch] = {}
        self.held: list[tuple[str, Message]] = []
        self.broker_incarnation = ""
        self.recovered = 0
        self.lost = 0
        self.replay_evicted_through = 0
        """A replay from since > 0: the sync's evicted_through, when the journal dropped events after since."""
        self.replay_first_seq: dict[str, int] = {}
        self.replay_kept = 0

    def position(self, topic: str) -> Position:
        return self.positions.get(topic) or Position(0, self.base_bus_seq)

    # ------------------------------------------------------------ fetching

    def start(self) -> None:
        self.fetch(SYNC, **self.sync.fields(self.topics.prefix))

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
        """An event of the followed kind from the SUB socket (or a held one being replayed)."""
        if not self.topics.wants(topic) or topic != self.topics.of(event):
            return  # another problem (prefixes overlap), or a topic frame that lies about its payload
        if not self.synced or topic in self.outstanding:
            self.held.append((topic, event))  # the fetch under way accounts for it
            return
        last = self.position(topic).topic_seq
        seq = int(event.get("topic_seq", 0))
        if seq <= last:
            return  # a duplicate: already delivered
        if seq == last + 1:
            self.deliver(topic, event)
            return
        self.held.append((topic, event))
        self.recover(topic)  # a gap: topic_seq last+1 .. seq-1 went missing

    def on_broker_heartbeat(self, heartbeat: Message) -> None:
        """Head check: a broker heartbeat shows a topic ahead of us when we missed its *last* event."""
        incarnation = str(heartbeat.get("incarnation", ""))
        if self.broker_incarnation and incarnation != self.broker_incarnation:
            log.info("the broker restarted: sending outstanding fetches again")
            for key, pending in list(self.outstanding.items()):
                self.fetch(key, **pending.fields)
        self.broker_incarnation = incarnation
        if not self.synced:
            return
        for topic, head in heartbeat.get("topic_heads", {}).items():
            if self.topics.wants(topic) and topic not in self.outstanding and head > self.position(topic).topic_seq:
                self.recover(topic)

    def on_fetch_reply(self, reply: Message) -> None:
        key = next((k for k, f in self.outstanding.items() if f.request_id == reply.get("ref")), None)
        if key is None:
            return  # a reply to a fetch we re-sent since, or no longer wait for
        answered = self.outstanding.pop(key)
        upto = int(reply.get("upto_bus_seq", 0))
        first_sync = key == SYNC and not self.synced
        since = self.sync.since or 0
        if first_sync and since and not self.replay_evicted_through:
            # Retention dropped events after our starting point (protocol.md 8.4): count them at the end.
            evicted = int(reply.get("evicted_through", 0))
            self.replay_evicted_through = evicted if evicted > since else 0
        for event in reply.get("events", []):
            topic = self.topics.of(event) if isinstance(event, dict) else ""
            if self.topics.wants(topic) and (key == SYNC or topic == key):
                if first_sync and int(event.get("bus_seq", 0)) <= self.replay_evicted_through:
                    self.replay_kept += 1
                if first_sync and since and topic not in self.positions:
                    self.replay_first_seq[topic] = int(event.get("topic_seq", 0))
                self.account_fetched(topic, event, first_sync)
        if not reply.get("complete", False):  # one page of several: continue where it stopped
            self.fetch(key, **{**answered.fields, "after_bus_seq": upto})
            return
        for topic, head in reply.get("topic_heads", {}).items():
            if not self.topics.wants(topic) or (key != SYNC and topic != key):
                continue
            if first_sync and topic not in self.positions:
                self.positions[topic] = Position(head, upto)  # nothing of it after the starting point
            elif head > self.position(topic).topic_seq:
                # Every event of the topic up to `upto` was in the reply: the missing ones were evicted.
                self.count_lost(topic, head - self.position(topic).topic_seq)
                self.positions[topic] = Position(head, upto)
        if first_sync:
            self.synced = True
            self.count_replay_loss()
            self.base_bus_seq = upto
            self.on_synced(upto)
        # Replay the live events held meanwhile: all of them after the sync, else this topic's.
        replay = [(t, e) for t, e in self.held if key == SYNC or t == key]
        self.held = [(t, e) for t, e in self.held if not (key == SYNC or t == key)]
        for topic, event in sorted(replay, key=lambda held: int(held[1].get("bus_seq", 0))):
            self.on_live(topic, event)

    def account_fetched(self, topic: str, event: Message, first_sync: bool) -> None:
        seq = int(event.get("topic_seq", 0))
        if first_sync and (self.sync.latest_only or topic not in self.positions):
            # A snapshot event is the topic's newest, delivered as it is. A replay from a bus_seq starts
            # anywhere in a topic; from 0 it must start at topic_seq 1.
            if self.sync.since == 0 and seq > 1:
                self.count_lost(topic, seq - 1)
            self.deliver(topic, event)
            return
        last = self.position(topic).topic_seq
        if seq <= last:
            return  # delivered already (it also came live)
        if seq > last + 1:
            # This fetch started at the topic's own last position: what is missing was evicted.
            self.count_lost(topic, seq - last - 1)
        if not first_sync:
            self.recovered += 1
        self.deliver(topic, event)

    def count_replay_loss(self) -> None:
        """The events of (since, evicted_through] the journal did not keep are lost. We follow one family of
        topics, so the evicted positions may have held other topics' events: the count is an upper bound
        (positions not kept, and each topic's first topic_seq − 1)."""
        if not self.replay_evicted_through:
            return
        since = self.sync.since or 0
        positions = self.replay_evicted_through - since - self.replay_kept
        count = min(positions, sum(seq - 1 for seq in self.replay_first_seq.values()))
        if count > 0:
            where = f"{self.topics.prefix}* (bus_seq {since + 1} to {self.replay_evicted_through})"
            self.count_lost(where, count, f"up to {count}")

    def count_lost(self, topic: str, count: int, count_text: str = "") -> None:
        self.lost += count
        log.info(
            f"{count_text or count} event(s) of {topic} were evicted from the broker's journal before we could "
            "fetch them"
        )

    def deliver(self, topic: str, event: Message) -> None:
        self.positions[topic] = Position(int(event.get("topic_seq", 0)), int(event.get("bus_seq", 0)))
        self.deliver_to(event)


# ---------------------------------------------------------------- the loop and the command line


def follow(bus: Bus, follower: Follower, deadline: float, done: Callable[[], bool]) -> bool:
    """Connect, introduce ourselves, sync, then follow until done() or the deadline; close the bus.

    False when no connection to the broker's request endpoint came up before the deadline."""
    try:
        if not bus.wait_connected(deadline):
            log.info("timed out: no connection to the broker's request endpoint")
            return False
        bus.heartbeat_if_due()  # introduce ourselves before anything else
        follower.start()
        while not done() and time.monotonic() < deadline:
            for topic, message in bus.receive(min(max(0.0, deadline - time.monotonic()), 0.1)):
                kind = message["kind"]
                if kind == "heartbeat" and message.get("role") == "broker":
                    follower.on_broker_heartbeat(message)  # from the DEALER or on heartbeat.broker
                elif topic is not None and kind == follower.topics.kind:
                    follower.on_live(topic, message)
                elif topic is None and kind == "fetch_reply":
                    follower.on_fetch_reply(message)
            bus.heartbeat_if_due()
            follower.tick()
    finally:
        bus.close()
    return True


def argument_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the options every follower takes first: the broker's endpoints, the heartbeat interval."""
    parser = argparse.ArgumentParser(description=description)
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
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | None:
    """Add --timeout-s (the last option), parse argv and check the common options; None after logging why not."""
    parser.add_argument("--timeout-s", type=float, default=600.0, help="stop after this many seconds (default: 600)")
    args = parser.parse_args(argv)
    if args.heartbeat_interval_s <= 0 or args.timeout_s <= 0:
        log.info("--heartbeat-interval-s and --timeout-s must be > 0")
        return None
    return args


def bus_for(args: argparse.Namespace, topics: Topics, name: str) -> Bus:
    """The bus of a follower of `topics`, from the common options; `name` starts the client's sender name."""
    subscriptions = [topics.prefix, BROKER_HEARTBEAT_TOPIC]
    return Bus(args.request_endpoint, args.event_endpoint, subscriptions, args.heartbeat_interval_s, name)
