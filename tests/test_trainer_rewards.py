"""Rewards: known answers for every preset and verdict, the outside-stage policies, drops, noise ties, NaN."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bus.config import ConfigError
from bus.schema import Result
from trainer.rewards import LOST, NO_CODE, Outcome, RewardConfig, RewardPreset, group_rewards, reward

PAPER = RewardConfig(preset=RewardPreset.PAPER)
LOG_SPEEDUP = RewardConfig(preset=RewardPreset.LOG_SPEEDUP, naive_baseline_gflops=2.0)
NORMALIZED = RewardConfig(preset=RewardPreset.NORMALIZED, peak_gflops=100.0)
PRESETS = {"paper": PAPER, "log_speedup": LOG_SPEEDUP, "normalized": NORMALIZED}


def ok(median: float, low: float | None = None, high: float | None = None, outside: bool | None = False) -> Outcome:
    return Outcome("ok", median, low, high, outside_stage=outside)


def failed(verdict: str, outside: bool | None = False) -> Outcome:
    return Outcome(verdict, outside_stage=outside)


@pytest.mark.parametrize(
    ("preset", "expected"),
    [("paper", 8.0), ("log_speedup", math.log(4.0)), ("normalized", 0.08)],
)
def test_a_correct_program_scores_its_median_speed_as_the_preset_says(preset: str, expected: float) -> None:
    assert reward(ok(8.0, 7.0, 9.0), PRESETS[preset]) == pytest.approx(expected)


PENALTIES = {
    #                 paper,  log_speedup, normalized
    "no_code": (-100.0, -10.0, -1.0),
    "rejected": (-100.0, -10.0, -1.0),
    "compile_error": (-40.0, -8.0, -0.4),
    "timeout": (-30.0, -7.0, -0.3),
    "crash": (-20.0, -6.0, -0.2),
    "resource_limit": (-20.0, -6.0, -0.2),
    "wrong_answer": (-10.0, -5.0, -0.1),
}


@pytest.mark.parametrize("verdict", sorted(PENALTIES))
@pytest.mark.parametrize("preset", ["paper", "log_speedup", "normalized"])
def test_each_failing_verdict_gets_its_tiered_penalty_under_each_preset(preset: str, verdict: str) -> None:
    expected = PENALTIES[verdict][["paper", "log_speedup", "normalized"].index(preset)]
    assert reward(failed(verdict), PRESETS[preset]) == expected


@pytest.mark.parametrize("preset", ["paper", "log_speedup", "normalized"])
@pytest.mark.parametrize("verdict", ["infra_error", LOST])
def test_infra_errors_and_lost_candidates_are_dropped_never_charged(preset: str, verdict: str) -> None:
    assert reward(failed(verdict), PRESETS[preset]) is None


def test_a_completion_without_code_is_charged_as_a_format_violation() -> None:
    assert reward(Outcome(NO_CODE), PAPER) == -100.0  # outside_stage unknown: no code, no technique to judge


def test_log_speedup_floors_a_very_slow_correct_program_above_every_penalty() -> None:
    assert reward(ok(0.0), LOG_SPEEDUP) == pytest.approx(math.log(0.01))
    assert reward(ok(0.01), LOG_SPEEDUP) == pytest.approx(math.log(0.01))  # 0.005x, floored at 0.01x
    assert reward(ok(1.0), LOG_SPEEDUP) == pytest.approx(math.log(0.5))
    assert math.log(0.01) > max(PENALTIES[v][1] for v in PENALTIES)


def test_normalized_takes_the_measuring_nodes_peak_when_the_outcome_knows_it() -> None:
    assert reward(Outcome("ok", 50.0, outside_stage=False, peak_gflops=200.0), NORMALIZED) == 0.25


def test_penalties_named_in_the_config_replace_the_presets_and_the_rest_keep_theirs() -> None:
    config = RewardConfig(penalties={"wrong_answer": -1.0, "no_code": -500.0})
    assert reward(failed("wrong_answer"), config) == -1.0
    assert reward(Outcome(NO_CODE), config) == -500.0
    assert reward(failed("crash"), config) == -20.0


@pytest.mark.parametrize(
    ("policy", "correct", "compile_error"),
    [("violation", -100.0, -100.0), ("zero", 0.0, -40.0), ("ignore", 8.0, -40.0)],
)
def test_results_outside_their_stage_score_at_most_the_policys_cap(
    policy: str, correct: float, compile_error: float
) -> None:
    config = RewardConfig(outside_stage=policy)  # type: ignore[arg-type]  # TOML gives strings
    assert reward(ok(8.0, outside=True), config) == correct
    assert reward(failed("compile_error", outside=True), config) == compile_error
    assert reward(ok(8.0, outside=False), config) == 8.0


def test_the_default_outside_stage_policy_scores_it_as_a_violation() -> None:
    assert reward(ok(8.0, outside=True), PAPER) == reward(failed("rejected"), PAPER) == -100.0


def test_an_unknown_outside_stage_flag_drops_only_what_it_could_change() -> None:
    assert reward(ok(8.0, outside=None), PAPER) is None
    assert reward(failed("compile_error", outside=None), PAPER) is None  # -40 could become -100
    assert reward(failed("rejected", outside=None), PAPER) == -100.0  # already at the cap
    zero = RewardConfig(outside_stage="zero")  # type: ignore[arg-type]
    assert reward(failed("compile_error", outside=None), zero) == -40.0  # below the cap 0 either way
    assert reward(ok(8.0, outside=None), zero) is None
    ignore = RewardConfig(outside_stage="ignore")  # type: ignore[arg-type]
    assert reward(ok(8.0, outside=None), ignore) == 8.0


def test_correct_results_within_the_fastests_measured_spread_share_their_mean_reward() -> None:
    a = ok(10.0, 9.0, 11.0)  # leads the first cluster
    b = ok(9.5, 9.4, 9.6)  # its median lies in a's spread: tie with a
    c = ok(8.0, 7.0, 9.2)  # a's spread ends at 9, c's at 9.2 < 10: a new cluster, led by c
    d = ok(7.5, 7.4, 7.6)  # its median lies in c's spread: tie with c
    group = [c, failed("wrong_answer"), a, failed("infra_error"), d, b]
    assert group_rewards(group, PAPER) == pytest.approx([7.75, -10.0, 9.75, None, 7.75, 9.75])


def test_ties_are_decided_against_the_clusters_leader_and_never_chain() -> None:
    x = ok(10.0, 9.9, 10.1)
    y = ok(9.95, 9.8, 10.0)  # in x's spread: tie
    z = ok(9.85, 9.8, 9.9)  # in y's spread, but neither z's nor x's spread holds the other's median
    assert group_rewards([x, y, z], PAPER) == pytest.approx([9.975, 9.975, 9.85])


def test_tied_results_share_the_mean_of_their_preset_rewards() -> None:
    fast, slow = ok(8.0, 4.0, 9.0), ok(4.0, 3.9, 4.1)  # speedups 4x and 2x over a 2 GFLOPS baseline
    assert group_rewards([fast, slow], LOG_SPEEDUP) == pytest.approx([1.5 * math.log(2)] * 2)


def test_results_whose_spread_is_unknown_tie_only_through_the_others_spread() -> None:
    assert group_rewards([ok(10.0, 9.0, 11.0), ok(9.5)], PAPER) == pytest.approx([9.75, 9.75])
    assert group_rewards([ok(10.0), ok(9.5)], PAPER) == [10.0, 9.5]


def test_without_noise_ties_every_result_keeps_its_own_reward() -> None:
    config = RewardConfig(noise_ties=False)
    assert group_rewards([ok(10.0, 9.0, 11.0), ok(9.5, 9.4, 9.6)], config) == [10.0, 9.5]


def test_a_capped_outside_stage_result_never_ties_with_correct_ones() -> None:
    zero = RewardConfig(outside_stage="zero")  # type: ignore[arg-type]
    assert group_rewards([ok(10.0, 9.0, 11.0), ok(9.5, 9.0, 11.0, outside=True)], zero) == [10.0, 0.0]


@pytest.mark.parametrize(
    "outcome",
    [
        ok(math.nan),
        ok(math.inf),
        ok(5.0, 4.0, math.inf),
        ok(5.0, math.nan, 6.0),
        ok(5.0, 6.0, 7.0),  # min above the median
        ok(-1.0),
    ],
    ids=["nan", "inf", "inf-max", "nan-min", "unordered", "negative"],
)
def test_a_correct_result_with_a_broken_measurement_is_dropped_never_a_nan_reward(outcome: Outcome) -> None:
    assert reward(outcome, PAPER) is None
    assert group_rewards([outcome, ok(5.0, 4.0, 6.0)], PAPER) == [None, 5.0]


def test_the_figures_of_a_failing_result_are_never_read() -> None:
    assert reward(Outcome("wrong_answer", math.nan, math.inf, math.nan, outside_stage=False), PAPER) == -10.0


def test_an_outcome_is_built_from_a_bencher_result_and_the_archives_flag() -> None:
    result = Result(
        id="r1", sender="bencher-1", seq=1, sent_at=0.0, candidate_id="c1", run="run", problem="dgemm", size=64,
        source="void dgemm(void) {}", verdict="ok", gflops_median=8.0, gflops_min=7.0, gflops_max=9.0,
    )  # type: ignore[arg-type]  # fmt: skip
    outcome = Outcome.from_result(result, outside_stage=False)
    assert outcome == Outcome("ok", 8.0, 7.0, 9.0, outside_stage=False)
    assert reward(outcome, PAPER) == 8.0


def test_a_result_in_its_problems_metric_carries_its_rates_and_its_nodes_naive_baseline() -> None:
    result = Result(
        id="r1", sender="bencher-1", seq=1, sent_at=0.0, candidate_id="c1", run="run", problem="transpose", size=99,
        source="void transpose(void) {}", verdict="ok", metric="gbps", rate_median=12.0, rate_min=11.0, rate_max=13.0,
        naive_rate=3.0,
    )  # type: ignore[arg-type]  # fmt: skip
    outcome = Outcome.from_result(result, outside_stage=False)
    assert outcome == Outcome("ok", 12.0, 11.0, 13.0, outside_stage=False, naive_rate=3.0)
    by_node = RewardConfig(preset=RewardPreset.LOG_SPEEDUP)
    assert reward(outcome, by_node) == pytest.approx(math.log(4.0))
    assert reward(outcome, LOG_SPEEDUP) == pytest.approx(math.log(6.0))  # a fixed baseline takes precedence


def test_log_speedup_drops_an_outcome_whose_node_measured_no_naive_baseline() -> None:
    by_node = RewardConfig(preset=RewardPreset.LOG_SPEEDUP)
    assert reward(Outcome("ok", 5.0, outside_stage=False), by_node) is None  # unknown speedup: never guessed
    assert reward(Outcome("wrong_answer", outside_stage=False), by_node) == -5.0  # failures need no baseline


def test_an_unknown_verdict_is_our_own_bug_and_raises() -> None:
    with pytest.raises(ValueError, match="valid: compile_error"):
        Outcome("fast")


def test_presets_and_policies_may_be_given_as_strings_from_toml() -> None:
    config = RewardConfig(preset="normalized", peak_gflops=10.0, outside_stage="ignore")  # type: ignore[arg-type]
    assert config.preset is RewardPreset.NORMALIZED and reward(ok(5.0, outside=True), config) == 0.5


@pytest.mark.parametrize(
    ("fields", "fix"),
    [
        ({"preset": "fastest"}, "valid: paper, log_speedup, normalized"),
        ({"outside_stage": "forgive"}, "valid: violation, zero, ignore"),
        ({"naive_baseline_gflops": -1.0}, "must be >= 0"),
        ({"preset": "normalized"}, "needs peak_gflops > 0"),
        ({"penalties": {"ok": 1.0}}, "unknown verdicts ['ok']"),
        ({"penalties": {"infra_error": -1.0}}, "never charged"),
        ({"penalties": {"wrong_answer": 5.0}}, "lower them to 0 or less"),
        ({"preset": "log_speedup", "naive_baseline_gflops": 1.0, "penalties": {"crash": -4.0}}, "to -4.605 or less"),
        ({"penalties": {"crash": math.nan}}, "penalties.crash = nan must be a finite number"),
        ({"peak_gflops": math.inf}, "peak_gflops = inf must be a finite number"),
        ({"min_speedup": 0.0}, "min_speedup = 0.0 must be in (0, 1]"),
    ],
)
def test_config_errors_name_the_setting_and_the_fix(fields: dict[str, Any], fix: str) -> None:
    with pytest.raises(ConfigError, match=r"^rewards\b") as error:
        RewardConfig(**fields)
    assert fix in str(error.value)
