#!/usr/bin/env python3
"""Follow benchmark results on an hpcrl bus and print each as one JSON line, missing none.

A subscriber written from docs/protocol.md alone: it uses only pyzmq and msgpack (no hpcrl import), so it
doubles as a template for clients in other languages. The dialog (protocol.md sections 3.2, 6.5, 8.4):

    connect   SUB -> event endpoint (subscribed to result.<problem> or result., and heartbeat.broker),
              DEALER -> request endpoint (ZMQ_IMMEDIATE)
    introduce heartbeat {role: client}, then one every interval
    sync      fetch {prefixes, limit: 0}: every topic's head, i.e. where "now" is; or, with --since N,
              fetch {prefixes, after_bus_seq: N, limit: 1000} page by page: replay the journal first.
              Live events are held until the sync is complete.
    follow    print live results in topic_seq order; when a topic_seq gap or a broker heartbeat's
              topic_heads shows a topic ahead of us, fetch {prefixes: [topic], after_bus_seq: <its last
              bus_seq>} and print what was missed, then the held live events

The sockets, the envelope and the follower are in bus_follow.py, shared with watch_stages.py.

Results are printed as published (the `result` message, `kind` included), in topic_seq order per topic;
across topics a recovered result can come after newer ones. Exit status: 0 once --count results were
printed, or when --timeout-s ends a run without --count; 1 when the timeout came first or on a bad
argument (reason on stderr). Every receive is bounded by a zmq.Poller timeout.

    python examples/follow_results.py --problem dgemm --count 10 --timeout-s 600
"""

from __future__ import annotations

import json
import logging
import sys
import time

import bus_follow
from bus_follow import Follower, Message, Sync, Topics

RESULT_TOPIC_PREFIX = "result."

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="follow_results: %(message)s", level=logging.INFO)
    parser = bus_follow.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--problem", help="only this problem's results (default: every problem's)")
    parser.add_argument("--since", type=int, help="first print every journaled result after this bus_seq (0: all)")
    parser.add_argument("--count", type=int, help="exit 0 after printing this many results")
    args = bus_follow.parse_args(parser, argv)
    if args is None:
        return 1
    if (args.count is not None and args.count < 0) or (args.since is not None and args.since < 0):
        log.info("--count and --since must be >= 0")
        return 1

    topics = Topics("result", RESULT_TOPIC_PREFIX, args.problem)
    printed = 0

    def print_result(result: Message) -> None:
        nonlocal printed
        if args.count is None or printed < args.count:
            print(json.dumps(result), flush=True)
            printed += 1

    def done() -> bool:
        return args.count is not None and printed >= args.count

    def in_sync(upto_bus_seq: int) -> None:
        log.info(f"in sync at bus_seq {upto_bus_seq}: following {topics.exact or topics.prefix + '*'}")

    deadline = time.monotonic() + args.timeout_s
    bus = bus_follow.bus_for(args, topics, "follow-results")
    follower = Follower(bus, topics, Sync(since=args.since), print_result, in_sync)
    if not bus_follow.follow(bus, follower, deadline, done):
        return 1
    log.info(f"printed {printed} result(s): {follower.recovered} recovered from the journal, {follower.lost} lost")
    if args.count is not None and not done():
        log.info(f"timed out after {args.timeout_s:g} s with {printed} of {args.count} results")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
