"""The `hpcrl` command: one entry point; each subcommand imports its package only when it runs,
so a bencher node never imports the trainer's ML stack."""

from __future__ import annotations

import importlib
import sys

# name -> (module, function, one-line help). Each function takes argv and returns an exit code.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "bus": ("bus.cli", "run_broker", "run the message broker daemon"),
    "tail": ("bus.cli", "tail", "print the event stream as JSON lines"),
    "keys": ("bus.cli", "keys", "generate CURVE key pairs for an encrypted, authenticated bus"),
    "test-worker": ("bus.test_worker", "main", "a stand-in worker that runs nothing (until the bencher exists)"),
    "perf": ("ops.perf", "main", "measure performance figures and print them as JSON"),
    "demo": ("ops.demo", "main", "run the whole system locally on embedded defaults"),
}


def usage() -> str:
    lines = ["usage: hpcrl SUBCOMMAND [options]   (hpcrl SUBCOMMAND --help for its options)", ""]
    lines += [f"  {name:<12} {help_text}" for name, (_, _, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] not in SUBCOMMANDS:
        print(f"hpcrl: unknown subcommand {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = SUBCOMMANDS[args[0]]
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
