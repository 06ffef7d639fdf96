"""Stages (SQD): per problem, where it stands on its ladder and when it moves to the next rung.

A stage ends by one of two rules, checked after every result stored in it:
- plateau: at least K results in the stage, the problem's best objective has grown by no more than
  x (relative) over the last K results, and the stage's cells reach coverage c;
- budget: the stage has seen max_results results.
The last stage never ends. "Best objective" is the best verified GFLOPS of the problem's elites at
any size (a run normally trains one size), carried over from earlier stages, so a stage ends when
it stops improving on everything found so far.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from archive.config import Stage
from archive.qd import Grid
from archive.store import StageRow


@dataclass
class StageTracker:
    problem: str
    ladder: tuple[Stage, ...]
    stage: int = 0
    """1-based current stage; 0 before the archive announced the first one."""
    results_in_stage: int = 0
    best_history: deque[float] = field(default_factory=deque)
    """The problem's best objective after each result of the stage, the last K+1 of them."""

    @property
    def current(self) -> Stage:
        return self.ladder[max(1, self.stage) - 1]

    def permitted(self, stage: int) -> frozenset[str] | None:
        """Techniques stage `stage` permits; None for a stage outside the ladder (0: not staged)."""
        return self.ladder[stage - 1].techniques if 1 <= stage <= len(self.ladder) else None

    def start(self, grid: Grid) -> StageRow | None:
        """The announcement of stage 1 for a problem the archive has never staged."""
        if self.stage:
            return None
        return self._move_to(1, "start", grid)

    def observe(self, best_objective: float, grid: Grid) -> StageRow | None:
        """Count one stored result of this problem; the stage change it triggers, if any."""
        self.results_in_stage += 1
        stage = self.current
        self.best_history.append(best_objective)
        while len(self.best_history) > stage.plateau_window + 1:
            self.best_history.popleft()
        if self.stage >= len(self.ladder):
            return None
        if self._plateau(stage, grid):
            reason = (
                f"plateau: best {best_objective:.2f} GFLOPS improved by <= {stage.plateau_improvement:.0%} over "
                f"the last {stage.plateau_window} results, coverage {self._coverage(grid):.2f} >= {stage.min_coverage}"
            )
            return self._move_to(self.stage + 1, reason, grid)
        if stage.max_results and self.results_in_stage >= stage.max_results:
            return self._move_to(self.stage + 1, f"budget: {self.results_in_stage} results in stage {self.stage}", grid)
        return None

    def _plateau(self, stage: Stage, grid: Grid) -> bool:
        if self.results_in_stage < stage.plateau_window or len(self.best_history) <= stage.plateau_window:
            return False
        before, now = self.best_history[0], self.best_history[-1]
        improved = now > before * (1 + stage.plateau_improvement) if before > 0 else now > 0
        return not improved and self._coverage(grid) >= stage.min_coverage

    def _coverage(self, grid: Grid) -> float:
        return grid.stats(self.problem, self.current.techniques).coverage

    def _move_to(self, stage: int, reason: str, grid: Grid) -> StageRow:
        previous, counted = self.stage, self.results_in_stage
        self.stage, self.results_in_stage = stage, 0
        self.best_history.clear()
        new = self.current
        stats = grid.stats(self.problem, new.techniques).as_dict()
        stats["results_in_previous_stage"] = float(counted)
        return StageRow(
            0, self.problem, previous, stage, reason, tuple(sorted(new.techniques)), stats, time.time(), counted
        )
