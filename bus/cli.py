"""Command-line entry points of the bus: `hpcrl bus`, `hpcrl tail`, `hpcrl submit`, `hpcrl keys`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bus.config import ConfigError, HpcrlConfig, load_config
from bus.daemon import log_config, on_stop_signal, setup_logging
from bus.journal import JournalError
from bus.schema import MAX_SOURCE_BYTES, Result, Verdict

if TYPE_CHECKING:
    from bus.client import BusClient
    from bus.stream import EventsLost

PROBLEM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""What a problem name may be (it becomes a topic, `result.<problem>`; docs/protocol.md 3.3)."""
MAX_PROBLEM_SIZE = 2**31 - 1
MAX_IDENTIFIER_CHARS = 200
SUBMIT_WAIT_SLICE_S = 0.2
"""`hpcrl submit` waits in slices this long so Ctrl-C ends it promptly."""


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (default: built-in loopback defaults)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")


def load_or_exit(parser: argparse.ArgumentParser, path: str | None) -> HpcrlConfig:
    try:
        return load_config(path)
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")


def run_broker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl bus", description="Run the message broker daemon.")
    add_config_arguments(parser)
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (overrides broker.metrics_port)"
    )
    parser.add_argument("--journal", help="replay journal SQLite file (overrides broker.journal_path)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    config = load_or_exit(parser, args.config)
    overrides = {}
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.journal:
        overrides["journal_path"] = args.journal
    try:
        broker_cfg = dataclasses.replace(config.broker, **overrides)
        from bus import metrics
        from bus.broker import Broker

        log_config("bus.cli", dataclasses.replace(config, broker=broker_cfg))
        broker = Broker(config.bus, broker_cfg)
    except (ConfigError, JournalError) as error:
        parser.exit(2, f"hpcrl bus: {error}\n")
    metrics.serve_metrics(broker_cfg.metrics_port, broker_cfg.metrics_address)
    on_stop_signal(broker.stop)
    broker.run()
    return 0


def tail(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl tail",
        description="Print events from the bus as JSON lines (one event per line). Events lost for good (evicted "
        "from the broker's journal before tail could fetch them, e.g. --since older than the journal keeps) are "
        "reported on stderr as they are found, and tail carries on. Exit status: 0, or 3 when events were lost.",
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        help="topic prefix to follow (repeatable; default: every journaled event, no heartbeats)",
    )
    parser.add_argument("--since", type=int, help="first replay every journaled event after this bus_seq")
    parser.add_argument("--count", type=int, help="exit after printing this many events")
    parser.add_argument("--idle-exit-s", type=float, help="exit after this many seconds without an event")
    parser.add_argument("--name", default="tail", help="name this client gives the broker")
    args = parser.parse_args(argv)
    setup_logging(args.log_level if args.log_level != "INFO" else "WARNING")
    config = load_or_exit(parser, args.config)

    from bus.client import BusClient
    from bus.schema import to_json_dict

    stop = []
    on_stop_signal(lambda: stop.append(True))
    printed = lost = 0
    with BusClient(
        config.bus, config.client, name=args.name, subscribe=args.topic or [""], since=args.since, results=False
    ) as bus:
        last_event_at = time.monotonic()
        while not stop and (args.count is None or printed < args.count):
            events = bus.next_events(timeout_s=0.2)
            if not args.topic:  # heartbeats only when asked for (--topic heartbeat.): they would drown the rest
                events = [event for event in events if event.bus_seq]
            if events:
                last_event_at = time.monotonic()
            for loss in bus.take_losses():
                lost += loss.count
                print(loss_line(loss), file=sys.stderr, flush=True)
            for event in events:
                print(json.dumps({"topic": event.topic, **to_json_dict(event)}), flush=True)
                printed += 1
                if args.count is not None and printed >= args.count:
                    break
            if args.idle_exit_s is not None and time.monotonic() - last_event_at >= args.idle_exit_s:
                break
        for loss in bus.take_losses():
            lost += loss.count
            print(loss_line(loss), file=sys.stderr, flush=True)
    return TAIL_EVENTS_LOST if lost else 0


TAIL_EVENTS_LOST = 3
"""`hpcrl tail`'s exit status when it reported lost events (it prints everything it still could)."""


def loss_line(loss: EventsLost) -> str:
    """What `hpcrl tail` says on stderr about events it can never print."""
    where = f"of {loss.topic}" if loss.topic else "of the followed topics"
    how_many = f"{loss.count}" if loss.exact else f"up to {loss.count}"
    return (
        f"hpcrl tail: {how_many} event(s) lost {where}: bus_seq {loss.after_bus_seq + 1} to {loss.through_bus_seq} "
        "were evicted from the broker's journal before tail could fetch them (resume from a more recent --since, "
        "or raise broker.journal_max_events)"
    )


def submit(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl submit",
        description="Submit one C file to the bus, wait for a bencher's result and print it. Exit status: 0 when "
        "a result came back (any verdict), 1 when none came back in time, 2 for usage errors.",
    )
    parser.add_argument("file", help="C source defining the problem's entry point (e.g. dgemm)")
    parser.add_argument("--problem", default="dgemm", help="problem id (default: dgemm)")
    parser.add_argument("--size", type=int, default=256, help="problem size n (default: 256)")
    parser.add_argument("--run", default="adhoc", help="run name the candidate carries (default: adhoc)")
    parser.add_argument(
        "--timeout-s", type=float, help="seconds to wait for the result (default: client.result_timeout_s)"
    )
    parser.add_argument(
        "--candidate-id", help="idempotency key (default: a random one); re-use it to wait again for the same result"
    )
    parser.add_argument("--json", action="store_true", help="print the result message as one JSON object")
    parser.add_argument("--name", default="submit", help="name this client gives the broker")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level if args.log_level != "INFO" else "WARNING")
    config = load_or_exit(parser, args.config)
    source = read_candidate_or_exit(parser, Path(args.file))
    if not PROBLEM_NAME.match(args.problem):
        parser.error(f"--problem {args.problem!r}: lower-case letters, digits and _, starting with a letter")
    if not 0 < args.size <= MAX_PROBLEM_SIZE:
        parser.error(f"--size {args.size}: must be between 1 and {MAX_PROBLEM_SIZE}")
    for option, value in (("--run", args.run), ("--candidate-id", args.candidate_id)):
        if value is not None and not 0 < len(value) <= MAX_IDENTIFIER_CHARS:
            parser.error(f"{option}: must be 1 to {MAX_IDENTIFIER_CHARS} characters")
    timeout_s = config.client.result_timeout_s if args.timeout_s is None else args.timeout_s
    if timeout_s <= 0:
        parser.error("--timeout-s must be > 0")

    from bus.client import BusClient
    from bus.schema import to_json_dict

    stop: list[bool] = []
    on_stop_signal(lambda: stop.append(True))
    with BusClient(config.bus, config.client, name=args.name) as bus:
        candidate = bus.submit(
            problem=args.problem, size=args.size, source=source, run=args.run, candidate_id=args.candidate_id
        )
        cid = candidate.candidate_id
        print(
            f"hpcrl submit: candidate {cid} ({args.problem}, size {args.size}) submitted to "
            f"{config.bus.request_endpoint}; waiting up to {timeout_s:g} s",
            file=sys.stderr,
            flush=True,
        )
        result = None
        deadline = time.monotonic() + timeout_s
        while result is None and not stop and time.monotonic() < deadline:
            result = bus.wait_result(cid, timeout_s=min(SUBMIT_WAIT_SLICE_S, max(0.0, deadline - time.monotonic())))
        if result is None:
            pending = bus.pending.get(cid)
            print(
                no_result_explanation(bus, cid, args.problem, pending is not None and pending.acked, timeout_s, stop),
                file=sys.stderr,
            )
            return 1
    if args.json:
        print(json.dumps({"topic": result.topic, **to_json_dict(result)}))
    else:
        print(result_line(result))
    return 0


