"""Problem files (bus/problems.py): shipped problems load, site directories add problems and suites, and a
bad file fails with the file and the fix named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bencher.config import BencherConfig
from bus.config import ConfigError
from bus.problems import (
    ProblemError,
    get_problem,
    load_problem,
    load_registry,
    parse_task,
    problem_dirs_setting,
    shipped_problems_dir,
)

GOOD = """
id = "{id}"
entry = "kernel"
signature = "void kernel(int n, double *x);"
harness = "kernel.c"
naive = "kernel_naive.c"
sizes = [8, 16]
default_size = 8
metric = "gflops"
flops = "2 * n**3"
tolerance = 1
full_check_max_n = 16
min_rate = 0.1
compiler = "gcc"
flags = ["-O2"]
reference = "r"
description = "d"
"""


def write(directory: Path, text: str, name: str = "toy") -> Path:
    for file in ("kernel.c", "kernel_naive.c"):
        (directory / file).write_text("/* a harness */\n")
    path = directory / f"{name}.toml"
    path.write_text(text.replace("{id}", name))
    return path


def test_shipped_problems_include_dgemm_and_a_second_shape() -> None:
    registry = load_registry()
    assert {"dgemm", "jacobi2d"} <= set(registry.problems)
    dgemm = get_problem("dgemm")
    assert dgemm.entry == "dgemm" and dgemm.default_size in dgemm.sizes
    assert dgemm.flop_count(512) == 2 * 512**3 and dgemm.work(512) == dgemm.flop_count(512)
    assert dgemm.vendor is not None and dgemm.vendor_libraries == ("-lopenblas",)
    assert get_problem("jacobi2d").flop_count(10) == 4 * 8**2
    assert "void dgemm(int n, const double *A, const double *B, double *C);" in dgemm.description


def test_a_valid_problem_file_loads_with_its_files_beside_it(tmp_path: Path) -> None:
    problem = load_problem(write(tmp_path, GOOD))
    assert problem.sizes == (8, 16) and problem.tolerance == 1.0 and problem.flags == ("-O2",)
    assert problem.harness == tmp_path.resolve() / "kernel.c" and problem.vendor is None


def test_a_bandwidth_problem_rates_bytes_and_may_count_no_flops(tmp_path: Path) -> None:
    text = GOOD.replace('metric = "gflops"\nflops = "2 * n**3"', 'metric = "gbps"\nbytes = "8 * (n + 1) + 4 * 256"')
    problem = load_problem(write(tmp_path, text))
    assert problem.unit == "GB/s" and problem.flop_count(8) == 0.0 and problem.work(8) == 8 * 9 + 4 * 256


def test_formulas_may_use_log2_for_fft_counts(tmp_path: Path) -> None:
    problem = load_problem(write(tmp_path, GOOD.replace('"2 * n**3"', '"5 * n * log2(n)"')))
    assert problem.flop_count(16) == 5 * 16 * 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("sizes = [8, 16]", "sizes = []"), "sizes"),
        (("default_size = 8", "default_size = 9"), "default_size"),
        (('flops = "2 * n**3"', "flops = \"__import__('os')\""), "only n"),
        (('flops = "2 * n**3"', 'flops = "n -"'), "not an expression"),
        (('flops = "2 * n**3"', 'flops = "n - 8"'), "must be > 0"),
        (('flops = "2 * n**3"', ""), "needs a `flops` formula"),
        (('metric = "gflops"', 'metric = "gbps"'), "needs a `bytes` formula"),
        (('metric = "gflops"', 'metric = "fps"'), "metric"),
        (('compiler = "gcc"', 'compiler = "icc"'), "compiler"),
        (('harness = "kernel.c"', 'harness = "nope.c"'), "harness"),
        (('harness = "kernel.c"', 'harness = "../kernel.c"'), "beside the problem file"),
        (('naive = "kernel_naive.c"', ""), "missing keys ['naive']"),
        (('naive = "kernel_naive.c"', 'naive = "kernel_naive.c"\nvendor = "kernel.c"'), "go together"),
        (("tolerance = 1", "tolerance = 0"), "tolerance"),
        (("tolerance = 1", "tolerance = 1\ncolour = 3"), "unknown keys ['colour']"),
        (('entry = "kernel"', 'entry = "other"'), "signature declares"),
        (('flags = ["-O2"]', 'flags = ["O2"]'), "flags"),
        (("min_rate = 0.1", "min_gflops = 0.1"), "unknown keys ['min_gflops']"),
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
    with pytest.raises(ProblemError, match=r"has no size 100"):
        parse_task("dgemm@100", load_registry())
    assert parse_task("dgemm", load_registry()).size == get_problem("dgemm").default_size


def test_a_site_directory_adds_problems_and_suites_without_a_fork(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    (tmp_path / "suites.toml").write_text('[site]\nproblems = ["toy@16", "dgemm"]\n')
    registry = load_registry([tmp_path])
    assert registry.problem("toy").directory == tmp_path.resolve()
    assert [(t.problem, t.size) for t in registry.suite("site")] == [("toy", 16), ("dgemm", 512)]
    assert {"train", "heldout"} <= set(registry.suites)  # the shipped suites stay
    assert get_problem("toy", [str(tmp_path)]).sizes == (8, 16)


def test_a_broken_site_problem_stops_the_bencher_at_start_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace("min_rate = 0.1", "min_rate = -1"))
    with pytest.raises(ConfigError, match=r"toy\.toml: tolerance and min_rate must be > 0"):
        BencherConfig(problem_dirs=(str(tmp_path),))
    with pytest.raises(ConfigError, match=r"does not exist: fix or remove it in bencher.problem_dirs"):
        BencherConfig(problem_dirs=(str(tmp_path / "missing"),))


def test_a_site_problem_may_not_redefine_a_shipped_one(tmp_path: Path) -> None:
    write(tmp_path, GOOD, name="dgemm")
    with pytest.raises(ProblemError, match="already defined"):
        load_registry([tmp_path])


@pytest.mark.parametrize(
    ("suites", "message"),
    [
        ('[s]\nproblems = ["nope"]\n', "unknown problem 'nope'"),
        ('[s]\nproblems = ["dgemm@7"]\n', "dgemm has the sizes"),
        ("[s]\nproblems = []\n", "must hold"),
        ('[s]\nproblems = ["dgemm"]\nweight = 2\n', "must hold"),
    ],
)
def test_broken_suites_are_refused_with_the_file(tmp_path: Path, suites: str, message: str) -> None:
    (tmp_path / "suites.toml").write_text(suites)
    with pytest.raises(ProblemError, match=r"suites\.toml") as error:
        load_registry([tmp_path])
    assert message in str(error.value)


def test_other_processes_read_problem_dirs_from_the_shared_config_or_the_environment() -> None:
    assert problem_dirs_setting({"bencher": {"problem_dirs": ["/a"]}}, env={}) == ("/a",)
    assert problem_dirs_setting({}, env={"HPCRL_BENCHER__PROBLEM_DIRS": '["/b", "/c"]'}) == ("/b", "/c")
    with pytest.raises(ProblemError, match="list of directory paths"):
        problem_dirs_setting({"bencher": {"problem_dirs": "/a"}}, env={})


def test_every_shipped_problem_names_files_that_ship() -> None:
    for problem in load_registry().problems.values():
        assert problem.directory == shipped_problems_dir().resolve()
        assert problem.harness.is_file() and problem.naive.is_file()


def test_the_train_suite_rewards_no_size_where_a_loop_without_its_remainder_is_right() -> None:
    """Found by a red-team review: at a multiple of 4, 8 or 16 a vectorised loop without its remainder is
    correct, so training there rewards code that is wrong at other sizes."""
    assert all(task.size % 4 for task in load_registry().suite("train"))


def test_a_site_problem_is_measured_by_the_bencher_and_prompted_by_the_trainer(tmp_path: Path) -> None:
    """The README's way to add a problem: a directory of problem files named in `[bencher] problem_dirs` of
    the shared configuration file; `hpcrl bench-file` measures it, the trainer's prompts read it."""
    import subprocess

    from tests.conftest import HPCRL, REPO
    from trainer.config import load_trainer_config
    from trainer.prompts import load_problem_text

    site = tmp_path / "site"
    site.mkdir()
    shipped = shipped_problems_dir()
    for suffix in (".c", "_naive.c"):
        text = (shipped / f"transpose{suffix}").read_text().replace('"transpose"', '"flip"')
        (site / f"flip{suffix}").write_text(text.replace("transpose(", "flip("))
    toml = (shipped / "transpose.toml").read_text().replace('id = "transpose"', 'id = "flip"')
    toml = toml.replace('entry = "transpose"', 'entry = "flip"').replace("void transpose(", "void flip(")
    (site / "flip.toml").write_text(
        toml.replace('"transpose.c"', '"flip.c"').replace('"transpose_naive.c"', '"flip_naive.c"')
    )
    config = tmp_path / "hpcrl.toml"
    config.write_text(
        f'[bencher]\nproblem_dirs = ["{site}"]\ncache_dir = "{tmp_path / "cache"}"\n'
        '[trainer]\nproblem = "flip"\nsize = 127\n'
    )
    done = subprocess.run(
        [*HPCRL, "bench-file", str(site / "flip_naive.c"), "--problem", "flip", "--size", "127", "--json",
         "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["verdict"] == "ok" and report["metric"] == "gbps" and report["naive_rate"] > 0
    trainer = load_trainer_config(str(config), env={})
    assert trainer.tasks[0].problem == "flip"
    assert "void flip(int n" in load_problem_text("flip", trainer.problem_dirs).description
