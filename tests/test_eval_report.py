"""`hpcrl eval`'s outputs: eval.json round-trips, the table shows the figures, the PNGs are drawn, and
`--compare` sets two runs side by side or refuses what is not an eval.json."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from trainer.evaluation.report import (
    EVAL_FILE,
    RATES_PLOT,
    SPEEDUP_PLOT,
    TABLE_FILE,
    EvalFileError,
    compare,
    compare_files,
    eval_object,
    markdown,
    read_eval,
    write_eval,
    write_report,
)
from trainer.evaluation.stats import FEW_SAMPLES, Sample, figures_by_problem

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CREATED = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def sample(problem: str, size: int, verdict: str, rate: float = 0.0, program: str = "", **kw: Any) -> Sample:
    return Sample(problem, size, verdict, rate, naive_rate=5.0, program=program, **kw)


def run(dgemm_ok: int, k: int = 2, stencil: bool = True, model: str = "models/base") -> dict[str, Any]:
    """dgemm at one size: `dgemm_ok` correct samples of 5 at 4x naive (so pass@2 and fast_2@2 follow from
    it); stencil at two sizes: one solved at 2.5x with a vendor baseline, one whose samples were all lost."""
    samples = [sample("dgemm", 256, "ok", 20.0, f"d{i}", techniques=("openmp",)) for i in range(dgemm_ok)]
    samples += [sample("dgemm", 256, "wrong_answer", program=f"w{i}") for i in range(5 - dgemm_ok)]
    if stencil:
        samples += [
            sample("stencil", 64, "ok", 12.5, "s1", vendor_rate=10.0, techniques=("simd_intrinsics",)),
            sample("stencil", 64, "ok", 12.5, "s1", vendor_rate=10.0, techniques=("simd_intrinsics",), cached=True),
            sample("stencil", 64, "compile_error", program="s2", vendor_rate=10.0),
            sample("stencil", 128, "lost"),
            sample("stencil", 128, "lost"),
        ]
    return eval_object(model, None, "smoke", k, figures_by_problem(samples, k), created=CREATED)


def test_eval_json_holds_the_documented_keys() -> None:
    obj = run(dgemm_ok=2)
    assert set(obj) == {"format", "format_version", "created", "model", "adapter", "suite", "k", "problems", "overall"}
    assert obj["created"] == "2025-01-02T03:04:05+00:00"
    assert set(obj["problems"]) == {"dgemm", "stencil"}
    dgemm = obj["problems"]["dgemm"]
    assert dgemm["pass_at_k"] == pytest.approx(0.7)  # n=5, c=2, k=2
    assert dgemm["fast_2_at_k"] == pytest.approx(0.7)
    assert dgemm["geomean_speedup"] == pytest.approx(4.0)
    assert dgemm["tasks"] == 1
    assert dgemm["by_size"][0]["size"] == 256 and "problem" not in dgemm["by_size"][0]
    overall = obj["overall"]
    assert {"pass_at_k", "fast_1_at_k", "fast_2_at_k", "geomean_speedup", "solved_share"} <= set(overall)
    assert overall["geomean_speedup"] == pytest.approx((4.0 * 2.5) ** 0.5)
    assert overall["pass_at_k"] == pytest.approx((0.7 + 1.0) / 2)  # the lost size has no estimate
    assert overall["cached"] == 1 and overall["dropped"] == 2


def test_eval_json_round_trips_and_leaves_no_partial_file(tmp_path: Path) -> None:
    obj = run(dgemm_ok=2)
    path = write_eval(obj, tmp_path)
    assert path == tmp_path / EVAL_FILE
    assert read_eval(path) == json.loads(json.dumps(obj))
    assert [p.name for p in tmp_path.iterdir()] == [EVAL_FILE]


def test_a_figure_that_cannot_be_estimated_is_null_with_its_reason(tmp_path: Path) -> None:
    stencil = read_eval(write_eval(run(dgemm_ok=2), tmp_path))["problems"]["stencil"]
    lost = stencil["by_size"][1]
    assert (lost["size"], lost["n"], lost["pass_at_k"]) == (128, 0, None)
    assert lost["missing"]["pass_at_k"] == FEW_SAMPLES
    assert "NaN" not in (tmp_path / EVAL_FILE).read_text()


def test_the_markdown_table_shows_each_problem_and_overall() -> None:
    text = markdown(run(dgemm_ok=2))
    dgemm = next(line for line in text.splitlines() if line.startswith("| dgemm |"))
    assert "0.700" in dgemm and "4.00x" in dgemm and "1/1" in dgemm
    assert "| **overall** | 3 | 8 | 2 | 1 | 0.850 |" in text
    assert "pass@2" in text and "suite smoke; k = 2" in text
    assert "| stencil | 1 | 2 | 0 |" in text  # verdicts in n: compile_error, ok, wrong_answer (lost is dropped)
    assert "- dgemm: vendor_fast_1_at_k: no vendor baseline (1 of 1 tasks)" in text


def test_the_report_writes_json_table_and_two_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    paths = write_report(run(dgemm_ok=2), tmp_path / "out")
    assert [p.name for p in paths] == [EVAL_FILE, TABLE_FILE, RATES_PLOT, SPEEDUP_PLOT]
    for png in paths[2:]:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC, f"{png.name} is not a PNG"
        assert len(data) > 10_000, f"{png.name} is only {len(data)} bytes: probably an empty plot"


def test_a_report_with_nothing_solved_still_draws(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    obj = run(dgemm_ok=0, stencil=False)
    assert obj["overall"]["geomean_speedup"] is None
    paths = write_report(obj, tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)


def test_compare_shows_b_minus_a_with_signs() -> None:
    text = compare(run(dgemm_ok=1), run(dgemm_ok=3, model="models/tuned"))
    assert text.startswith("A: model models/base, suite smoke, k = 2")
    dgemm_pass = next(line for line in text.splitlines() if line.startswith("| dgemm | pass@k |"))
    assert dgemm_pass == "| dgemm | pass@k | 0.400 | 0.900 | +0.500 |"
    correct_share = next(line for line in text.splitlines() if line.startswith("| dgemm | correct share |"))
    assert correct_share.endswith("| +0.400 |")
    assert "| overall | pass@k | 0.700 | 0.950 | +0.250 |" in text
    assert "| stencil | cached | 1 | 1 | +0 |" in text
    worse = compare(run(dgemm_ok=3), run(dgemm_ok=1))
    assert "| dgemm | pass@k | 0.900 | 0.400 | -0.500 |" in worse
    assert "warning" not in text


def test_compare_marks_problems_in_one_run_only_and_a_different_k() -> None:
    text = compare(run(dgemm_ok=2, stencil=False), run(dgemm_ok=2, k=1))
    assert "| stencil | only in B |" in text
    assert "warning: A has k = 2 and B has k = 1" in text
    assert "warning: the problems differ" in text
    assert "| dgemm | pass@k | 0.700 | 0.400 | -0.300 |" in text  # still compared


def test_compare_files_reads_two_eval_json_files(tmp_path: Path) -> None:
    a = write_eval(run(dgemm_ok=1), tmp_path / "a")
    b = write_eval(run(dgemm_ok=3), tmp_path / "b")
    text = compare_files(a, b)
    assert f"A: {a}:" in text and f"B: {b}:" in text
    assert "| dgemm | pass@k | 0.400 | 0.900 | +0.500 |" in text


def test_compare_refuses_what_is_not_an_eval_json(tmp_path: Path) -> None:
    good = write_eval(run(dgemm_ok=1), tmp_path / "good")
    other = tmp_path / "train.json"
    other.write_text(json.dumps({"steps": 3, "k": 2}))
    with pytest.raises(EvalFileError, match=r"train\.json: is not an eval\.json object"):
        compare_files(good, other)
    text = tmp_path / "notes.txt"
    text.write_text("pass@k went up\n")
    with pytest.raises(EvalFileError, match=r"notes\.txt: is not JSON"):
        compare_files(text, good)
    with pytest.raises(EvalFileError, match="cannot be read"):
        compare_files(good, tmp_path / "absent.json")
    truncated = {key: value for key, value in run(dgemm_ok=1).items() if key != "overall"}
    with pytest.raises(EvalFileError, match="without overall"):
        compare(truncated, run(dgemm_ok=1))
