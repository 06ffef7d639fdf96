"""The archive daemon (`hpcrl archive`): every result in, stored once; elites, stages and events out.

One loop, one thread: take the result events delivered so far -> drop those already stored ->
`Archive.ingest` -> commit the batch with the bus cursor -> publish `archived.*`/`stage.*` events
and send confirmation runs -> once the broker has acknowledged them, mark them published.
A restart resumes from the committed cursor (the bus replays what came after it; stored candidate
ids are skipped), republishes what was committed but never acknowledged, and re-sends pending
confirmations. SIGTERM: finish the batch, wait (bounded) for acknowledgements, exit 0.
"""

from __future__ import annotations

import logging
import threading
import time

from archive import metrics
from archive.config import ArchiveConfig
from archive.ingest import CONFIRMATION_SUFFIX, Archive
from archive.store import ArchiveStore, Batch, Record, StageRow, StoreError
from bus import metrics as bus_metrics
from bus.client import BusClient
from bus.config import HpcrlConfig
from bus.daemon import log_config, on_stop_signal
from bus.protocol import RESULT_TOPIC_PREFIX
from bus.schema import Archived, Result, Role, StageChange

log = logging.getLogger(__name__)
POLL_S = 0.2
"""Longest wait for new results per turn (bounds the reaction to SIGTERM and timers)."""
CONFIRM_CHECK_S = 10.0
"""How often overdue confirmations are looked for."""


def serve(hpcrl: HpcrlConfig, config: ArchiveConfig, stop: threading.Event | None = None) -> int:
    log_config(__name__, config)
    try:
        store = ArchiveStore(config.db)
    except StoreError as error:
        log.error("event=cannot_open_store error=%s", error)
        return 2
    archive = Archive(config, store)
    stop = stop or threading.Event()
    on_stop_signal(stop.set)
    bus_metrics.serve_metrics(config.metrics_port, config.metrics_address)
    cursor = store.cursor()
    log.info("event=started db=%s stored=%d cursor=%d stages=%s", config.db, store.count(), cursor, _stages(archive))
    with BusClient(
        hpcrl.bus, hpcrl.client, name=config.name, role=Role.ARCHIVE, subscribe=[RESULT_TOPIC_PREFIX], since=cursor
    ) as client:
        loop = _Loop(config, store, archive, client)
        loop.recover()
        while not stop.is_set():
            loop.turn()
        loop.finish()
    archive.close()
    log.info("event=stopped stored=%d cursor=%d", store.count(), store.cursor())
    store.close()
    return 0


def _stages(archive: Archive) -> str:
    return ",".join(f"{problem}:{tracker.stage}" for problem, tracker in sorted(archive.trackers.items())) or "-"