def read_candidate_or_exit(parser: argparse.ArgumentParser, path: Path) -> str:
    """The file's text, or exit 2 if it cannot be a candidate's source."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        parser.exit(2, f"{parser.prog}: cannot read {path}: {error}\n")
    if len(source) > MAX_SOURCE_BYTES:  # the schema counts characters (docs/protocol.md 4.2)
        parser.exit(2, f"{parser.prog}: {path} has {len(source)} characters; a candidate may have {MAX_SOURCE_BYTES}\n")
    return source


def no_result_explanation(
    bus: BusClient, cid: str, problem: str, acked: bool, timeout_s: float, interrupted: list[bool]
) -> str:
    """Why `hpcrl submit` has no result, and where the candidate is now."""
    waited = "interrupted" if interrupted else f"no result within {timeout_s:g} s"
    if not acked:
        return (
            f"hpcrl submit: {waited}: the broker at {bus.conn.cfg.request_endpoint} never acknowledged candidate "
            f"{cid}, so it is not queued (is `hpcrl bus` running there?)"
        )
    workers = bus.workers_alive
    why = "the broker reports no live worker (start `hpcrl bencher`)" if workers == 0 else f"{workers} worker(s) alive"
    return (
        f"hpcrl submit: {waited} ({why}). Candidate {cid} stays queued on the broker: its result will appear "
        f"in `hpcrl tail --topic result.{problem}` (candidate_id {cid}), or wait again with "
        f"`hpcrl submit FILE --problem {problem} --candidate-id {cid}`"
    )


def result_line(result: Result) -> str:
    """One readable line: verdict, speed (ok only), where it ran, the detail's most telling line."""
    parts = [result.verdict.value]
    if result.verdict is Verdict.OK:
        parts.append(f"{result.gflops_median:.2f} GFLOPS (median of {result.repetitions}, cv {result.cv:.1%})")
    parts.append(f"{result.problem} n={result.size}")
    if result.bencher_id:
        parts.append(f"on {result.bencher_id}" + (" (cached)" if result.cached else ""))
    line = "  ".join(parts)
    detail = first_useful_line(result.detail)
    return f"{line}  -- {detail}" if detail else line


