"""`hpcrl archive`, `hpcrl elites`, `hpcrl stages`: the archive daemon and its read-only views.

The views open the SQLite store read-only, so they work while the daemon writes (WAL readers).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path

from archive.config import ArchiveConfig
from archive.qd import Grid
from archive.store import ArchiveStore, StoreError
from bus.cli import add_config_arguments, load_or_exit
from bus.config import ConfigError, HpcrlConfig, read_toml, section
from bus.daemon import setup_logging

ARCHIVE_COMMANDS = ("export", "report", "backup")


def load_archive_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[HpcrlConfig, ArchiveConfig]:
    hpcrl = load_or_exit(parser, args.config)
    try:
        config = section(ArchiveConfig, read_toml(args.config), "archive")
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    if getattr(args, "db", None):
        config = ArchiveConfig(**{**asdict(config), "db_path": args.db})
    return hpcrl, config


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_arguments(parser)
    parser.add_argument("--db", help="archive SQLite file (overrides archive.db_path)")
    return parser


def _open(parser: argparse.ArgumentParser, config: ArchiveConfig) -> ArchiveStore:
    try:
        return ArchiveStore(config.db, readonly=True)
    except StoreError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")


def run_archive(argv: list[str]) -> int:
    if argv and argv[0] in ARCHIVE_COMMANDS:
        command = {"export": export, "report": report, "backup": backup}[argv[0]]
        return command(argv[1:])
    parser = _parser(
        "hpcrl archive",
        "Run the SQD archive daemon: store every result once, keep elites per cell, move problems through "
        "their stages. Also: `hpcrl archive export`, `report` and `backup` (see their --help).",
    )
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (overrides archive.metrics_port)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    hpcrl, config = load_archive_config(parser, args)
    if args.metrics_port is not None:
        config = ArchiveConfig(**{**asdict(config), "metrics_port": args.metrics_port})

    from archive.daemon import serve

    return serve(hpcrl, config)


def elites(argv: list[str]) -> int:
    parser = _parser("hpcrl elites", "Print the archive's elites: the best solution of every cell.")
    parser.add_argument("--problem", help="only this problem")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--source", action="store_true", help="include each elite's source")
    args = parser.parse_args(argv)
    _, config = load_archive_config(parser, args)
    store = _open(parser, config)
    rows = store.elites(args.problem)
    for elite in rows:
        if args.json:
            row = asdict(elite)
            if args.source:
                record = store.record(elite.candidate_id)
                row["source"] = record.result.source if record else ""
            print(json.dumps(row))
        else:
            print(f"{elite.objective:10.2f} GFLOPS  {elite.cell:<60} {elite.candidate_id}  (stage {elite.stage})")
    if not rows and not args.json:
        print("no elites yet", file=sys.stderr)
    store.close()
    return 0


def stages(argv: list[str]) -> int:
    parser = _parser("hpcrl stages", "Print each problem's current stage and its stage history.")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    _, config = load_archive_config(parser, args)
    store = _open(parser, config)
    counts = store.stage_counts()
    current: dict[str, int] = {}
    for row in store.stage_changes():
        current[row.problem] = row.to_stage
        if args.json:
            print(json.dumps({"event": "stage_change", **asdict(row)}))
        else:
            techniques = ", ".join(row.techniques)
            print(f"{row.problem}: stage {row.from_stage} -> {row.to_stage}  ({row.reason})  [{techniques}]")
    grid = Grid(store.elites())
    permitted = {row.problem: frozenset(row.techniques) for row in store.stage_changes()}
    for problem, stage in sorted(current.items()):
        results = counts.get((problem, stage), 0)
        overall, in_stage = grid.stats(problem), grid.stats(problem, permitted[problem])
        if args.json:
            print(
                json.dumps(
                    {
                        "event": "current",
                        "problem": problem,
                        "stage": stage,
                        "results_in_stage": results,
                        "stats": overall.as_dict(),
                        "stage_stats": in_stage.as_dict(),
                    }
                )
            )
        else:
            print(
                f"{problem}: now in stage {stage} with {results} results; elites {overall.num_elites}, "
                f"best {overall.obj_max:.2f} GFLOPS, QD score {overall.qd_score:.1f}, "
                f"stage coverage {in_stage.coverage:.2f}"
            )
    store.close()
    return 0


def export(argv: list[str]) -> int:
    parser = _parser("hpcrl archive export", "Write every stored result (source included) as JSON lines or CSV.")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument("--problem", help="only this problem")
    parser.add_argument("--out", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    _, config = load_archive_config(parser, args)
    store = _open(parser, config)
    if args.out:
        with Path(args.out).open("w", newline="") as out:
            count = store.export(out, args.format, args.problem)
        print(f"{count} results written to {args.out}", file=sys.stderr)
    else:
        store.export(sys.stdout, args.format, args.problem)
    store.close()
    return 0


def report(argv: list[str]) -> int:
    parser = _parser("hpcrl archive report", "Plot a run as PNG files: speed over time, cells, verdicts.")
    parser.add_argument("run", help="run id to plot (the `run` of its candidates), or `all`")
    parser.add_argument("--out", default=".", help="directory for the PNG files (default: here)")
    args = parser.parse_args(argv)
    _, config = load_archive_config(parser, args)
    store = _open(parser, config)

    from archive.report import write_report

    paths = write_report(store, args.run, Path(args.out))
    store.close()
    for path in paths:
        print(path)
    return 0 if paths else 1


def backup(argv: list[str]) -> int:
    parser = _parser(
        "hpcrl archive backup",
        "Copy the archive's SQLite store consistently while the daemon runs (SQLite online backup).",
    )
    parser.add_argument("out", help="file to write the copy to (replaced atomically)")
    args = parser.parse_args(argv)
    _, config = load_archive_config(parser, args)
    store = _open(parser, config)
    out = Path(args.out)
    if out.resolve() == config.db.resolve():
        parser.exit(2, f"{parser.prog}: {out} is the archive itself; name another file\n")
    try:
        store.backup(out)
    except (OSError, sqlite3.Error) as error:
        parser.exit(1, f"{parser.prog}: cannot write {out}: {error}\n")
    finally:
        store.close()
    print(f"{config.db} copied to {out}", file=sys.stderr)
    return 0
