"""Messages sent to the broker and kept until it acknowledges them (at-least-once delivery).

Re-sending is safe because the broker de-duplicates: results by candidate id, other events by
message id. Order is kept: once a send fails (not connected yet, full queue), later messages wait
behind it and go out in order when the connection is back, so a publisher's events are journaled
in the order it created them unless one is lost in transit and re-sent after its ack timeout.

Re-sending is bounded: a message the broker refuses (ack `rejected`) is dropped at once, and one
sent protocol.MAX_UNACKED_SENDS times to a connected broker without any ack is given up. Either way
the owner hears of it (`on_failed`), with the reason: nothing is dropped silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bus import metrics, protocol
from bus.schema import AckEntry, AckStatus, Message, kind_of

log = logging.getLogger(__name__)


@dataclass
class Unacked:
    message: Message
    sent_at: float
    """time.monotonic() of the last send attempt."""
    sent: bool
    sends: int = 0
    """Sends that reached a connected broker (a send while disconnected fails and does not count)."""


@dataclass(frozen=True)
class FailedMessage:
    """A message the broker will never take, handed back to its owner."""

    message: Message
    status: str
    """`rejected`: the broker refused it (`reason` is its answer); `unacknowledged`: no ack after
    protocol.MAX_UNACKED_SENDS sends."""
    reason: str

    @property
    def kind(self) -> str:
        return kind_of(self.message)


class Outbox:
    def __init__(
        self,
        send: Callable[[Message], bool],
        ack_timeout_s: float,
        on_failed: Callable[[FailedMessage], None] | None = None,
    ) -> None:
        self._send = send
        self.ack_timeout_s = ack_timeout_s
        self._on_failed = on_failed
        self.unacked: dict[str, Unacked] = {}
        """In creation order (dicts keep insertion order)."""
        self._unsent = 0

    def __len__(self) -> int:
        return len(self.unacked)

    def send(self, message: Message) -> None:
        sent = not self._unsent and self._send(message)
        self._unsent += not sent
        self.unacked[message.id] = Unacked(message, time.monotonic(), sent, sends=int(sent))

    def acknowledge(self, entries: Iterable[AckEntry]) -> list[tuple[Message, AckEntry]]:
        """Drop acknowledged messages; returns (message, ack) for those that were ours. A refused one
        (`rejected`) is also reported to on_failed."""
        done = []
        for entry in entries:
            unacked = self.unacked.pop(entry.ref, None)
            if unacked is not None:
                self._unsent -= not unacked.sent
                done.append((unacked.message, entry))
                if entry.status is AckStatus.REJECTED:
                    self._fail(unacked.message, "rejected", entry.reason)
        return done

    def resend_all(self) -> None:
        """On a (re)connection: everything unacknowledged, in order, until a send fails."""
        self._resend([*self.unacked.values()], "reconnect")

    def resend_overdue(self) -> None:
        """Messages never sent, and sent ones unacknowledged for ack_timeout_s; gives up on those
        already sent MAX_UNACKED_SENDS times."""
        deadline = time.monotonic() - self.ack_timeout_s
        overdue = [u for u in self.unacked.values() if not u.sent or u.sent_at < deadline]
        due = []
        for unacked in overdue:
            if unacked.sent and unacked.sends >= protocol.MAX_UNACKED_SENDS:
                del self.unacked[unacked.message.id]
                reason = (
                    f"no ack after {unacked.sends} sends of {self.ack_timeout_s:g} s each: the broker drops "
                    "what it cannot read or name (see its log's dropped frame lines)"
                )
                self._fail(unacked.message, "unacknowledged", reason)
            else:
                due.append(unacked)
        self._resend(due, "ack_timeout")

    def _fail(self, message: Message, status: str, reason: str) -> None:
        metrics.MESSAGES_FAILED.labels(status).inc()
        log.error("message failed kind=%s id=%s status=%s reason=%s", kind_of(message), message.id, status, reason)
        if self._on_failed is not None:
            self._on_failed(FailedMessage(message, status, reason))

    def _resend(self, due: list[Unacked], reason: str) -> None:
        for index, unacked in enumerate(due):
            if not self._send(unacked.message):
                for rest in due[index:]:
                    self._unsent += rest.sent
                    rest.sent = False
                return
            self._unsent -= not unacked.sent
            unacked.sent = True
            unacked.sends += 1
            unacked.sent_at = time.monotonic()
            metrics.RESENDS.labels(reason).inc()
