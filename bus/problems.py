"""Problem files: the one reader of the problem format, shared by the bencher, the trainer's prompts and
`hpcrl eval`, like the message schema is.

A problem is data in a directory: `<id>.toml` (what a candidate must define, its sizes, how much work one
call does, how it is measured and described) beside its trusted harness in C (`harness`: fills the inputs,
calls the entry point, verifies; linked with bencher/harness/monitor.c), its naive reference
implementation (`naive`: the speedup baseline, measured on each node) and, where a vendor library has the
kernel, a vendor implementation (`vendor`, linked with `vendor_libraries`). The shipped problems live in
bencher/problems/ (found without importing the bencher: processes share data, not code); a site adds its
own with `[bencher] problem_dirs` in the shared configuration file, read by every process. A broken file
is refused at start with the file and the fix named. docs/problems.md has the format and a worked example.

Suites are data too: `suites.toml` in any problem directory names lists of problems and sizes.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import operator
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Final

from bus.config import ENV_PREFIX

COMPILERS: Final = ("gcc", "clang")
METRICS: Final = {"gflops": "GFLOPS", "gbps": "GB/s"}
"""A problem's figure of merit, by name, with its unit: the rate of floating-point operations (compute-bound
kernels) or of bytes moved (memory-bound kernels: the `bytes` formula counts each array read or written once,
the traffic an ideal cache would see)."""
PRECISIONS: Final = {"double": 1.0, "single": 2.0}
"""Floating-point precision of a problem's flops -> its peak as a multiple of the double-precision peak."""
SUITES_FILE: Final = "suites.toml"
PROBLEM_DIRS_ENV: Final = f"{ENV_PREFIX}BENCHER__PROBLEM_DIRS"
"""Environment override of `[bencher] problem_dirs`, a TOML list as for every setting: '["/site/problems"]'."""


class ProblemError(ValueError):
    """A problem or suite file is invalid, or a problem, size or suite was asked for that does not exist."""


@dataclass(frozen=True)
class Problem:
    id: str
    """Name used on the bus (`Candidate.problem`) and in topics (`result.<id>`)."""
    entry: str
    """The one global symbol a candidate must define."""
    signature: str
    """The C declaration of the entry point, as the prompt states it."""
    harness: Path
    """Trusted C file that fills inputs, calls the entry and verifies (linked with monitor.c)."""
    naive: Path
    """A straightforward implementation of the entry point: the node's speedup baseline."""
    vendor: Path | None
    """An implementation through a vendor library (OpenBLAS, FFTW), or None where none exists."""
    vendor_libraries: tuple[str, ...]
    """Linker options of the vendor implementation (`-lopenblas`)."""
    sizes: tuple[int, ...]
    """Sizes `n` a candidate may be run at."""
    default_size: int
    metric: str
    """`gflops` or `gbps` (METRICS): what the reward and `hpcrl eval` rate a correct program by."""
    flops: str
    """Floating-point operations of one call, as an arithmetic formula in `n`; "" when the kernel does none
    worth counting (a sort, a histogram)."""
    bytes: str
    """Bytes one call must read and write at least, as a formula in `n`; "" for a `gflops` problem without one."""
    precision: str
    """`double` or `single`: the floating-point type of the flops, which sets the node's peak they are held to."""
    tolerance: float
    """Multiplier of the harness's error bound (1 = the bound documented in the harness)."""
    full_check_max_n: int
    """Largest n at which every output element is compared with the reference."""
    min_rate: float
    """A call slower than this rate (in the metric's unit) times out: bounds the cost of hopeless candidates."""
    compiler: str
    flags: tuple[str, ...]
    reference: str
    """What the verification compares against."""
    description: str
    """Prompt text: the task as the policy reads it."""
    directory: Path = field(compare=False)
    """The directory the problem file was read from."""

    @property
    def unit(self) -> str:
        return METRICS[self.metric]

    def flop_count(self, n: int) -> float:
        """Floating-point operations of one call at size n (0 when the problem counts none)."""
        return _compile_formula(self.flops)(n) if self.flops else 0.0

    def byte_count(self, n: int) -> float:
        return _compile_formula(self.bytes)(n) if self.bytes else 0.0

    @property
    def peak_scale(self) -> float:
        """The node's peak for this problem's flops, as a multiple of its double-precision peak: a vector unit
        does twice as many single-precision operations per instruction (x86 SSE to AVX-512, Arm NEON/SVE)."""
        return PRECISIONS[self.precision]

    def work(self, n: int) -> float:
        """What one call does in the metric's numerator (flops or bytes): rate = work / seconds * 1e-9."""
        return self.flop_count(n) if self.metric == "gflops" else self.byte_count(n)

    def built_for(self, march: str) -> Problem:
        """This problem with its `-march=` flag set to bencher.march (problem files say `native`)."""
        flags = tuple(f"-march={march}" if flag.startswith("-march=") else flag for flag in self.flags)
        return replace(self, flags=flags)

    def check_size(self, n: int) -> None:
        if n not in self.sizes:
            raise ProblemError(f"problem {self.id} has no size {n}; choose one of {list(self.sizes)}")