def first_useful_line(detail: str) -> str:
    """The first line that names an error (gcc's output starts with "In function ..."), else the first
    non-blank line."""
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    return next((line for line in lines if "error:" in line.lower()), lines[0] if lines else "")


def keys(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl keys",
        description="Generate CURVE key pairs (NAME.key public, NAME.key_secret secret) and an allowed/ "
        "directory with the clients' public keys, for broker.allowed_keys_dir.",
    )
    parser.add_argument("--dir", required=True, help="directory to write the keys into")
    parser.add_argument(
        "names",
        nargs="*",
        default=["broker", "trainer", "bencher", "archive", "client"],
        help="key pair names (default: broker trainer bencher archive client)",
    )
    args = parser.parse_args(argv)
    from bus.sockets import BROKER_KEY_NAME, generate_keys

    try:
        written = generate_keys(Path(args.dir), args.names)
    except FileExistsError as error:
        parser.exit(1, f"hpcrl keys: {error}\n")
    for path in written:
        print(path)
    if BROKER_KEY_NAME in args.names:
        print(
            f'\nbroker:  [bus] secret_key_file = "{args.dir}/broker.key_secret"  '
            f'[broker] allowed_keys_dir = "{args.dir}/allowed"\n'
            f'clients: [bus] secret_key_file = "{args.dir}/NAME.key_secret"  '
            f'broker_public_key_file = "{args.dir}/broker.key"',
            file=sys.stderr,
        )
    return 0
