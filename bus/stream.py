"""Gap-free event subscription: every journaled event of the subscribed topics exactly once.

PUB/SUB alone loses messages (slow joiner, full queues, reconnects). Each journaled event carries
its topic_seq (contiguous per topic); a subscriber that sees topic_seq jump, or a broker heartbeat
announcing a topic head it has not reached, fetches what it missed from the broker's journal
(FetchRequest "after bus_seq N") and delivers it. Live events that arrive while a fetch is under
way are held back and delivered afterwards, de-duplicated by topic_seq.

Order: per topic, delivery follows topic_seq. Across topics, a recovered event can arrive after
newer events of other topics.

Loss: events the journal evicted before we fetched them can never be delivered. Each such hole is
logged, counted in hpcrl_bus_events_lost_total and handed to the owner as an EventsLost record, the
range of journal positions lost included; a replay from `since` that starts inside the evicted range
is such a hole too (docs/protocol.md 8.4).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bus import metrics
from bus.schema import Event, FetchReply, FetchRequest, FrameError, Heartbeat, Role, decode, kind_of

log = logging.getLogger(__name__)

FETCH_PAGE_EVENTS = 1000
FETCH_RETRY_S = 2.0
"""A fetch unanswered this long is sent again (the broker may have restarted)."""


def decode_fetched(reply: FetchReply) -> list[Event]:
    """The events a fetch reply carries; anything undecodable in it is dropped and counted."""
    events: list[Event] = []
    for raw in reply.events:
        try:
            message = decode(raw)
        except FrameError as error:
            metrics.drop_frame(error.reason, f"in a fetch reply: {error.detail}")
            continue
        if isinstance(message, Event):
            events.append(message)
    return events


@dataclass(frozen=True)
class EventsLost:
    """Journaled events this subscriber will never receive: the broker's journal evicted them before
    it fetched them. Handed to the stream's owner as data (besides the log line and the metric)."""

    topic: str
    """The topic, or "" when the loss spans every subscribed topic: a replay from `since` that starts
    inside the evicted range (the journal no longer says which topics the evicted events had)."""
    after_bus_seq: int
    through_bus_seq: int
    """The lost events lie in after_bus_seq < bus_seq <= through_bus_seq."""
    count: int
    """How many events were lost: exactly, when `exact`; else at most this many."""
    exact: bool = True
    """False only for a replay from `since` filtered by topic prefix: the evicted positions may have
    held events of other topics."""


@dataclass
class TopicPosition:
    topic_seq: int
    bus_seq: int


