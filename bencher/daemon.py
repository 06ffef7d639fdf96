"""The bencher daemon: one candidate at a time from the bus, evaluated while the bus keeps flowing.

The main thread owns the bus connection (zmq sockets live in one thread) and only pumps it, so
heartbeats continue however long a benchmark runs; one evaluation thread runs the pipeline. On
SIGTERM the daemon takes no new candidates, lets the running one finish for up to
drain_timeout_s, else kills its run and hands the candidate back to the broker, then exits 0.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from bencher import metrics
from bencher.baselines import Baselines
from bencher.calibration import Calibrator
from bencher.config import BencherConfig
from bencher.evaluation import Evaluation
from bencher.node import Node
from bencher.peak import PeakError
from bencher.pipeline import Pipeline
from bencher.sandbox import SandboxError
from bencher.trust import check_peak_against_trusted_kernels
from bus.config import ConfigError, HpcrlConfig
from bus.daemon import log_config, on_stop_signal
from bus.schema import Candidate, Verdict
from bus.worker import BusWorker

log = logging.getLogger(__name__)
PUMP_INTERVAL_S = 0.1
"""How long the main loop waits on the bus per turn when nothing happens (a finished evaluation
wakes it at once through a pipe)."""
SIGNAL_VERDICTS = frozenset({Verdict.INFRA_ERROR, Verdict.CRASH})
"""Verdicts a run gets when a stop signal reaches its sandbox (bwrap killed: infra_error; the candidate
killed: crash); while draining they are not the candidate's, so it is handed back instead."""


class Job:
    """One evaluation running on the evaluation thread: a candidate's, or a calibration (candidate None)."""

    def __init__(self, future: Future[Evaluation], candidate: Candidate | None, cancel: threading.Event) -> None:
        self.future = future
        self.candidate = candidate
        self.cancel = cancel


def serve(bus_config: HpcrlConfig, config: BencherConfig, name: str | None, metrics_port: int | None) -> int:
    try:  # --metrics-port goes through the same checks as the setting
        config = dataclasses.replace(config, metrics_port=config.metrics_port if metrics_port is None else metrics_port)
    except ConfigError as error:
        log.error("event=bad_config error=%s", error)
        return 2
    log_config(__name__, config)
    name = name or config.name or f"bencher-{socket.gethostname()}-{os.getpid()}"
    try:
        pipeline = Pipeline(config)
    except (SandboxError, PeakError) as error:
        log.error("event=cannot_start error=%s", error)
        return 1
    try:  # never serve with a peak that our own kernels beat: it would charge honest code as a cheat
        check_peak_against_trusted_kernels(pipeline)
    except PeakError as error:
        log.error("event=cannot_start error=%s", error)
        pipeline.close()
        return 1
    metrics.PEAK_GFLOPS.set(pipeline.node.peak_gflops)
    metrics.THREADS.set(pipeline.node.threads)
    stop = threading.Event()
    on_stop_signal(stop.set)  # from here on, SIGTERM means a clean stop that removes the target file
    try:
        target_file = _serve_metrics(config, name, pipeline.node)
    except OSError as error:
        log.error("event=cannot_start error=metrics endpoint or target file: %s", error)
        pipeline.close()
        return 1
    log.info(
        "event=started name=%s host=%s slurm_job_id=%s threads=%d cpus=%s node_class=%r peak_gflops=%.1f isa=%s",
        name,
        pipeline.node.host,
        pipeline.node.slurm_job_id,
        pipeline.node.threads,
        ",".join(map(str, pipeline.node.cpus)),
        pipeline.node.node_class,
        pipeline.node.peak_gflops,
        pipeline.node.isa,
    )
    calibrator = Calibrator(pipeline)
    baselines = Baselines(pipeline)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluation")
    job: Job | None = None
    drain_deadline = 0.0
    wake_read, wake_write = os.pipe()  # the evaluation thread's "done" ends the loop's wait at once
    os.set_blocking(wake_read, False)
    with BusWorker(bus_config.bus, name, slots=1) as worker:
        worker.wake_on(wake_read)
        while True:
            if stop.is_set() and not worker.draining:
                worker.drain()
                drain_deadline = time.monotonic() + config.drain_timeout_s
                log.info("event=draining in_flight=%s", job.candidate.candidate_id if job and job.candidate else "")
            if job is not None:
                if job.future.done():
                    _complete(worker, job)
                    job = None
                elif worker.draining and time.monotonic() > drain_deadline and not job.cancel.is_set():
                    job.cancel.set()  # the sandbox kills the run; _complete hands the candidate back
            elif worker.draining:
                break
            elif calibrator.due():
                job = _start(executor, pipeline, baselines, None, calibrator, wake_write)
            else:
                candidate = worker.next_candidate(timeout_s=0.0)
                if candidate is not None:
                    job = _start(executor, pipeline, baselines, candidate, calibrator, wake_write)
            worker.pump(0.0 if job is not None and job.future.done() else PUMP_INTERVAL_S)
            _drain(wake_read)
            metrics.update_busy_ratio()
    executor.shutdown(wait=True)
    os.close(wake_read)
    os.close(wake_write)
    baselines.close()
    pipeline.close()
    if target_file is not None:
        target_file.unlink(missing_ok=True)  # a crash leaves it, so Prometheus reports the bencher down
    log.info("event=stopped name=%s", name)
    return 0


