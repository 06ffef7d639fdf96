"""`hpcrl bench-file` and `hpcrl bencher`: the pipeline on one local file, and the bus daemon."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bencher.config import BencherConfig
from bus.cli import add_config_arguments, load_or_exit, read_candidate_or_exit
from bus.config import ConfigError, HpcrlConfig, read_toml, section
from bus.daemon import setup_logging
from bus.problems import ProblemError, get_problem, load_registry


def load_bencher_config(parser: argparse.ArgumentParser, path: str | None) -> tuple[HpcrlConfig, BencherConfig]:
    bus_config = load_or_exit(parser, path)
    try:
        return bus_config, section(BencherConfig, read_toml(path), "bencher")
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")


def bench_file(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl bench-file",
        description="Run the bencher's pipeline (checks, sandboxed compile and run, verification, timing) on one "
        "C file, without a bus. Exit status 0 for every verdict; 2 for usage errors.",
    )
    parser.add_argument("file", help="C source defining the problem's entry point (e.g. dgemm)")
    shipped = ", ".join(sorted(load_registry().problems))
    parser.add_argument("--problem", default="dgemm", help=f"problem id: {shipped}, or one of bencher.problem_dirs")
    parser.add_argument("--size", type=int, help="problem size n (default: the problem's default)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--no-cache", action="store_true", help="measure even if this source was measured before")
    parser.add_argument(
        "--no-baselines", action="store_true", help="skip the naive and vendor baselines (measured once per node)"
    )
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging("WARNING" if args.log_level == "INFO" else args.log_level)
    _, config = load_bencher_config(parser, args.config)
    try:
        problem = get_problem(args.problem, config.problem_dirs)
        if args.size is not None:
            problem.check_size(args.size)
    except ProblemError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    source = read_candidate_or_exit(parser, Path(args.file))  # the same limits as a candidate on the bus

    from bencher.baselines import Baselines
    from bencher.peak import PeakError
    from bencher.pipeline import Pipeline  # the pipeline detects the node: only when a file will run

    try:
        pipeline = Pipeline(config)
    except PeakError as error:
        parser.exit(1, f"{parser.prog}: {error}\n")
    baselines = Baselines(pipeline)
    try:
        evaluation = pipeline.evaluate(problem.id, args.size, source, use_cache=not args.no_cache)
        if not args.no_baselines:
            evaluation = baselines.attach(evaluation, problem.id, args.size, cancel=None)
    finally:
        baselines.close()
        pipeline.close()
    node = pipeline.node  # after a re-check, the re-probed peak
    report = {
        "verdict": evaluation.verdict.value,
        "gflops": evaluation.gflops_median,
        "metric": problem.metric,
        "rate": evaluation.rate_median,
        "problem": problem.id,
        "size": args.size or problem.default_size,
        **{k: v for k, v in evaluation.result_fields().items() if k != "verdict"},
        "peak_gflops": round(node.peak_gflops, 3),
        "isa": node.isa,
        "march": node.march,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"verdict: {evaluation.verdict.value}")
        if evaluation.rate_median:
            print(
                f"{problem.metric}:  {evaluation.rate_median:.2f} {problem.unit} median "
                f"(min {evaluation.rate_min:.2f}, max {evaluation.rate_max:.2f}, cv {evaluation.cv:.1%}, "
                f"{evaluation.repetitions} timed calls)"
            )
        if evaluation.naive_rate:
            vendor = f", vendor {evaluation.vendor_rate:.2f}" if evaluation.vendor_rate else ""
            print(f"baseline: naive {evaluation.naive_rate:.2f} {problem.unit}{vendor} on this node")
        print(f"detail:  {evaluation.detail}")
        print(f"node:    {evaluation.node_class}, {evaluation.threads} thread(s); cached: {evaluation.cached}")
        print(f"peak:    {node.peak_gflops:.1f} GFLOPS ({node.isa}, -march={node.march})")
    return 0


def run_bencher(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl bencher", description="Run the benchmark daemon: take candidates from the bus, return results."
    )
    add_config_arguments(parser)
    parser.add_argument("--name", help="worker name on the bus (overrides bencher.name)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (overrides bencher.metrics_port)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    bus_config, config = load_bencher_config(parser, args.config)

    from bencher.daemon import serve

    return serve(bus_config, config, name=args.name, metrics_port=args.metrics_port)
