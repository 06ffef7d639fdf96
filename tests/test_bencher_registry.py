"""The problem registry: shipped problems load, bad problem files fail with the fix named."""

from __future__ import annotations

from pathlib import Path

import pytest

from bencher.registry import ProblemError, get_problem, load_problem, problems

GOOD = """
id = "{id}"
entry = "kernel"
signature = "void kernel(int n, double *x);"
harness = "dgemm.c"
sizes = [8, 16]
default_size = 8
flops = "2 * n**3"
tolerance = 1
full_check_max_n = 16
min_gflops = 0.1
compiler = "gcc"
flags = ["-O2"]
reference = "r"
description = "d"
"""


def write(tmp_path: Path, text: str, name: str = "toy") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace("{id}", name))
    return path


def test_shipped_problems_include_dgemm_and_a_second_shape() -> None:
    registry = problems()
    assert {"dgemm", "jacobi2d"} <= set(registry)
    dgemm = get_problem("dgemm")
    assert dgemm.entry == "dgemm" and dgemm.default_size in dgemm.sizes
    assert dgemm.flop_count(512) == 2 * 512**3
    assert get_problem("jacobi2d").flop_count(10) == 4 * 8**2
    assert "void dgemm(int n, const double *A, const double *B, double *C);" in dgemm.description


def test_a_valid_problem_file_loads(tmp_path: Path) -> None:
    problem = load_problem(write(tmp_path, GOOD))
    assert problem.sizes == (8, 16) and problem.tolerance == 1.0 and problem.flags == ("-O2",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("sizes = [8, 16]", "sizes = []"), "sizes"),
        (("default_size = 8", "default_size = 9"), "default_size"),
        (('flops = "2 * n**3"', "flops = \"__import__('os')\""), "only n"),
        (('flops = "2 * n**3"', 'flops = "n -"'), "not an expression"),
        (('compiler = "gcc"', 'compiler = "icc"'), "compiler"),
        (('harness = "dgemm.c"', 'harness = "nope.c"'), "harness"),
        (("tolerance = 1", "tolerance = 0"), "tolerance"),
        (("tolerance = 1", "tolerance = 1\ncolour = 3"), "unknown keys ['colour']"),
        (('entry = "kernel"', 'entry = "other"'), "signature declares"),
        (('flags = ["-O2"]', 'flags = ["O2"]'), "flags"),
    ],
)
def test_invalid_problem_files_are_refused_with_the_reason(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(ProblemError, match=r"toy\.toml") as error:
        load_problem(write(tmp_path, GOOD.replace(*change)))
    assert message in str(error.value)


def test_the_id_must_match_the_file_name(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="equal the file name"):
        load_problem(write(tmp_path, GOOD.replace("{id}", "other")))


def test_unknown_problems_and_sizes_name_the_choices() -> None:
    with pytest.raises(ProblemError, match=r"known problems: .*dgemm"):
        get_problem("sgemm")
    with pytest.raises(ProblemError, match="choose one of"):
        get_problem("dgemm").check_size(100)