class EventStream:
    def __init__(
        self,
        prefixes: tuple[str, ...],
        since: int | None,
        send_fetch: Callable[..., FetchRequest | None],
        deliver: Callable[[Event, bool], None],
        on_loss: Callable[[EventsLost], None] | None = None,
    ) -> None:
        """`since=None` starts at the journal's current head; `since=N` replays everything after N.
        `send_fetch(**fields)` sends a FetchRequest and returns it (None if it could not be sent);
        `deliver(event, recovered)` receives each event once; `on_loss(lost)` each hole that can no
        longer be filled (after it was logged and counted)."""
        self.prefixes = prefixes
        self._send_fetch = send_fetch
        self._deliver = deliver
        self._on_loss = on_loss
        self.positions: dict[str, TopicPosition] = {}
        self.base_bus_seq = since or 0
        """Topics not in `positions` are complete up to this bus_seq."""
        self.verified_through = since or 0
        """Every matching event with bus_seq <= this has been delivered (or counted as lost)."""
        self.synced = False
        self._wanted: tuple[int, int] | None = None
        """(after_bus_seq, limit) of the fetch we need answered; None when in sync."""
        self._fetch: FetchRequest | None = None
        """The request last sent for `_wanted` (None if it could not be sent yet)."""
        self._fetch_sent_at = 0.0
        self._chain_start = 0
        self._refetch_from: int | None = None
        """Set when a fetched event shows a hole older than the fetch's start."""
        self._held: deque[Event] = deque()
        self._replay_evicted_through: int | None = None
        """A replay from since > 0: the first reply's evicted_through, once it is above `since`."""
        self._replay_first_topic_seq: dict[str, int] = {}
        """A replay from since > 0: topic_seq of the first event delivered per topic."""
        self._replay_retained = 0
        """A replay from since > 0: events delivered whose bus_seq lies in the evicted range (kept
        because each was its topic's newest when retention ran)."""
        self._replay_counted = 0
        """The highest bus_seq counted in `_replay_retained`."""
        self._request(after=self.base_bus_seq, limit=0 if since is None else FETCH_PAGE_EVENTS)

    # ------------------------------------------------------------ inputs

    def on_event(self, event: Event) -> None:
        if isinstance(event, Heartbeat) and event.role is Role.BROKER:
            self._check_heads(event)
        if not event.bus_seq:
            if event.topic.startswith(self.prefixes):
                self._deliver(event, False)  # ephemeral: no sequence to keep
            return
        if self._wanted is not None:
            self._held.append(event)
            return
        self._apply_live(event)

    def on_fetch_reply(self, reply: FetchReply) -> bool:
        """Apply a reply to our own fetch. Returns False if the reply is not ours."""
        if self._fetch is None or reply.ref != self._fetch.id:
            return False
        self._fetch = self._wanted = None
        replaying = not self.synced and self.base_bus_seq > 0
        if replaying and self._replay_evicted_through is None and reply.evicted_through > self.base_bus_seq:
            self._replay_evicted_through = reply.evicted_through
        for event in decode_fetched(reply):
            if event.topic.startswith(self.prefixes):
                if replaying and self._replay_counted < event.bus_seq <= (self._replay_evicted_through or 0):
                    self._replay_retained += 1
                    self._replay_counted = event.bus_seq  # a page fetched twice is not counted twice
                self._apply_recovered(event, reply.evicted_through)
        if not reply.complete:
            self._request(after=reply.upto_bus_seq, limit=FETCH_PAGE_EVENTS, new_chain=False)
            return True
        self._reconcile_heads(reply)
        if self._refetch_from is not None:
            refetch_from, self._refetch_from = self._refetch_from, None
            self._request(after=refetch_from, limit=FETCH_PAGE_EVENTS)
            return True
        if not self.synced:
            self.synced = True
            self._report_replay_loss()
            self.base_bus_seq = reply.upto_bus_seq
        self.verified_through = max(self.verified_through, reply.upto_bus_seq)
        held, self._held = self._held, deque()
        for event in held:
            if self._wanted is not None:
                self._held.append(event)
            else:
                self._apply_live(event)
        return True

    def _reconcile_heads(self, reply: FetchReply) -> None:
        """Compare the broker's topic heads with what we delivered, after a complete fetch chain
        that started at `_chain_start`: a topic whose missing events lie before the chain's start
        is fetched again; events the journal evicted are counted as lost."""
        for topic, head in reply.topic_heads.items():
            position = self.positions.get(topic)
            if position is None:
                if not self.synced:
                    # First sync: nothing of this topic after our starting point, so we are at its head.
                    self.positions[topic] = TopicPosition(head, reply.upto_bus_seq)
                    continue
                position = self.positions[topic] = TopicPosition(0, self.base_bus_seq)
            if head <= position.topic_seq:
                continue
            if position.bus_seq < self._chain_start:
                self._refetch_after(position.bus_seq)
                continue
            through = min(reply.evicted_through, reply.upto_bus_seq)
            self._count_lost(EventsLost(topic, position.bus_seq, through, head - position.topic_seq))
            position.topic_seq = head
            position.bus_seq = reply.upto_bus_seq

    def _refetch_after(self, bus_seq: int) -> None:
        """Ask for another fetch from `bus_seq` once the current chain completes."""
        self._refetch_from = bus_seq if self._refetch_from is None else min(self._refetch_from, bus_seq)

    def tick(self) -> None:
        """Re-send a fetch that could not be sent or went unanswered (lost with a broker restart)."""
        if self._wanted is not None and (self._fetch is None or time.monotonic() - self._fetch_sent_at > FETCH_RETRY_S):
            self._request(*self._wanted, new_chain=False)

    def on_reconnect(self) -> None:
        if self._wanted is not None:
            self._request(*self._wanted, new_chain=False)

    # ------------------------------------------------------------ internals

    def _apply_live(self, event: Event) -> None:
        position = self.positions.get(event.topic)
        last = position.topic_seq if position else 0
        if event.topic_seq <= last:
            metrics.DUPLICATES_DROPPED.inc(kind_of(event))
        elif event.topic_seq == last + 1:
            self._accept(event, recovered=False)
        else:
            metrics.GAPS_DETECTED.inc()
            log.info("gap topic=%s expected=%d got=%d: fetching", event.topic, last + 1, event.topic_seq)
            self._held.append(event)
            self._request(after=position.bus_seq if position else self.base_bus_seq, limit=FETCH_PAGE_EVENTS)

    def _apply_recovered(self, event: Event, evicted_through: int) -> None:
        position = self.positions.get(event.topic)
        if position is None and not self.synced:
            # First sync from `since`: a topic may start anywhere, except that a replay of the whole
            # journal (since=0) that misses a topic's first events lost them to retention.
            if self.base_bus_seq == 0 and event.topic_seq > 1:
                through = min(evicted_through, event.bus_seq - 1)
                self._count_lost(EventsLost(event.topic, 0, through, event.topic_seq - 1))
            elif self.base_bus_seq > 0:
                self._replay_first_topic_seq[event.topic] = event.topic_seq
            self._accept(event, recovered=True)
            return
        last = position.topic_seq if position else 0
        if event.topic_seq <= last:
            return  # already delivered live
        if event.topic_seq == last + 1:
            self._accept(event, recovered=True)
            return
        known_through = position.bus_seq if position else self.base_bus_seq
        if known_through < self._chain_start:
            # The hole lies before where this fetch began: keep the event, fetch the hole next.
            self._held.append(event)
            self._refetch_after(known_through)
            return
        through = min(evicted_through, event.bus_seq - 1)
        self._count_lost(EventsLost(event.topic, known_through, through, event.topic_seq - last - 1))
        self._accept(event, recovered=True)

    def _report_replay_loss(self) -> None:
        """At the end of a replay from since = N > 0 whose journal had evicted past N: the events of
        (N, evicted_through] that were not kept are lost. Every journal position holds one event, so
        with every topic subscribed the count is exact; filtered by prefix it is an upper bound (also
        bounded by the topic_seq of each topic's first delivered event)."""
        evicted_through = self._replay_evicted_through
        if evicted_through is None:
            return
        positions = evicted_through - self.base_bus_seq - self._replay_retained
        by_topics = sum(seq - 1 for seq in self._replay_first_topic_seq.values())
        every_topic = "" in self.prefixes
        count = positions if every_topic else min(positions, by_topics)
        if count > 0:
            self._count_lost(EventsLost("", self.base_bus_seq, evicted_through, count, exact=every_topic))

    def _count_lost(self, lost: EventsLost) -> None:
        metrics.EVENTS_LOST.inc(lost.count)
        log.error(
            "events lost topic=%s after_bus_seq=%d through_bus_seq=%d count=%d exact=%s: the broker's journal "
            "evicted them before this subscriber fetched them; raise broker.journal_max_events or follow more often",
            lost.topic or "*",
            lost.after_bus_seq,
            lost.through_bus_seq,
            lost.count,
            lost.exact,
        )
        if self._on_loss is not None:
            self._on_loss(lost)

    def _accept(self, event: Event, recovered: bool) -> None:
        self.positions[event.topic] = TopicPosition(event.topic_seq, event.bus_seq)
        metrics.EVENTS_DELIVERED.inc("recovered" if recovered else "live")
        self._deliver(event, recovered)

    def _check_heads(self, heartbeat: Heartbeat) -> None:
        if self._wanted is not None or not self.synced:
            return
        behind = [
            topic
            for topic, head in heartbeat.topic_heads.items()
            if topic.startswith(self.prefixes)
            and head > (self.positions[topic].topic_seq if topic in self.positions else 0)
        ]
        if not behind:
            self.verified_through = max(self.verified_through, heartbeat.journal_head)
            return
        metrics.GAPS_DETECTED.inc()
        log.info("topics behind the broker's heads topics=%s: fetching", behind[:5])
        after = min(self.positions[t].bus_seq if t in self.positions else self.base_bus_seq for t in behind)
        self._request(after=after, limit=FETCH_PAGE_EVENTS)

    def _request(self, after: int, limit: int, new_chain: bool = True) -> None:
        """Fetch after `after`. A new chain (not the next page or a re-send) records where it
        started: only topics known complete up to that point can be judged by the final heads."""
        if new_chain:
            self._chain_start = after
        self._wanted = (after, limit)
        self._fetch = self._send_fetch(prefixes=list(self.prefixes), after_bus_seq=after, limit=limit)
        self._fetch_sent_at = time.monotonic()