def _serve_metrics(config: BencherConfig, name: str, node: Node) -> Path | None:
    """Start the /metrics endpoint, then write its file_sd target file if configured; returns that file."""
    port = metrics.serve(config.metrics_port, config.metrics_address)
    if not port:
        return None
    target = f"{metrics.target_host(config.metrics_address)}:{port}"
    path = None
    if config.metrics_sd_dir:
        path = metrics.target_path(config.metrics_sd_dir, name)
        labels = {"role": "bencher", "bencher": name, "slurm_job_id": node.slurm_job_id, "node_class": node.node_class}
        metrics.write_target(path, target, labels)
    log.info(
        "event=metrics_serving address=%s port=%d target=%s target_file=%s",
        config.metrics_address,
        port,
        target,
        path or "",
    )
    return path


def _start(
    executor: ThreadPoolExecutor,
    pipeline: Pipeline,
    baselines: Baselines,
    candidate: Candidate | None,
    calibrator: Calibrator,
    wake: int,
) -> Job:
    cancel = threading.Event()
    if candidate is None:
        future = executor.submit(calibrator.calibrate)
    else:
        log.info("event=candidate id=%s problem=%s size=%d", candidate.candidate_id, candidate.problem, candidate.size)

        def evaluate(candidate: Candidate = candidate) -> Evaluation:
            # use_cache: a confirmation run must measure again
            evaluation = pipeline.evaluate(
                candidate.problem, candidate.size, candidate.source, cancel, use_cache=not candidate.remeasure
            )
            return baselines.attach(evaluation, candidate.problem, candidate.size, cancel)

        future = executor.submit(evaluate)
    future.add_done_callback(lambda _: os.write(wake, b"."))
    return Job(future, candidate, cancel)


def _drain(fd: int) -> None:
    """Empty the wake-up pipe (non-blocking)."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _complete(worker: BusWorker, job: Job) -> None:
    try:
        evaluation = job.future.result()
    except Exception as error:  # our own bug: logged with its traceback, never charged to the candidate
        log.exception("event=evaluation_failed")
        evaluation = Evaluation(Verdict.INFRA_ERROR, f"bencher fault: {type(error).__name__}: {error}")
    if job.candidate is None:
        return
    # While draining, a run that died may have died of our own stop: SLURM's scancel and systemd's
    # control-group kill signal the sandbox too. Hand it back to be measured again rather than report it.
    killed_by_stop = worker.draining and evaluation.verdict in SIGNAL_VERDICTS
    if job.cancel.is_set() or killed_by_stop:
        worker.release([job.candidate], "bencher stopping")
        log.info("event=released id=%s verdict=%s", job.candidate.candidate_id, evaluation.verdict.value)
        return
    worker.finish(job.candidate, **evaluation.result_fields())
