"""`hpcrl perf BENCHMARK`: measure one part of the system and print its figures as JSON.

Each benchmark lives in its own module and is imported only when it runs, like the subcommands of
`hpcrl`. What every figure means, and the latest numbers, are in docs/performance.md.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, function, one-line help). Each function takes argv and returns an exit code.
BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "bus": ("ops.perf_bus", "main", "broker throughput, latency, 500-worker fan-out and CURVE cost vs raw pyzmq"),
}


def usage() -> str:
    lines = ["usage: hpcrl perf BENCHMARK [--json] [--quick] [options]   (hpcrl perf BENCHMARK --help)", ""]
    lines += [f"  {name:<10} {help_text}" for name, (_, _, help_text) in BENCHMARKS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] not in BENCHMARKS:
        print(f"hpcrl perf: unknown benchmark {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = BENCHMARKS[argv[0]]
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(argv[1:]))