_OPERATORS: Mapping[type[ast.AST], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_FUNCTIONS: Mapping[str, Callable[[float], float]] = {"log2": math.log2}
"""Functions a formula may call: `log2` for FFT-like counts (n log2 n)."""


@cache
def _compile_formula(formula: str) -> Callable[[int], float]:
    """Parse an arithmetic formula in `n` (+ - * / **, numbers and log2 only: problem files are data, not code)."""
    try:
        tree = ast.parse(formula, mode="eval").body
    except SyntaxError as error:
        raise ProblemError(f"formula {formula!r} is not an expression: {error.msg}") from None

    def check(node: ast.AST) -> None:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
            if len(node.args) != 1 or node.keywords:
                raise ProblemError(f"formula {formula!r}: {node.func.id} takes one argument")
            check(node.args[0])
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            pass
        elif not (isinstance(node, ast.Name) and node.id == "n"):
            raise ProblemError(f"formula {formula!r} may use only n, numbers, + - * / ** and log2()")

    check(tree)

    def evaluate(node: ast.AST, n: int) -> float:
        if isinstance(node, ast.BinOp):
            return float(_OPERATORS[type(node.op)](evaluate(node.left, n), evaluate(node.right, n)))
        if isinstance(node, ast.Call):
            return float(_FUNCTIONS[node.func.id](evaluate(node.args[0], n)))  # type: ignore[attr-defined]
        if isinstance(node, ast.Constant):
            return float(node.value)  # type: ignore[arg-type]  # check() admitted int and float only
        return float(n)

    return lambda n: evaluate(tree, n)


_REQUIRED: Mapping[str, type] = {
    "id": str,
    "entry": str,
    "signature": str,
    "harness": str,
    "naive": str,
    "sizes": list,
    "default_size": int,
    "metric": str,
    "tolerance": float,
    "full_check_max_n": int,
    "min_rate": float,
    "compiler": str,
    "flags": list,
    "reference": str,
    "description": str,
}
_OPTIONAL: Mapping[str, tuple[type, object]] = {
    "flops": (str, ""),
    "bytes": (str, ""),
    "vendor": (str, ""),
    "vendor_libraries": (list, []),
    "precision": (str, "double"),
}


def load_problem(path: Path) -> Problem:
    """Read and validate one problem file; errors name the file and the fix."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ProblemError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ProblemError(f"{path}: cannot be read: {error.strerror}") from None
    missing = sorted(set(_REQUIRED) - set(data))
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        raise ProblemError(
            f"{path}: missing keys {missing}, unknown keys {unknown}; the keys are {sorted(_REQUIRED)}, "
            f"optionally {sorted(_OPTIONAL)} (docs/problems.md)"
        )
    for key, (_, default) in _OPTIONAL.items():
        data.setdefault(key, default)
    for key, kind in {**_REQUIRED, **{k: kind for k, (kind, _) in _OPTIONAL.items()}}.items():
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            data[key] = value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ProblemError(f"{path}: {key} must be of type {kind.__name__}, not {type(value).__name__}")
    _check_fields(path, data)
    directory = path.parent.resolve()
    files = {
        key: _sibling(path, key, data[key]) for key in ("harness", "naive") + (("vendor",) if data["vendor"] else ())
    }
    problem = Problem(
        **{
            **data,
            **files,
            "vendor": files.get("vendor"),
            "vendor_libraries": tuple(data["vendor_libraries"]),
            "sizes": tuple(data["sizes"]),
            "flags": tuple(data["flags"]),
            "directory": directory,
        },
    )
    for n in problem.sizes:
        for name, formula, count in (
            ("flops", problem.flops, problem.flop_count),
            ("bytes", problem.bytes, problem.byte_count),
        ):
            if not formula:
                continue
            try:
                value = count(n)
            except (ProblemError, ArithmeticError) as error:
                raise ProblemError(f"{path}: {name}: {error}") from None
            if not value > 0:
                raise ProblemError(f"{path}: {name} formula {formula!r} gives {value} at n={n}; it must be > 0")
    return problem


def _check_fields(path: Path, data: dict[str, Any]) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", data["id"]) or data["id"] != path.stem:
        raise ProblemError(f"{path}: id {data['id']!r} must be lower-case [a-z0-9_] and equal the file name")
    if not re.fullmatch(r"[A-Za-z_]\w*", data["entry"]) or data["entry"] not in data["signature"]:
        raise ProblemError(f"{path}: entry {data['entry']!r} must be a C identifier that the signature declares")
    sizes = data["sizes"]
    if not sizes or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise ProblemError(f"{path}: sizes must be a non-empty list of positive integers")
    if data["default_size"] not in sizes:
        raise ProblemError(f"{path}: default_size {data['default_size']} is not one of sizes {sizes}")
    if data["metric"] not in METRICS:
        raise ProblemError(f"{path}: metric {data['metric']!r} must be one of {sorted(METRICS)}")
    needed = "flops" if data["metric"] == "gflops" else "bytes"
    if not data[needed]:
        raise ProblemError(f"{path}: metric {data['metric']!r} needs a `{needed}` formula in n")
    if data["precision"] not in PRECISIONS:
        raise ProblemError(f"{path}: precision {data['precision']!r} must be one of {sorted(PRECISIONS)}")
    if data["compiler"] not in COMPILERS:
        raise ProblemError(f"{path}: compiler must be one of {COMPILERS}")
    for key in ("flags", "vendor_libraries"):
        if not all(isinstance(flag, str) and flag.startswith("-") for flag in data[key]):
            raise ProblemError(f"{path}: {key} must be a list of compiler options such as '-O3' or '-lopenblas'")
    if bool(data["vendor"]) != bool(data["vendor_libraries"]):
        raise ProblemError(f"{path}: vendor and vendor_libraries go together (the vendor file links the libraries)")
    if data["tolerance"] <= 0 or data["min_rate"] <= 0:
        raise ProblemError(f"{path}: tolerance and min_rate must be > 0")


def _sibling(path: Path, key: str, name: str) -> Path:
    """A file the problem names, in the problem file's own directory (so a site's directory is self-contained)."""
    if "/" in name or not name.endswith(".c"):
        raise ProblemError(f"{path}: {key} {name!r} must be the name of a .c file beside the problem file")
    file = path.parent.resolve() / name
    if not file.is_file():
        raise ProblemError(f"{path}: {key} {name!r} is not a file in {path.parent}")
    return file


def shipped_problems_dir() -> Path:
    """bencher/problems/, installed with the bencher package (found without importing it)."""
    spec = importlib.util.find_spec("bencher")
    if spec is None or not spec.submodule_search_locations:
        raise ProblemError(
            "the problem registry (bencher/problems/) is not installed: install hpcrl with `./quickstart setup` "
            "or `pip install -e .`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "problems"


def problem_dirs_setting(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """`[bencher] problem_dirs` of a parsed configuration file (or its environment override), for the processes
    that read no other bencher setting (the trainer, `hpcrl eval`)."""
    environ = os.environ if env is None else env
    if PROBLEM_DIRS_ENV in environ:
        try:
            dirs = tomllib.loads(f"value = {environ[PROBLEM_DIRS_ENV]}")["value"]
        except tomllib.TOMLDecodeError:
            dirs = None
    else:
        dirs = config.get("bencher", {}).get("problem_dirs", [])
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise ProblemError('bencher.problem_dirs must be a list of directory paths, e.g. ["/site/problems"]')
    return tuple(dirs)


@dataclass(frozen=True)
class Registry:
    """Every problem and suite: the shipped ones, then those of each directory of `[bencher] problem_dirs`."""

    problems: Mapping[str, Problem]
    suites: Mapping[str, tuple[SuiteTask, ...]]

    def problem(self, name: str) -> Problem:
        try:
            return self.problems[name]
        except KeyError:
            raise ProblemError(f"unknown problem {name!r}; known problems: {sorted(self.problems)}") from None

    def suite(self, name: str) -> tuple[SuiteTask, ...]:
        try:
            return self.suites[name]
        except KeyError:
            raise ProblemError(f"unknown suite {name!r}; known suites: {sorted(self.suites)}") from None


@dataclass(frozen=True)
class SuiteTask:
    """One entry of a suite: a problem at one size."""

    problem: str
    size: int


def load_registry(extra_dirs: Sequence[str | Path] = ()) -> Registry:
    """Read the shipped problems and those of `extra_dirs`; a problem id defined twice, a missing directory or
    a broken file is refused with the file and the fix named."""
    return _load_registry(tuple(str(Path(d).expanduser()) for d in extra_dirs))


@cache
def _load_registry(extra_dirs: tuple[str, ...]) -> Registry:
    problems: dict[str, Problem] = {}
    suite_files: list[Path] = []
    for directory in (shipped_problems_dir(), *map(Path, extra_dirs)):
        if not directory.is_dir():
            raise ProblemError(
                f"problem directory {directory} does not exist: fix or remove it in bencher.problem_dirs"
            )
        for path in sorted(directory.glob("*.toml")):
            if path.name == SUITES_FILE:
                suite_files.append(path)
                continue
            problem = load_problem(path)
            if problem.id in problems:
                raise ProblemError(
                    f"{path}: problem {problem.id!r} is already defined in {problems[problem.id].directory}; "
                    "rename one of them"
                )
            problems[problem.id] = problem
    if not problems:
        raise ProblemError(f"no problem files in {shipped_problems_dir()}: the installation is incomplete")
    suites: dict[str, tuple[SuiteTask, ...]] = {}
    for path in suite_files:
        for name, tasks in _load_suites(path, problems).items():
            if name in suites:
                raise ProblemError(f"{path}: suite {name!r} is already defined in another {SUITES_FILE}; rename it")
            suites[name] = tasks
    return Registry(problems, suites)


def _load_suites(path: Path, problems: Mapping[str, Problem]) -> dict[str, tuple[SuiteTask, ...]]:
    """`[suite_name]` tables of `problems = ["dgemm@512", "dgemv"]` (no size: the problem's default size)."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ProblemError(f"{path}: not valid TOML: {error}") from None
    suites: dict[str, tuple[SuiteTask, ...]] = {}
    for name, table in data.items():
        entries = table.get("problems") if isinstance(table, dict) else None
        if not isinstance(entries, list) or not entries or set(table) - {"problems", "description"}:
            raise ProblemError(
                f'{path}: [{name}] must hold `problems = ["id@size", ...]` (and optionally a description)'
            )
        suites[name] = tuple(_suite_task(path, name, entry, problems) for entry in entries)
    return suites


def _suite_task(path: Path, suite: str, entry: object, problems: Mapping[str, Problem]) -> SuiteTask:
    if not isinstance(entry, str):
        raise ProblemError(f'{path}: [{suite}] entries are strings such as "dgemm@512", not {entry!r}')
    name, _, size_text = entry.partition("@")
    if name not in problems:
        raise ProblemError(f"{path}: [{suite}] names unknown problem {name!r}; known problems: {sorted(problems)}")
    problem = problems[name]
    if not size_text:
        return SuiteTask(name, problem.default_size)
    if not size_text.isdigit() or int(size_text) not in problem.sizes:
        raise ProblemError(f"{path}: [{suite}] {entry!r}: {name} has the sizes {list(problem.sizes)}")
    return SuiteTask(name, int(size_text))


def parse_task(text: str, registry: Registry) -> SuiteTask:
    """`dgemm@512` or `dgemm` (its default size), checked against the registry."""
    name, _, size_text = text.partition("@")
    problem = registry.problem(name)
    size = int(size_text) if size_text.isdigit() else problem.default_size
    if size_text and not size_text.isdigit():
        raise ProblemError(f"{text!r}: the size after @ must be a number such as dgemm@512")
    problem.check_size(size)
    return SuiteTask(name, size)


def get_problem(name: str, problem_dirs: Sequence[str | Path] = ()) -> Problem:
    """The problem called `name`, among the shipped ones and those of `problem_dirs`."""
    return load_registry(problem_dirs).problem(name)
