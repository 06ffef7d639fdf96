"""`hpcrl eval` end to end: the tiny model samples for two problems, a real broker and bencher measure the
candidates, and eval.json, the table and the plots come out with figures that follow from samples.jsonl;
`--compare` of two runs prints both with their differences; bad requests are refused with the fix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import HPCRL, REPO, BusSite, Processes
from tests.test_bencher_daemon import start_bencher
from trainer.evaluation.stats import pass_at_k

EVAL_SETTINGS = {"HPCRL_GRPO__MAX_COMPLETION_TOKENS": "200", "HPCRL_TRAINER__THREADS": "1"}


def run_eval(processes: Processes, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**processes.site.env, **EVAL_SETTINGS}
    return subprocess.run([*HPCRL, "eval", *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)


def test_an_eval_measures_each_task_through_the_bus_and_its_figures_follow_from_the_samples(
    site: BusSite, processes: Processes, tiny_model: Path
) -> None:
    processes.broker()
    start_bencher(processes, "b1", result_cache="true")
    out = site.workdir / "eval-a"
    done = run_eval(processes, "--model", str(tiny_model), "--problems", "dgemm@99,jacobi2d@255", "--k", "2",
                    "--samples", "3", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "eval.json").read_text())
    assert report["k"] == 2 and set(report["problems"]) == {"dgemm", "jacobi2d"}
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and {(s["problem"], s["size"]) for s in samples} == {("dgemm", 99), ("jacobi2d", 255)}
    for problem, figures in report["problems"].items():
        mine = [s for s in samples if s["problem"] == problem]
        correct = sum(s["verdict"] == "ok" for s in mine)
        assert figures["correct"] == correct
        assert figures["pass_at_k"] == pytest.approx(pass_at_k(3, correct, 2))
        assert figures["by_size"][0]["best_speedup"] is None or figures["by_size"][0]["best_speedup"] > 0
    assert report["overall"]["pass_at_k"] > 0  # the tiny model writes correct programs most of the time
    assert report["cost"]["samples"] == 6 and report["cost"]["per_sample_s"] > 0
    assert "| dgemm" in (out / "eval.md").read_text()
    assert all((out / name).read_bytes()[:4] == b"\x89PNG" for name in ("eval-rates.png", "eval-speedup.png"))
    # A second evaluation of the same model, on one task: --compare shows both, and the task only the first had.
    again = site.workdir / "eval-b"
    assert run_eval(processes, "--model", str(tiny_model), "--problems", "dgemm@99", "--k", "1",
                    "--out", str(again)).returncode == 0  # fmt: skip
    compared = run_eval(processes, "--compare", str(out / "eval.json"), str(again / "eval.json"))
    assert compared.returncode == 0 and "dgemm" in compared.stdout and "jacobi2d" in compared.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--problems", "sgemm"), "unknown problem 'sgemm'"),
        (("--suite", "nope"), "unknown suite 'nope'"),
        (("--problems", "dgemm", "--k", "3", "--samples", "2"), "--samples >= k"),
        ((), "choose what to evaluate"),
    ],
)
def test_a_bad_request_is_refused_with_the_fix(
    site: BusSite, processes: Processes, args: tuple[str, ...], message: str
) -> None:
    done = run_eval(processes, *args)
    assert done.returncode == 2 and message in done.stderr


def test_compare_refuses_a_file_that_is_not_an_evaluation(site: BusSite, processes: Processes) -> None:
    other = site.workdir / "other.json"
    other.write_text('{"hello": 1}')
    done = run_eval(processes, "--compare", str(other), str(other))
    assert done.returncode == 2 and "other.json" in done.stderr
