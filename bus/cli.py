"""Command-line entry points of the bus: `hpcrl bus`, `hpcrl tail`, `hpcrl keys`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from bus.config import ConfigError, HpcrlConfig, load_config
from bus.daemon import log_config, on_stop_signal, setup_logging
from bus.journal import JournalError


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
        prog="hpcrl tail", description="Print events from the bus as JSON lines (one event per line)."
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
    printed = 0
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
            for event in events:
                print(json.dumps({"topic": event.topic, **to_json_dict(event)}), flush=True)
                printed += 1
                if args.count is not None and printed >= args.count:
                    break
            if args.idle_exit_s is not None and time.monotonic() - last_event_at >= args.idle_exit_s:
                break
    return 0


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
