"""The start-up check that a bencher's peak can be trusted: our own kernels must measure below it.

A peak that is too low charges the best honest code as a cheat (`rejected: impossible speed`), the worst
error a reward can make. The calibration kernel and OpenBLAS's DGEMM (where it is installed) are code we
trust; if either runs faster than the peak x peak_margin, the peak is wrong, not the kernel. The node is
then re-probed for up to REPROBE_WINDOW_S; if a trusted kernel still beats the peak, the bencher refuses to
serve (PeakError, with the figures and the fix), instead of charging the policy for its own mistake.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bencher import metrics
from bencher.calibration import OPENBLAS_KERNEL, OPENBLAS_LIBRARIES, REFERENCE_KERNEL, library_pipeline
from bencher.peak import PeakError
from bencher.pipeline import Pipeline
from bus.schema import Verdict

log = logging.getLogger(__name__)
REPROBE_WINDOW_S = 20.0
"""How long a peak that a trusted kernel beats is re-probed before the bencher refuses to serve. A multi-thread
peak measured while another process starts on the node's other cores (a trainer importing torch beside a
bencher: 57-63 GFLOPS for two Zen 3 threads against 103) stays low for seconds; one re-probe at once was
still inside that, and the bencher refused to start."""
REPROBE_PAUSE_S = 2.0


@dataclass(frozen=True)
class TrustedKernel:
    name: str
    """`calibration` or `openblas`: the label of hpcrl_bencher_trusted_kernel_gflops."""
    source: Path
    libraries: tuple[str, ...]


TRUSTED_KERNELS = (
    TrustedKernel("calibration", REFERENCE_KERNEL, ()),
    TrustedKernel("openblas", OPENBLAS_KERNEL, OPENBLAS_LIBRARIES),
)


def measure_trusted_kernels(pipeline: Pipeline) -> dict[str, float]:
    """The fastest call of each trusted kernel at calibration_size, measured with no peak cap (so an
    over-peak figure is seen as a figure). A kernel that cannot be built (no OpenBLAS here) is left out."""
    uncapped = Pipeline(
        replace(pipeline.config, result_cache=False),
        sandbox=pipeline.sandbox,
        node=replace(pipeline.node, peak_gflops=math.inf),
        record_metrics=False,
    )
    library = library_pipeline(uncapped)
    figures: dict[str, float] = {}
    try:
        for kernel in TRUSTED_KERNELS:
            runner = library if kernel.libraries else uncapped
            evaluation = runner.evaluate(
                "dgemm",
                pipeline.config.calibration_size,
                kernel.source.read_text(),
                use_cache=False,
                trusted_libraries=kernel.libraries,
            )
            if evaluation.verdict is Verdict.COMPILE_ERROR and kernel.libraries:
                log.info("event=trusted_kernel_skipped kernel=%s detail=%r", kernel.name, evaluation.detail[:200])
                continue
            if evaluation.verdict is not Verdict.OK:
                log.error(
                    "event=trusted_kernel_failed kernel=%s verdict=%s detail=%r",
                    kernel.name,
                    evaluation.verdict,
                    evaluation.detail[:300],
                )
                continue
            figures[kernel.name] = evaluation.gflops_max
            metrics.TRUSTED_KERNEL_GFLOPS.labels(kernel.name).set(evaluation.gflops_max)
    finally:
        library.close()
        uncapped.close()
    return figures


def check_peak_against_trusted_kernels(pipeline: Pipeline) -> dict[str, float]:
    """Raise PeakError unless every trusted kernel measures below the peak x peak_margin (after re-probes of
    the node for up to REPROBE_WINDOW_S if needed). Returns the figures."""
    figures = measure_trusted_kernels(pipeline)
    deadline = time.monotonic() + REPROBE_WINDOW_S
    while _over_cap(pipeline, figures):
        log.warning(
            "event=trusted_kernel_over_peak peak_gflops=%.1f figures=%s: re-probing", pipeline.node.peak_gflops, figures
        )
        pipeline.reprobe()
        figures = measure_trusted_kernels(pipeline)
        if not _over_cap(pipeline, figures) or time.monotonic() > deadline:
            break
        time.sleep(REPROBE_PAUSE_S)
    over = _over_cap(pipeline, figures)
    if over:
        name, gflops = over[0]
        node = pipeline.node
        raise PeakError(
            f"the trusted {name} kernel measured {gflops:.1f} GFLOPS, above this node's peak of "
            f"{node.peak_gflops:.1f} GFLOPS x peak_margin {pipeline.config.peak_margin:g} for {node.threads} "
            f"thread(s) ({node.isa or '?'}, -march={node.march}), even after re-probes: serving would charge "
            "honest code as a cheat. If bencher.peak_gflops is declared, raise or remove it; otherwise report "
            "this CPU (/proc/cpuinfo) with the bencher's log, and declare the node class's real peak meanwhile"
        )
    _log_passed(pipeline, figures)
    return figures


def _over_cap(pipeline: Pipeline, figures: dict[str, float]) -> list[tuple[str, float]]:
    cap = pipeline.node.peak_gflops * pipeline.config.peak_margin
    return [(name, gflops) for name, gflops in figures.items() if gflops > cap]


def _log_passed(pipeline: Pipeline, figures: dict[str, float]) -> None:
    log.info(
        "event=peak_trusted peak_gflops=%.1f isa=%s %s",
        pipeline.node.peak_gflops,
        pipeline.node.isa,
        " ".join(f"{name}_gflops={gflops:.1f}" for name, gflops in figures.items()),
    )
