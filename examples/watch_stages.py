#!/usr/bin/env python3
"""Print the current stage of every problem on an hpcrl bus, then every stage change, as JSON lines.

A subscriber written from docs/protocol.md alone: it uses only pyzmq and msgpack (no hpcrl import), so it
doubles as a template for clients in other languages. It is the Clone pattern: a snapshot, then updates
(protocol.md sections 3.2, 5.5, 6.5, 8.4):

    connect   SUB -> event endpoint (subscribed to stage.<problem> or stage., and heartbeat.broker),
              DEALER -> request endpoint (ZMQ_IMMEDIATE)
    introduce heartbeat {role: client}, then one every interval
    snapshot  fetch {prefixes, latest_only: true}: the newest stage_change of every problem (the journal
              never evicts a topic's newest event); print them. Live events are held until it is answered.
    follow    print live stage changes in topic_seq order; when a topic_seq gap or a broker heartbeat's
              topic_heads shows a problem ahead of us, fetch {prefixes: [topic], after_bus_seq: <its last
              bus_seq>} and print the changes that were missed, then the held live ones

The sockets, the envelope and the follower are in bus_follow.py, shared with follow_results.py.

Stage changes are printed as published (the `stage_change` message, `kind` included); a problem's current
stage is the `to_stage` of its last line. Exit status: 0 once --count changes after the snapshot were
printed (--count 0: the snapshot only), or when --timeout-s ends a run without --count; 1 when the timeout
came first or on a bad argument (reason on stderr). Every receive is bounded by a zmq.Poller timeout.

    python examples/watch_stages.py --timeout-s 3600
"""

from __future__ import annotations

import json
import logging
import sys
import time

import bus_follow
from bus_follow import Follower, Message, Sync, Topics

STAGE_TOPIC_PREFIX = "stage."

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="watch_stages: %(message)s", level=logging.INFO)
    parser = bus_follow.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--problem", help="only this problem's stage (default: every problem's)")
    parser.add_argument(
        "--count", type=int, help="exit 0 after printing this many changes after the snapshot (0: the snapshot only)"
    )
    args = bus_follow.parse_args(parser, argv)
    if args is None:
        return 1
    if args.count is not None and args.count < 0:
        log.info("--count must be >= 0")
        return 1

    topics = Topics("stage_change", STAGE_TOPIC_PREFIX, args.problem)
    current = changes = 0

    def print_stage_change(stage_change: Message) -> None:
        nonlocal current, changes
        if not follower.synced:  # part of the snapshot
            current += 1
        elif args.count is None or changes < args.count:
            changes += 1
        else:
            return
        print(json.dumps(stage_change), flush=True)

    def done() -> bool:
        return follower.synced and args.count is not None and changes >= args.count

    def snapshot_in(upto_bus_seq: int) -> None:
        log.info(f"snapshot of {len(follower.positions)} problem(s) at bus_seq {upto_bus_seq}: following changes")

    deadline = time.monotonic() + args.timeout_s
    bus = bus_follow.bus_for(args, topics, "watch-stages")
    follower = Follower(bus, topics, Sync(latest_only=True), print_stage_change, snapshot_in)
    if not bus_follow.follow(bus, follower, deadline, done):
        return 1
    log.info(
        f"printed the current stage of {current} problem(s) and {changes} change(s): "
        f"{follower.recovered} recovered from the journal, {follower.lost} lost"
    )
    if args.count is not None and not done():
        log.info(f"timed out after {args.timeout_s:g} s with {changes} of {args.count} changes")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
