"""`hpcrl test-worker`: a stand-in worker that takes candidates and runs nothing.

It answers every candidate with an honest `infra_error` result ("nothing was run"), so it can
never look like a reward. It exists to exercise and measure the bus until the bencher (issue 3)
takes its place.
"""

from __future__ import annotations

import argparse
import logging
import time

import zmq

from bus import metrics
from bus.cli import add_config_arguments, load_or_exit
from bus.daemon import on_stop_signal, setup_logging
from bus.schema import Candidate, Verdict
from bus.worker import BusWorker

log = logging.getLogger(__name__)
DETAIL = "test worker: nothing was compiled or run"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl test-worker", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--name", default="test-worker", help="worker name")
    parser.add_argument("--delay-s", type=float, default=0.0, help="seconds to 'work' on each candidate")
    parser.add_argument("--connections", type=int, default=1, help="worker connections this process opens (load tests)")
    parser.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    config = load_or_exit(parser, args.config)
    metrics.serve_metrics(args.metrics_port)
    stop: list[bool] = []
    on_stop_signal(lambda: stop.append(True))
    workers = [
        BusWorker(config.bus, f"{args.name}-{i}" if args.connections > 1 else args.name)
        for i in range(args.connections)
    ]
    # One poller over every connection, so an idle process blocks in one place and wakes on any.
    poller = zmq.Poller()
    for worker in workers:
        poller.register(worker.conn.dealer, zmq.POLLIN)
    busy: dict[int, tuple[Candidate, float]] = {}
    handled = 0
    while not stop:
        for index, worker in enumerate(workers):
            worker.pump(0.0)
            if index in busy and time.monotonic() >= busy[index][1]:
                worker.finish(busy.pop(index)[0], verdict=Verdict.INFRA_ERROR, detail=DETAIL)
                handled += 1
            if index not in busy:
                candidate = worker.next_candidate(timeout_s=0.0)
                if candidate is not None:
                    busy[index] = (candidate, time.monotonic() + args.delay_s)
        next_due = min((done_at for _, done_at in busy.values()), default=time.monotonic() + 0.1)
        if any(worker.inbox for worker in workers):
            continue
        poller.poll(round(max(0.0, min(0.1, next_due - time.monotonic())) * 1000))
    # Drain: hand back what was started but not finished, then close every connection.
    for index, (candidate, _) in busy.items():
        workers[index].release([candidate], "worker stopping")
    for worker in workers:
        worker.close()
    log.info("test worker stopped handled=%d", handled)
    return 0
