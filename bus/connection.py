"""One process's link to the broker: a DEALER for requests (and, optionally, a SUB for events),
heartbeats both ways, broker liveness, and a callback whenever a (re)connection is established.

Single-threaded and poller-driven: the owner calls `pump()`; nothing happens between calls.
Sockets use ZMQ_IMMEDIATE, so a message sent while disconnected fails at once instead of
sitting in a queue that a new broker would receive stale; owners keep their own outboxes and
re-send them from the `on_connect` callback.
"""

from __future__ import annotations

import logging
import os
import socket as pysocket
import time
from collections.abc import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from bus import metrics, protocol
from bus.config import BusConfig
from bus.schema import (
    Event,
    FrameError,
    Heartbeat,
    Message,
    PeerState,
    Role,
    Stamper,
    decode,
    encode,
    extra_field_names,
    kind_of,
)
from bus.sockets import client_socket, close_monitored, monitor, readable

log = logging.getLogger(__name__)

_NOBLOCK = int(zmq.NOBLOCK)
MessageHandler = Callable[[Message], None]
EventHandler = Callable[[Event], None]


class Connection:
    def __init__(
        self,
        cfg: BusConfig,
        name: str,
        role: Role,
        on_message: MessageHandler,
        on_event: EventHandler | None = None,
        subscriptions: tuple[str, ...] = (),
        on_connect: Callable[[], None] | None = None,
        heartbeat_state: Callable[[], tuple[PeerState, list[str]]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.role = role
        self.stamper = Stamper(name)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._on_message = on_message
        self._on_event = on_event
        self._on_connect = on_connect
        self._heartbeat_state = heartbeat_state or (lambda: (PeerState.IDLE, []))
        self.dealer = client_socket(self.ctx, zmq.DEALER, cfg)
        self.dealer.setsockopt(zmq.IMMEDIATE, 1)
        self.monitor = monitor(
            self.dealer,
            zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_DISCONNECTED
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        )
        self.dealer.connect(cfg.request_endpoint)
        self.sub: zmq.Socket[bytes] | None = None
        self.poller = zmq.Poller()
        self.poller.register(self.dealer, zmq.POLLIN)
        self.poller.register(self.monitor, zmq.POLLIN)
        if on_event is not None:
            self.sub = client_socket(self.ctx, zmq.SUB, cfg)
            for prefix in subscriptions:
                self.sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
            self.sub.connect(cfg.event_endpoint)
            self.poller.register(self.sub, zmq.POLLIN)
        self.connected = False
        self.refused = ""
        """Set when the broker refused our CURVE handshake: `auth` (key not allowed) or `protocol`."""
        self.connections = 0
        self.broker_incarnation = ""
        self.last_broker_message = 0.0
        self.broker_heartbeat: Heartbeat | None = None
        self._next_heartbeat = 0.0
        self._host = pysocket.gethostname()
        self._slurm_job_id = os.environ.get("SLURM_JOB_ID", "")

    @property
    def name(self) -> str:
        return self.stamper.sender

    @property
    def broker_alive(self) -> bool:
        return self.connected and time.monotonic() - self.last_broker_message < self.cfg.peer_timeout_s

    def send(self, message: Message) -> bool:
        """Send to the broker without blocking. False when disconnected or the queue is full:
        the caller keeps the message and re-sends it (on_connect, or its own timeout)."""
        kind = kind_of(message)
        try:
            self.dealer.send(encode(message), _NOBLOCK)
        except zmq.Again:
            metrics.SEND_DROPPED.inc(kind)
            return False
        metrics.MESSAGES_SENT.inc(kind)
        return True

    def pump(self, timeout_s: float) -> None:
        """Wait up to timeout_s for traffic, handle everything that arrived, send a heartbeat if due."""
        ready = dict(self.poller.poll(round(max(0.0, timeout_s) * 1000)))
        if self.monitor in ready:
            self._read_monitor()
        if self.dealer in ready:
            self._read_dealer()
        if self.sub is not None and self.sub in ready:
            self._read_sub()
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.cfg.heartbeat_interval_s
            self._send_heartbeat(self._heartbeat_state())
            metrics.BROKER_UP.set(1 if self.broker_alive else 0)

    def say_goodbye(self) -> None:
        """Tell the broker we are leaving, so it forgets us now rather than after the liveness timeout."""
        self._send_heartbeat((PeerState.STOPPING, []))

    def close(self) -> None:
        close_monitored(self.dealer, self.monitor)
        if self.sub is not None:
            self.sub.close(linger=0)

    # ------------------------------------------------------------ internals

    def _send_heartbeat(self, state: tuple[PeerState, list[str]]) -> None:
        peer_state, in_flight = state
        self.send(
            self.stamper.make(
                Heartbeat,
                role=self.role,
                incarnation=self.stamper.incarnation,
                state=peer_state,
                in_flight=in_flight,
                host=self._host,
                pid=os.getpid(),
                slurm_job_id=self._slurm_job_id,
            )
        )

    def _read_monitor(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self.connected = False
                log.info("broker disconnected endpoint=%s", self.cfg.request_endpoint)
            elif event["event"] in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                # Nothing else would tell us: a refused client only sees its sends fail and no answer.
                self.refused = "auth" if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "protocol"
                log.error(
                    "broker refused the handshake reason=%s status=%s endpoint=%s: %s",
                    self.refused,
                    event["value"],
                    self.cfg.request_endpoint,
                    "our public key is not in the broker's broker.allowed_keys_dir (add it there and restart the "
                    "broker)"
                    if self.refused == "auth"
                    else "check bus.broker_public_key_file and that both sides use CURVE",
                )
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.connected = True
                self.refused = ""
                self.connections += 1
                self.last_broker_message = time.monotonic()
                log.info("broker connected endpoint=%s connections=%d", self.cfg.request_endpoint, self.connections)
                # Introduce ourselves at once so the broker knows our role before any work.
                self._send_heartbeat(self._heartbeat_state())
                if self._on_connect is not None:
                    self._on_connect()

    def _read_dealer(self) -> None:
        for _ in range(protocol.MAX_BATCH_MESSAGES):
            if not readable(self.dealer):
                return
            payload = self.dealer.recv()
            message = decode_counted(payload)
            if message is None:
                continue
            self.last_broker_message = time.monotonic()
            if isinstance(message, Heartbeat) and message.role is Role.BROKER:
                self._note_broker(message)
                continue
            self._on_message(message)

    def _read_sub(self) -> None:
        assert self.sub is not None and self._on_event is not None
        for _ in range(protocol.MAX_BATCH_MESSAGES):
            if not readable(self.sub):
                return
            frames = self.sub.recv_multipart()
            if len(frames) != 2:
                metrics.drop_frame("framing", f"{len(frames)} frames on the event socket, expected 2")
                continue
            message = decode_counted(frames[1])
            if message is None:
                continue
            if not isinstance(message, Event) or message.topic.encode() != frames[0]:
                metrics.drop_frame("unexpected", f"event frame topic {frames[0]!r} does not match its message")
                continue
            self._on_event(message)

    def _note_broker(self, heartbeat: Heartbeat) -> None:
        if self.broker_incarnation and heartbeat.incarnation != self.broker_incarnation:
            metrics.BROKER_RESTARTS.inc()
            log.warning("broker restarted incarnation=%s", heartbeat.incarnation)
        self.broker_incarnation = heartbeat.incarnation
        self.broker_heartbeat = heartbeat


def decode_counted(payload: bytes, on_error: Callable[[FrameError], None] | None = None) -> Message | None:
    """Decode a received frame, counting it by kind (and any extra fields); a frame that is not a
    usable message is counted by reason, logged (rate-limited), passed to `on_error` (the broker
    answers it) and answered with None."""
    try:
        message = decode(payload)
    except FrameError as error:
        metrics.drop_frame(error.reason, error.detail)
        if on_error is not None:
            on_error(error)
        return None
    metrics.MESSAGES_RECEIVED.inc(kind_of(message))
    if extra_field_names(payload, message):
        metrics.EXTRA_FIELDS.inc()
    return message
