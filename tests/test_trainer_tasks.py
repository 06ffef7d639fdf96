"""A run trains on one problem or a weighted mix: the schedule gives each problem its share at every step,
the same after a restart, and the configuration refuses a mix whose rewards would not be comparable."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from bus.config import ConfigError
from trainer.config import LoopConfig, TrainerConfig, load_trainer_config
from trainer.grpo import GRPOConfig
from trainer.policy import PolicyConfig
from trainer.rewards import RewardConfig, RewardPreset
from trainer.tasks import TrainingTask, schedule

A, B, C = TrainingTask("dgemm", 256, 2.0), TrainingTask("jacobi2d", 1024, 1.0), TrainingTask("dgemm", 512, 1.0)


def test_each_task_gets_its_share_of_every_stretch_of_prompts() -> None:
    drawn = [t for step in range(1, 31) for t in schedule([A, B, C], step, 4)]  # 120 prompts, shares 2:1:1
    assert Counter(drawn) == {A: 60, B: 30, C: 30}
    for start in range(0, 120, 4):  # never more than one prompt off its share, over any prefix
        prefix = Counter(drawn[: start + 4])
        assert all(abs(prefix[t] - (start + 4) * t.weight / 4) <= 1 for t in (A, B, C))


def test_the_schedule_depends_on_the_step_alone_so_a_resumed_run_draws_the_same() -> None:
    assert schedule([A, B], 17, 3) == schedule([A, B], 17, 3)
    assert [t.problem for t in schedule([A, B], 1, 3)] == ["dgemm", "jacobi2d", "dgemm"]
    assert schedule([B], 5, 2) == [B, B]


def test_a_bad_schedule_request_is_our_bug() -> None:
    with pytest.raises(ValueError, match="step >= 1"):
        schedule([A], 0, 2)


def config(loop: dict[str, Any], rewards: RewardConfig | None = None) -> TrainerConfig:
    return TrainerConfig(LoopConfig(**loop), PolicyConfig(), rewards or RewardConfig(), GRPOConfig())


def test_one_problem_and_size_stay_valid_and_a_mix_reads_its_entries() -> None:
    assert config({}).tasks == (TrainingTask("dgemm", 256, 1.0),)
    mix = config(
        {"problems": ["dgemm@128", "jacobi2d"], "problem_weights": [3, 1]},
        RewardConfig(preset=RewardPreset.LOG_SPEEDUP),
    )
    assert mix.tasks == (TrainingTask("dgemm", 128, 3.0), TrainingTask("jacobi2d", 2048, 1.0))


@pytest.mark.parametrize(
    ("loop", "rewards", "fix"),
    [
        ({"problems": ["dgemm", "jacobi2d"]}, None, "set rewards.preset = 'log_speedup'"),
        ({"problems": ["dgemm", "jacobi2d"], "problem_weights": [1]}, None, "one weight per entry"),
        ({"problems": ["dgemm"], "problem_weights": [0]}, None, "must be numbers > 0"),
        ({"problems": ["sgemm"]}, None, "unknown problem 'sgemm'"),
        ({"problems": ["dgemm@100"]}, None, "has no size 100"),
        ({"size": 100}, None, "has no size 100"),
    ],
)
def test_a_mix_that_cannot_be_trained_is_refused_with_the_fix(
    loop: dict[str, Any], rewards: RewardConfig | None, fix: str
) -> None:
    with pytest.raises(ConfigError) as error:
        config(loop, rewards)
    assert fix in str(error.value)


def test_the_mix_may_name_a_sites_problem_through_the_bencher_setting(tmp_path: Any) -> None:
    (tmp_path / "hpcrl.toml").write_text(
        f'[bencher]\nproblem_dirs = ["{tmp_path}/none"]\n[trainer]\nproblems = ["dgemm"]\n'
    )
    with pytest.raises(ConfigError, match=r"does not exist: fix or remove it in bencher\.problem_dirs"):
        load_trainer_config(str(tmp_path / "hpcrl.toml"), env={})
