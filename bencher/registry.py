"""The problem registry: one declarative TOML file per problem in bencher/problems/.

A problem says what a candidate must define (entry and signature), which trusted harness checks it,
the sizes it may be run at, how many floating-point operations a call performs (a formula in `n`),
the tolerance of the verification, the compiler and flags, and the description the trainer puts in
its prompts. Adding a problem means adding a TOML file and a harness C file, no Python.
"""

from __future__ import annotations

import ast
import operator
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

PROBLEMS_DIR = Path(__file__).parent / "problems"
HARNESS_DIR = Path(__file__).parent / "harness"
COMPILERS = ("gcc", "clang")


class ProblemError(ValueError):
    """A problem file is invalid, or a problem or size was asked for that does not exist."""


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
    sizes: tuple[int, ...]
    """Sizes `n` a candidate may be run at."""
    default_size: int
    flops: str
    """Floating-point operations of one call, as an arithmetic formula in `n`."""
    tolerance: float
    """Multiplier of the harness's error bound (1 = the bound documented in the harness)."""
    full_check_max_n: int
    """Largest n at which every output element is compared with the reference."""
    min_gflops: float
    """A call slower than this rate times out (bounds the cost of hopeless candidates)."""
    compiler: str
    flags: tuple[str, ...]
    reference: str
    """What the verification compares against."""
    description: str
    """Prompt text: the task as the policy reads it."""

    def flop_count(self, n: int) -> float:
        return _compile_formula(self.flops)(n)

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


@cache
def _compile_formula(formula: str) -> Callable[[int], float]:
    """Parse an arithmetic formula in `n` (+ - * / ** and numbers only: problem files are data, not code)."""
    try:
        tree = ast.parse(formula, mode="eval").body
    except SyntaxError as error:
        raise ProblemError(f"flops formula {formula!r} is not an expression: {error.msg}") from None

    def check(node: ast.AST) -> None:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            pass
        elif not (isinstance(node, ast.Name) and node.id == "n"):
            raise ProblemError(f"flops formula {formula!r} may use only n, numbers and + - * / **")

    check(tree)

    def evaluate(node: ast.AST, n: int) -> float:
        if isinstance(node, ast.BinOp):
            return float(_OPERATORS[type(node.op)](evaluate(node.left, n), evaluate(node.right, n)))
        if isinstance(node, ast.Constant):
            return float(node.value)  # type: ignore[arg-type]  # check() admitted int and float only
        return float(n)

    return lambda n: evaluate(tree, n)


_REQUIRED = {
    "id": str,
    "entry": str,
    "signature": str,
    "harness": str,
    "sizes": list,
    "default_size": int,
    "flops": str,
    "tolerance": float,
    "full_check_max_n": int,
    "min_gflops": float,
    "compiler": str,
    "flags": list,
    "reference": str,
    "description": str,
}


def load_problem(path: Path) -> Problem:
    """Read and validate one problem file; errors name the file and the fix."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ProblemError(f"{path}: not valid TOML: {error}") from None
    missing = sorted(set(_REQUIRED) - set(data))
    unknown = sorted(set(data) - set(_REQUIRED))
    if missing or unknown:
        raise ProblemError(f"{path}: missing keys {missing}, unknown keys {unknown}; the keys are {sorted(_REQUIRED)}")
    for key, kind in _REQUIRED.items():
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            data[key] = value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ProblemError(f"{path}: {key} must be of type {kind.__name__}, not {type(value).__name__}")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", data["id"]) or data["id"] != path.stem:
        raise ProblemError(f"{path}: id {data['id']!r} must be lower-case [a-z0-9_] and equal the file name")
    if not re.fullmatch(r"[A-Za-z_]\w*", data["entry"]) or data["entry"] not in data["signature"]:
        raise ProblemError(f"{path}: entry {data['entry']!r} must be a C identifier that the signature declares")
    sizes = data["sizes"]
    if not sizes or not all(isinstance(n, int) and n >= 1 for n in sizes):
        raise ProblemError(f"{path}: sizes must be a non-empty list of positive integers")
    if data["default_size"] not in sizes:
        raise ProblemError(f"{path}: default_size {data['default_size']} is not one of sizes {sizes}")
    if data["compiler"] not in COMPILERS:
        raise ProblemError(f"{path}: compiler must be one of {COMPILERS}")
    if not all(isinstance(flag, str) and flag.startswith("-") for flag in data["flags"]):
        raise ProblemError(f"{path}: flags must be a list of compiler options such as '-O3'")
    if data["tolerance"] <= 0 or data["min_gflops"] <= 0:
        raise ProblemError(f"{path}: tolerance and min_gflops must be > 0")
    harness = HARNESS_DIR / data["harness"]
    if not harness.is_file():
        raise ProblemError(f"{path}: harness {data['harness']!r} is not a file in {HARNESS_DIR}")
    problem = Problem(
        **{**data, "harness": harness, "sizes": tuple(sizes), "flags": tuple(data["flags"])},
    )
    for n in sizes:
        try:
            flops = problem.flop_count(n)
        except ProblemError as error:
            raise ProblemError(f"{path}: {error}") from None
        if not flops > 0:
            raise ProblemError(f"{path}: flops formula {problem.flops!r} gives {flops} at n={n}")
    return problem


@cache
def problems() -> Mapping[str, Problem]:
    """Every problem shipped in bencher/problems/, by id."""
    found = {p.id: p for p in (load_problem(path) for path in sorted(PROBLEMS_DIR.glob("*.toml")))}
    if not found:
        raise ProblemError(f"no problem files in {PROBLEMS_DIR}: the installation is incomplete")
    return found


def get_problem(name: str) -> Problem:
    try:
        return problems()[name]
    except KeyError:
        raise ProblemError(f"unknown problem {name!r}; known problems: {sorted(problems())}") from None
