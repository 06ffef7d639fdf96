"""Calibration: re-measure a fixed reference kernel now and then, so drifting or noisy nodes show; and the
OpenBLAS anchor that `hpcrl demo` and `hpcrl perf bencher` compare the best kernels with.

The reference kernel (bencher/kernels/reference_dgemm.c) goes through the same pipeline as any candidate,
bypassing only the result cache; its median GFLOPS is attached to every result this bencher sends.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from bencher import metrics
from bencher.evaluation import Evaluation
from bencher.node import KERNELS_DIR
from bencher.pipeline import Pipeline
from bus.schema import Verdict

log = logging.getLogger(__name__)
REFERENCE_KERNEL = KERNELS_DIR / "reference_dgemm.c"
OPENBLAS_KERNEL = Path(__file__).parent / "problems" / "dgemm_openblas.c"
"""dgemm's vendor baseline (bencher/problems/dgemm.toml), also a trusted kernel of the start-up peak check."""
OPENBLAS_LIBRARIES = ("-lopenblas",)
LIBRARY_OUTSIDE_CPU_S_PER_CALL = 0.05
"""The bencher's between-calls CPU check for the OpenBLAS kernel only. OpenBLAS's pthreads spin for a
while after each call before they sleep (OPENBLAS_THREAD_TIMEOUT; OMP_WAIT_POLICY does not reach them),
and the default check (BencherConfig.outside_cpu_s_per_call, 2 ms) rejects that as hidden work on a
quiet node. Environment, monitor and timing stay those of every candidate."""


def library_pipeline(pipeline: Pipeline) -> Pipeline:
    """`pipeline` for our own library-backed kernels (OpenBLAS): the same sandbox, node and timing, with
    the between-calls CPU allowance above. Never for candidates."""
    config = replace(pipeline.config, outside_cpu_s_per_call=LIBRARY_OUTSIDE_CPU_S_PER_CALL)
    return Pipeline(config, sandbox=pipeline.sandbox, node=pipeline.node, record_metrics=pipeline.record_metrics)


class Calibrator:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.interval_s = pipeline.config.calibration_interval_s
        self.next_at = time.monotonic()

    def due(self) -> bool:
        return self.interval_s > 0 and time.monotonic() >= self.next_at

    def calibrate(self) -> Evaluation:
        """Measure the reference kernel and publish its figure (kept unchanged if the run failed)."""
        self.next_at = time.monotonic() + self.interval_s
        evaluation = self.pipeline.evaluate(
            "dgemm", self.pipeline.config.calibration_size, Path(REFERENCE_KERNEL).read_text(), use_cache=False
        )
        if evaluation.verdict is Verdict.OK:
            self.pipeline.calibration_gflops = evaluation.gflops_median
            metrics.CALIBRATION_GFLOPS.set(evaluation.gflops_median)
            metrics.CALIBRATION_TIMESTAMP.set(time.time())
        else:
            log.error("event=calibration_failed verdict=%s detail=%s", evaluation.verdict, evaluation.detail)
        log.info("event=calibrated gflops=%.2f cv=%.4f", evaluation.gflops_median, evaluation.cv)
        return evaluation
