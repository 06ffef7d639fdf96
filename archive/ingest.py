"""Ingest: turn a batch of results into stored records, elite updates, stage changes and confirmations.

`Archive.ingest` is pure bookkeeping over in-memory state (the grid, one stage tracker per problem,
the pending confirmations) that mirrors the store; the daemon commits what it returns in one
transaction and only then publishes. On start the state is rebuilt from the store.

Confirmation: an `ok` result that would beat its problem's best at its size is stored as
`awaiting_confirmation` and sent to the benchers again (`remeasure`, its own candidate id
`<id>~confirm`). When that measurement comes back `ok`, the elite enters with the lower of the two
figures (a noisy outlier cannot inflate an elite); otherwise it does not enter. Either way the
confirmation is itself stored, with `confirmation_of` set.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from archive.config import ArchiveConfig
from archive.qd import Grid, cell_of
from archive.stages import StageTracker
from archive.store import ArchiveStore, Batch, Confirmation, Elite, Record, StageRow
from archive.techniques import Analysis, analyze
from bus.schema import AddStatus, Result, Verdict

CONFIRMATION_SUFFIX = "~confirm"
ANALYSIS_CACHE_SIZE = 4096
"""Analyses kept by source: GRPO groups repeat sources, and parsing is the costly part of ingest."""
PARALLEL_MIN_SOURCES = 16
"""New sources in one batch from which their analyses run in a process pool (one process per core)."""


@dataclass
class IngestOutcome:
    batch: Batch
    to_confirm: list[Result] = field(default_factory=list)
    """Results to send to the benchers again (as candidates with remeasure)."""


def _key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


class Archive:
    def __init__(self, config: ArchiveConfig, store: ArchiveStore) -> None:
        self.config = config
        self.ladder = config.ladder()
        self.grid = Grid(store.elites())
        self.trackers: dict[str, StageTracker] = {}
        self.pending: dict[str, Confirmation] = {c.confirmation_id: c for c in store.confirmations("pending")}
        self._analyses: OrderedDict[str, Analysis] = OrderedDict()
        self._pool: ProcessPoolExecutor | None = None
        self._restore_stages(store)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    # ------------------------------------------------------------ the step

    def start(self) -> list[StageRow]:
        """Announce stage 1 of every configured problem that has none yet."""
        return [row for row in (self.tracker(p).start(self.grid) for p in self.config.problems) if row]

    def ingest(self, results: list[Result], cursor: int) -> IngestOutcome:
        """Results not stored before, in order; duplicates must already be removed by the caller."""
        outcome = IngestOutcome(Batch([], [], [], [], cursor))
        self._prefetch([r.source for r in results])
        for result in results:
            if result.candidate_id in self.pending:
                self._confirmation(result, outcome)
            else:
                self._result(result, outcome)
        return outcome

    def tracker(self, problem: str) -> StageTracker:
        if problem not in self.trackers:
            self.trackers[problem] = StageTracker(problem, self.ladder)
        return self.trackers[problem]

    def stage_of(self, problem: str) -> int:
        return self.trackers[problem].stage if problem in self.trackers else 0

    def analysis(self, source: str) -> Analysis:
        key = _key(source)
        found = self._analyses.get(key)
        if found is None:
            found = self._remember(key, analyze(source))
        else:
            self._analyses.move_to_end(key)
        return found

    def _remember(self, key: str, analysis: Analysis) -> Analysis:
        self._analyses[key] = analysis
        if len(self._analyses) > ANALYSIS_CACHE_SIZE:
            self._analyses.popitem(last=False)
        return analysis

    def _prefetch(self, sources: list[str]) -> None:
        """Analyse a batch's new sources on every core at once (a spawned pool: forking a process
        that holds zmq sockets and threads is unsafe)."""
        missing = {key: source for source in sources if (key := _key(source)) not in self._analyses}
        workers = min(os.cpu_count() or 1, 8)
        if len(missing) < PARALLEL_MIN_SOURCES or workers < 2:
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        chunk = max(1, len(missing) // (4 * workers))
        for key, analysis in zip(missing, self._pool.map(analyze, missing.values(), chunksize=chunk), strict=True):
            self._remember(key, analysis)

    # ------------------------------------------------------------ internals

    def _result(self, result: Result, outcome: IngestOutcome) -> None:
        analysis = self.analysis(result.source)
        techniques = tuple(sorted(analysis.techniques))
        cell = cell_of(result.problem, result.size, techniques)
        tracker = self.tracker(result.problem)
        permitted = tracker.permitted(result.stage)
        outside = permitted is not None and not set(techniques) <= permitted
        objective = result.rate if result.verdict is Verdict.OK else 0.0
        status = AddStatus.NOT_ADDED
        if result.verdict is Verdict.OK:
            would_lead = objective > self.grid.best(result.problem, result.size)
            if self.config.confirm and would_lead:
                status = AddStatus.AWAITING_CONFIRMATION
                confirmation = Confirmation(
                    result.candidate_id,
                    result.candidate_id + CONFIRMATION_SUFFIX,
                    result.problem,
                    result.size,
                    objective,
                    time.time(),
                    "pending",
                )
                self.pending[confirmation.confirmation_id] = confirmation
                outcome.batch.confirmations.append(confirmation)
                outcome.to_confirm.append(result)
            else:
                status = self._add_elite(result, cell, techniques, objective, outcome)
        outcome.batch.records.append(
            Record(result, techniques, analysis.parse_error, cell, status, objective, outside, tracker.stage)
        )
        self._observe(result.problem, outcome)

    def _confirmation(self, result: Result, outcome: IngestOutcome) -> None:
        """The second measurement of a would-be best: decide the original's place in the grid."""
        pending = self.pending.pop(result.candidate_id)
        analysis = self.analysis(result.source)
        techniques = tuple(sorted(analysis.techniques))
        cell = cell_of(result.problem, result.size, techniques)
        confirmed = result.verdict is Verdict.OK
        objective = min(pending.objective, result.rate) if confirmed else 0.0
        status = AddStatus.NOT_ADDED
        if confirmed:
            status = self._add_elite(result, cell, techniques, objective, outcome, candidate_id=pending.candidate_id)
        outcome.batch.confirmations.append(
            Confirmation(
                pending.candidate_id,
                pending.confirmation_id,
                pending.problem,
                pending.size,
                pending.objective,
                pending.submitted_at,
                "confirmed" if confirmed else "refuted",
                result.rate if confirmed else 0.0,
            )
        )
        tracker = self.tracker(result.problem)
        outcome.batch.records.append(
            Record(
                result,
                techniques,
                analysis.parse_error,
                cell,
                status,
                objective,
                False,
                tracker.stage,
                confirmation_of=pending.candidate_id,
            )
        )

    def _add_elite(
        self,
        result: Result,
        cell: str,
        techniques: tuple[str, ...],
        objective: float,
        outcome: IngestOutcome,
        candidate_id: str = "",
    ) -> AddStatus:
        elite = Elite(
            result.problem,
            result.size,
            cell,
            candidate_id or result.candidate_id,
            objective,
            techniques,
            result.stage,
            time.time(),
        )
        status = self.grid.add(elite)
        if status is not AddStatus.NOT_ADDED:
            outcome.batch.elites.append(elite)
        return status

    def _observe(self, problem: str, outcome: IngestOutcome) -> None:
        tracker = self.tracker(problem)
        if not tracker.stage:
            return  # a problem this archive does not stage: stored, never moved
        best = max((e.objective for e in self.grid.elites(problem)), default=0.0)
        change = tracker.observe(best, self.grid)
        if change:
            outcome.batch.stage_changes.append(change)

    def _restore_stages(self, store: ArchiveStore) -> None:
        """Rebuild each tracker as it was: the stage from the last stage change, and the results of the
        stage with the problem's running best objective after each, replayed from the stored records."""
        for row in store.stage_changes():
            self.tracker(row.problem).stage = row.to_stage
        for problem, tracker in self.trackers.items():
            best = 0.0
            for status, objective, current_stage, confirmation_of in store.progress(problem):
                if status in (AddStatus.NEW, AddStatus.IMPROVE_EXISTING):
                    best = max(best, objective)
                if current_stage == tracker.stage and not confirmation_of:
                    tracker.results_in_stage += 1
                    tracker.best_history.append(best)
                    if len(tracker.best_history) > tracker.current.plateau_window + 1:
                        tracker.best_history.popleft()