class _Loop:
    def __init__(self, config: ArchiveConfig, store: ArchiveStore, archive: Archive, client: BusClient) -> None:
        self.config = config
        self.store = store
        self.archive = archive
        self.client = client
        self.unacked_results: list[str] = []
        self.unacked_stages: list[int] = []
        self.next_confirm_check = 0.0
        metrics.refresh(store, archive)

    def recover(self) -> None:
        """Republish what was committed but not acknowledged; announce first stages; re-send confirmations."""
        records = self.store.unpublished_records()
        for record in records:
            self._publish_record(record)
        for row in self.store.stage_changes(unpublished=True):
            self._publish_stage(row, row.id)
        starts = self.archive.start()
        if starts:
            _, ids = self.store.write(_only_stage_changes(starts, self.store.cursor()))
            for row, row_id in zip(starts, ids, strict=True):
                self._publish_stage(row, row_id)
        pending = self.store.confirmations("pending")
        for confirmation in pending:
            self._send_confirmation(confirmation.candidate_id)
        log.info(
            "event=recovered republished_results=%d republished_stage_changes=%d pending_confirmations=%d",
            len(records),
            len(self.unacked_stages),
            len(pending),
        )

    def turn(self) -> None:
        events = self.client.next_events(POLL_S)
        for lost in self.client.take_losses():
            # Evicted from the broker's journal before we read them (we were down or behind too long):
            # those results are never stored. Said loudly, counted (hpcrl_bus_events_lost_total), then
            # the archive carries on from the events it still gets (docs/archive.md).
            log.error(
                "event=results_lost topic=%s after_bus_seq=%d through_bus_seq=%d count=%d exact=%s",
                lost.topic or "*",
                lost.after_bus_seq,
                lost.through_bus_seq,
                lost.count,
                lost.exact,
            )
        results = [e for e in events if isinstance(e, Result)]
        if results:
            self._ingest(results, self.client.cursor)
        self.client.collect_results(0.0)  # confirmation results arrive as events too; drop the client's copies
        if not self.client.outbox and (self.unacked_results or self.unacked_stages):
            self.store.mark_published(self.unacked_results, self.unacked_stages)
            self.unacked_results, self.unacked_stages = [], []
        if time.monotonic() >= self.next_confirm_check:
            self.next_confirm_check = time.monotonic() + CONFIRM_CHECK_S
            self._resend_overdue_confirmations()
        metrics.update_lag(results)

    def finish(self) -> None:
        if self.client.flush(5.0):
            self.store.mark_published(self.unacked_results, self.unacked_stages)
        else:
            log.warning(
                "event=unacknowledged_on_stop results=%d (republished at the next start)", len(self.unacked_results)
            )

    # ------------------------------------------------------------ internals

    def _ingest(self, results: list[Result], cursor: int) -> None:
        fresh: dict[str, Result] = {}
        for result in results:
            fresh.setdefault(result.candidate_id, result)  # one result per candidate id, the first
        known = self.store.known(fresh)
        for candidate_id in known:
            del fresh[candidate_id]
        ordered = list(fresh.values())
        # After a restart this says what the archive caught up from the journal; later, the stream's pace.
        log.info(
            "event=ingest new=%d already_stored=%d repeated_in_batch=%d cursor=%d",
            len(ordered),
            len(known),
            len(results) - len(ordered) - len(known),
            cursor,
        )
        started = time.monotonic()
        for start in range(0, max(1, len(ordered)), self.config.batch_max):
            chunk = ordered[start : start + self.config.batch_max]
            last = start + self.config.batch_max >= len(ordered)
            # Only the last chunk may move the cursor: a crash after an earlier one replays the rest.
            outcome = self.archive.ingest(chunk, cursor if last else self.store.cursor())
            _, stage_ids = self.store.write(outcome.batch)
            for record in outcome.batch.records:
                self._publish_record(record)
            for row, row_id in zip(outcome.batch.stage_changes, stage_ids, strict=True):
                self._publish_stage(row, row_id)
                log.info(
                    "event=stage_change problem=%s from=%d to=%d reason=%r",
                    row.problem,
                    row.from_stage,
                    row.to_stage,
                    row.reason,
                )
            for result in outcome.to_confirm:
                self._send_confirmation(result.candidate_id)
            metrics.observe(outcome.batch.records)
        metrics.INGEST_SECONDS.observe(time.monotonic() - started)
        metrics.refresh(self.store, self.archive)

    def _publish_record(self, record: Record) -> None:
        r = record.result
        self.client.publish(
            Archived,
            id=f"archived-{r.candidate_id}",
            candidate_id=r.candidate_id,
            run=r.run,
            problem=r.problem,
            size=r.size,
            stage=r.stage,
            current_stage=record.current_stage,
            policy_version=r.policy_version,
            verdict=r.verdict,
            objective=record.objective,
            techniques=list(record.techniques),
            parse_error=record.parse_error[:500],
            cell=record.cell,
            status=record.status,
            outside_stage=record.outside_stage,
            confirmation_of=record.confirmation_of,
        )
        self.unacked_results.append(r.candidate_id)

    def _publish_stage(self, row: StageRow, row_id: int) -> None:
        self.client.publish(
            StageChange,
            id=f"stage-{row.problem}-{row_id}",
            problem=row.problem,
            from_stage=row.from_stage,
            to_stage=row.to_stage,
            reason=row.reason,
            techniques=list(row.techniques),
            stats=row.stats,
        )
        self.unacked_stages.append(row_id)

    def _send_confirmation(self, candidate_id: str) -> None:
        original = self.store.record(candidate_id)
        confirmation_id = candidate_id + CONFIRMATION_SUFFIX
        if original is None or confirmation_id in self.client.pending or confirmation_id in self.client.finished:
            return
        r = original.result
        self.client.submit(
            problem=r.problem,
            size=r.size,
            source=r.source,
            run=r.run,
            stage=r.stage,
            policy_version=r.policy_version,
            candidate_id=confirmation_id,
            remeasure=True,
        )
        metrics.CONFIRMATIONS.labels("sent").inc()

    def _resend_overdue_confirmations(self) -> None:
        """A confirmation is re-sent only by the client's own timers while it is pending there; after
        a restart (or when the client gave up) the store still says pending: send it again."""
        now = time.time()
        for confirmation in self.store.confirmations("pending"):
            overdue = now - confirmation.submitted_at > self.config.confirm_timeout_s
            if overdue and confirmation.confirmation_id not in self.client.pending:
                self._send_confirmation(confirmation.candidate_id)


def _only_stage_changes(rows: list[StageRow], cursor: int) -> Batch:
    return Batch([], [], rows, [], cursor)
