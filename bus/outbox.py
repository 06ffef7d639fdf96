"""Messages sent to the broker and kept until it acknowledges them (at-least-once delivery).

Re-sending is safe because the broker de-duplicates: results by candidate id, other events by
message id. Order is kept: once a send fails (not connected yet, full queue), later messages wait
behind it and go out in order when the connection is back, so a publisher's events are journaled
in the order it created them unless one is lost in transit and re-sent after its ack timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bus import metrics
from bus.schema import AckEntry, Message


@dataclass
class Unacked:
    message: Message
    sent_at: float
    """time.monotonic() of the last send attempt."""
    sent: bool


class Outbox:
    def __init__(self, send: Callable[[Message], bool], ack_timeout_s: float) -> None:
        self._send = send
        self.ack_timeout_s = ack_timeout_s
        self.unacked: dict[str, Unacked] = {}
        """In creation order (dicts keep insertion order)."""
        self._unsent = 0

    def __len__(self) -> int:
        return len(self.unacked)

    def send(self, message: Message) -> None:
        sent = not self._unsent and self._send(message)
        self._unsent += not sent
        self.unacked[message.id] = Unacked(message, time.monotonic(), sent)

    def acknowledge(self, entries: Iterable[AckEntry]) -> list[tuple[Message, AckEntry]]:
        """Drop acknowledged messages; returns (message, ack) for those that were ours."""
        done = []
        for entry in entries:
            unacked = self.unacked.pop(entry.ref, None)
            if unacked is not None:
                self._unsent -= not unacked.sent
                done.append((unacked.message, entry))
        return done

    def resend_all(self) -> None:
        """On a (re)connection: everything unacknowledged, in order, until a send fails."""
        self._resend([*self.unacked.values()], "reconnect")

    def resend_overdue(self) -> None:
        """Messages never sent, and sent ones unacknowledged for ack_timeout_s."""
        deadline = time.monotonic() - self.ack_timeout_s
        self._resend([u for u in self.unacked.values() if not u.sent or u.sent_at < deadline], "ack_timeout")

    def _resend(self, due: list[Unacked], reason: str) -> None:
        for index, unacked in enumerate(due):
            if not self._send(unacked.message):
                for rest in due[index:]:
                    self._unsent += rest.sent
                    rest.sent = False
                return
            self._unsent -= not unacked.sent
            unacked.sent = True
            unacked.sent_at = time.monotonic()
            metrics.RESENDS.labels(reason).inc()
