"""Each problem's speed baselines on this node: its naive reference and, where there is one, its vendor
library's implementation, measured through the same pipeline as a candidate at the size a candidate asks for.

They travel with every result (`naive_rate`, `vendor_rate`), so a reward or `hpcrl eval` can say "4x the
naive code" on whatever node measured it: a speedup is only meaningful against a baseline measured on the
same kind of node. Each is measured once per (problem, size) by a bencher process, and kept in the result
cache of its node class across restarts (the sources never change). A baseline that fails (a missing vendor
library, a naive code too slow for the call limit) is 0, "unknown": logged, never guessed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

from bencher.calibration import library_pipeline
from bencher.evaluation import Evaluation
from bencher.pipeline import Pipeline
from bus.problems import Problem, ProblemError, get_problem
from bus.schema import Verdict

log = logging.getLogger(__name__)
BASELINE_CALL_TIMEOUT_MAX_S = 300.0
"""A naive code at a large size is slow by design (dgemm's textbook loop at n = 2048: about a minute a
call): its calls may take this long, where a candidate's are cut at bencher.call_timeout_max_s."""


class Baselines:
    def __init__(self, pipeline: Pipeline) -> None:
        config = replace(
            pipeline.config, call_timeout_max_s=max(pipeline.config.call_timeout_max_s, BASELINE_CALL_TIMEOUT_MAX_S)
        )
        self.pipeline = Pipeline(config, sandbox=pipeline.sandbox, node=pipeline.node, record_metrics=False)
        self.library = library_pipeline(self.pipeline)
        self.rates: dict[tuple[str, int], tuple[float, float]] = {}
        """(problem, size) -> (naive rate, vendor rate), in the problem's metric."""

    def attach(
        self, evaluation: Evaluation, problem_name: str, size: int | None, cancel: threading.Event | None
    ) -> Evaluation:
        """`evaluation` with this node's baselines for its problem and size (measured now if not yet known)."""
        try:
            problem = get_problem(problem_name, self.pipeline.config.problem_dirs)
        except ProblemError:
            return evaluation  # rejected already: no problem, no baseline
        n = problem.default_size if size is None else size
        if n not in problem.sizes:
            return evaluation
        if (problem.id, n) not in self.rates:
            naive = self._measure(problem, n, "naive", problem.naive, self.pipeline, (), cancel)
            vendor = (
                self._measure(problem, n, "vendor", problem.vendor, self.library, problem.vendor_libraries, cancel)
                if problem.vendor
                else 0.0
            )
            if cancel is not None and cancel.is_set():
                return evaluation  # a stop cut the measurement short: measure again next time
            self.rates[problem.id, n] = (naive, vendor)
        naive, vendor = self.rates[problem.id, n]
        return replace(evaluation, naive_rate=naive, vendor_rate=vendor)

    def _measure(
        self,
        problem: Problem,
        n: int,
        which: str,
        source: Path,
        runner: Pipeline,
        libraries: tuple[str, ...],
        cancel: threading.Event | None,
    ) -> float:
        """The rate of `source` (the naive reference, or the vendor file linked with `libraries`); 0 when it
        failed, logged with the reason."""
        evaluation = runner.evaluate(problem.id, n, source.read_text(), cancel, trusted_libraries=libraries)
        if evaluation.verdict is not Verdict.OK:
            log.warning(
                "event=baseline_failed problem=%s size=%d baseline=%s verdict=%s detail=%r",
                problem.id,
                n,
                which,
                evaluation.verdict,
                evaluation.detail[:300],
            )
            return 0.0
        log.info(
            "event=baseline problem=%s size=%d baseline=%s rate=%.3f metric=%s cached=%s",
            problem.id,
            n,
            which,
            evaluation.rate_median,
            problem.metric,
            evaluation.cached,
        )
        return evaluation.rate_median

    def close(self) -> None:
        self.pipeline.close()
