"""Messages sent to the broker and kept until it acknowledges them (at-least-once delivery).

Re-sending is safe because the broker de-duplicates: results by candidate id, other events by
message id, candidates by candidate id.
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

    def __len__(self) -> int:
        return len(self.unacked)

    def send(self, message: Message) -> None:
        self.unacked[message.id] = Unacked(message, time.monotonic(), self._send(message))

    def acknowledge(self, entries: Iterable[AckEntry]) -> list[tuple[Message, AckEntry]]:
        """Drop acknowledged messages; returns (message, ack) for those that were ours."""
        done = []
        for entry in entries:
            unacked = self.unacked.pop(entry.ref, None)
            if unacked is not None:
                done.append((unacked.message, entry))
        return done

    def resend_all(self) -> None:
        for unacked in self.unacked.values():
            self._resend(unacked, "reconnect")

    def resend_overdue(self) -> None:
        deadline = time.monotonic() - self.ack_timeout_s
        for unacked in self.unacked.values():
            if unacked.sent_at < deadline:
                self._resend(unacked, "ack_timeout")

    def _resend(self, unacked: Unacked, reason: str) -> None:
        unacked.sent = self._send(unacked.message)
        unacked.sent_at = time.monotonic()
        metrics.RESENDS.labels(reason).inc()
