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
    # One poller over every connection: an idle process blocks in one place, and only the
    # connections with traffic are pumped; all of them are pumped once per heartbeat interval.
    poller = zmq.Poller()
    owner: dict[zmq.Socket[bytes], BusWorker] = {}
    for worker in workers:
        for sock in (worker.conn.dealer, worker.conn.monitor):
            poller.register(sock, zmq.POLLIN)
            owner[sock] = worker
    busy: dict[BusWorker, tuple[Candidate, float]] = {}
    handled = 0
    next_full_pump = 0.0
    while not stop:
        now = time.monotonic()
        for worker, (candidate, done_at) in list(busy.items()):
            if now >= done_at:
                worker.finish(candidate, verdict=Verdict.INFRA_ERROR, detail=DETAIL)
                del busy[worker]
                handled += 1
        for worker in workers:
            if worker not in busy and worker.inbox:
                taken = worker.next_candidate(timeout_s=0.0)
                if taken is not None:
                    busy[worker] = (taken, now + args.delay_s)
        next_due = min((done_at for _, done_at in busy.values()), default=now + 0.1)
        timeout_ms = round(max(0.0, min(0.1, next_due - now, next_full_pump - now)) * 1000)
        ready = {owner[sock] for sock in dict(poller.poll(timeout_ms))}
        if time.monotonic() >= next_full_pump:
            next_full_pump = time.monotonic() + config.bus.heartbeat_interval_s / 2
            ready = set(workers)
        for worker in ready:
            worker.pump(0.0)
    # Drain: hand back what was started but not finished, then close every connection.
    for worker, (candidate, _) in busy.items():
        worker.release([candidate], "worker stopping")
    for worker in workers:
        worker.close()
    log.info("test worker stopped handled=%d", handled)
    return 0
