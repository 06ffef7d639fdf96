"""The benchmark pipeline: result cache -> static checks -> compile -> link -> sandboxed run -> verify -> time.

`Pipeline.evaluate` is the whole of what a bencher does to one candidate; the daemon and
`hpcrl bench-file` both call it. Outcomes are data: every path returns an `Evaluation` with a
verdict, never raises for anything a candidate did.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

from bencher import metrics
from bencher.build import Builder
from bencher.cache import ResultCache, result_key
from bencher.config import BencherConfig
from bencher.evaluation import Evaluation
from bencher.measure import Measurement, measure
from bencher.node import Node, detect_node, measure_peak
from bencher.peak import PeakError
from bencher.sandbox import Sandbox, SandboxError
from bus.problems import Problem, get_problem
from bus.schema import Verdict

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(
        self,
        config: BencherConfig,
        sandbox: Sandbox | None = None,
        node: Node | None = None,
        record_metrics: bool = True,
    ) -> None:
        self.config = config
        self.record_metrics = record_metrics
        """False for the bencher's own checks at start (bencher.trust): they are not candidates."""
        # Only root can switch to sandbox_uid; a plain user's bencher sandboxes programs as itself.
        self.sandbox = sandbox or Sandbox(uid=config.sandbox_uid if os.geteuid() == 0 else None)
        self.node = node or detect_node(config)
        self.builder = Builder(config, self.sandbox)
        self.results = ResultCache(config.cache_path / "results.sqlite") if config.result_cache else None
        self.calibration_gflops = 0.0
        """The latest figure of the reference kernel (set by bencher.calibration); travels with every result."""

    def evaluate(
        self,
        problem_name: str,
        size: int | None,
        source: str,
        cancel: threading.Event | None = None,
        use_cache: bool = True,
        trusted_libraries: tuple[str, ...] = (),
    ) -> Evaluation:
        """Judge and measure one source. Unknown problems and sizes are the submitter's mistake and
        come back as `rejected` (a bus candidate must get a result, never an exception)."""
        started = time.monotonic()
        try:
            evaluation = self._evaluate(problem_name, size, source, cancel, use_cache, trusted_libraries)
        except SandboxError as error:  # our side failed (a compiler missing, bwrap broken): never the candidate's
            log.error("event=infra_error problem=%s error=%s", problem_name, error)
            evaluation = Evaluation(Verdict.INFRA_ERROR, f"bencher fault: {error}")
        evaluation = replace(
            evaluation,
            calibration_gflops=self.calibration_gflops,
            host=self.node.host,
            slurm_job_id=self.node.slurm_job_id,
            threads=self.node.threads,
            node_class=self.node.node_class,
        )
        if self.record_metrics:
            metrics.observe(evaluation, time.monotonic() - started)
        log.info(
            "event=evaluated problem=%s size=%s verdict=%s gflops=%.2f cached=%s compile_s=%.3f run_s=%.3f",
            problem_name,
            size,
            evaluation.verdict,
            evaluation.gflops_median,
            evaluation.cached,
            evaluation.compile_s,
            evaluation.run_s,
        )
        return evaluation

    def _evaluate(
        self,
        problem_name: str,
        size: int | None,
        source: str,
        cancel: threading.Event | None,
        use_cache: bool,
        trusted_libraries: tuple[str, ...],
    ) -> Evaluation:
        try:
            problem = get_problem(problem_name, self.config.problem_dirs).built_for(self.config.march)
            n = problem.default_size if size is None else size
            problem.check_size(n)
        except ValueError as error:
            return Evaluation(Verdict.REJECTED, str(error))
        key = result_key(self.builder.build_key(problem, source, trusted_libraries), n, self.node.node_class)
        if use_cache and self.results:
            hit = self.results.get(key)
            if hit:
                metrics.CACHE_HITS.labels("result").inc()
                return replace(Evaluation(**{**hit, "verdict": Verdict(hit["verdict"])}), cached=True)
        build = self.builder.build(problem, source, trusted_libraries)
        if build.cached:
            metrics.CACHE_HITS.labels("build").inc()
        if build.verdict is not Verdict.OK or build.binary is None:
            evaluation = Evaluation(build.verdict, build.detail, metric=problem.metric, compile_s=build.compile_s)
        else:
            metrics.COMPILE_SECONDS.observe(build.compile_s)
            trusted = bool(trusted_libraries)
            measurement = measure(build.binary, problem, n, self.config, self.node, self.sandbox, cancel, trusted)
            if measurement.over_peak:
                measurement = self._confirm_impossible_speed(build.binary, problem, n, measurement, cancel, trusted)
            metrics.RUN_SECONDS.observe(measurement.run_s)
            evaluation = _evaluation_of(measurement, problem.metric, build.compile_s)
        if use_cache and self.results:
            stored = asdict(evaluation)
            stored["verdict"] = str(evaluation.verdict)
            self.results.put(key, evaluation.verdict, stored)
        return evaluation

    def reprobe(self) -> None:
        """Measure the node's peak again and keep the higher of the two: a peak measured low (a busy core
        during the first probe, a declaration too low) must not go on charging honest code. Raises PeakError."""
        peak = measure_peak(replace(self.config, peak_gflops=0.0), self.node.cpus)
        if peak.gflops > self.node.peak_gflops:
            log.warning(
                "event=peak_raised old_peak_gflops=%.1f new_peak_gflops=%.1f isa=%s",
                self.node.peak_gflops,
                peak.gflops,
                peak.isa,
            )
            self.node = replace(self.node, peak_gflops=peak.gflops)
            metrics.PEAK_GFLOPS.set(peak.gflops)

    def _confirm_impossible_speed(
        self,
        binary: Path,
        problem: Problem,
        n: int,
        first: Measurement,
        cancel: threading.Event | None,
        trusted: bool,
    ) -> Measurement:
        """A figure over the peak is charged (`rejected`) only when it survives a re-probe of the node and a
        second measurement. If the re-probed peak covers the figure, the peak was wrong and the result is
        `ok`. Anything between is our doubt, not the candidate's fault: `infra_error`, never charged,
        counted in hpcrl_bencher_unconfirmed_impossible_total."""
        old_peak = self.node.peak_gflops
        try:
            self.reprobe()
        except PeakError as error:
            return self._unconfirmed(first, f"the node could not be re-probed: {error}")
        if max(first.gflops) <= self.node.peak_gflops * problem.peak_scale * self.config.peak_margin:
            detail = (
                f"{len(first.seconds)} timed calls, max error {first.max_error:.2e}; the node's peak was re-probed "
                f"({old_peak:.1f} -> {self.node.peak_gflops:.1f} GFLOPS)"
            )
            return replace(first, verdict=Verdict.OK, detail=detail, over_peak=False)
        second = measure(binary, problem, n, self.config, self.node, self.sandbox, cancel, trusted)
        if second.over_peak:
            detail = (
                f"{second.detail}; confirmed: over the peak in two runs ({max(first.gflops):.1f} and "
                f"{max(second.gflops):.1f} GFLOPS), after a re-probe of the node"
            )
            return replace(second, detail=detail)
        if second.verdict is not Verdict.OK:
            return second  # wrong, crashed, timed out on the second run: its own verdict, charged as usual
        return self._unconfirmed(
            first,
            f"the re-check measured {second.gflops_median:.1f} GFLOPS, within the peak of {self.node.peak_gflops:.1f}",
        )

    def _unconfirmed(self, first: Measurement, why: str) -> Measurement:
        metrics.UNCONFIRMED_IMPOSSIBLE.inc()
        log.warning("event=unconfirmed_impossible_speed first_gflops=%.1f why=%r", max(first.gflops), why)
        return Measurement(
            Verdict.INFRA_ERROR,
            f"unconfirmed impossible speed, not charged: {first.detail}; {why}",
            run_s=first.run_s,
        )

    def close(self) -> None:
        if self.results:
            self.results.close()


def _evaluation_of(measurement: Measurement, metric: str, compile_s: float) -> Evaluation:
    ok = measurement.verdict is Verdict.OK
    rates, gflops = (measurement.rates, measurement.gflops) if ok else ((), ())
    detail = measurement.detail
    if measurement.output and not ok:
        detail += f"; candidate output: {measurement.output[:300]!r}"
    return Evaluation(
        verdict=measurement.verdict,
        detail=detail,
        metric=metric,
        rate_median=statistics.median(rates) if rates else 0.0,
        rate_min=min(rates, default=0.0),
        rate_max=max(rates, default=0.0),
        gflops_median=statistics.median(gflops) if gflops else 0.0,
        gflops_min=min(gflops, default=0.0),
        gflops_max=max(gflops, default=0.0),
        cv=measurement.cv if rates else 0.0,
        repetitions=len(measurement.seconds),
        compile_s=compile_s,
        run_s=measurement.run_s,
    )
