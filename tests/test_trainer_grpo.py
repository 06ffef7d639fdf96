"""GRPO: hand-computed advantages and losses, log-probs checked against the model's own loss, and a few
updates of a tiny random Qwen2 that move probability towards the better completions."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

from bus.config import ConfigError
from trainer.grpo import (
    ADVANTAGE_EPS,
    LOSS_METRICS,
    UPDATE_METRICS,
    GRPOBatch,
    GRPOConfig,
    LossAggregation,
    advantages,
    collate,
    grpo_loss,
    optimizer_for,
    update_step,
)
from trainer.logprobs import token_log_probs

EPS = ADVANTAGE_EPS

# ---------------------------------------------------------------- advantages


def per_group(expected: list[list[float | None]]) -> list[object]:
    """pytest.approx does not nest: one per group."""
    return [pytest.approx(group) for group in expected]


REWARDS = [[0.0, 2.0, 4.0], [5.0, 6.0, 7.0]]  # group means 2 and 6, group stds 2 and 1, batch std sqrt(6.8)


def test_group_scaling_divides_each_group_by_its_own_std() -> None:
    result, _ = advantages(REWARDS, "group")
    assert result == per_group([[-2 / (2 + EPS), 0.0, 2 / (2 + EPS)], [-1 / (1 + EPS), 0.0, 1 / (1 + EPS)]])


def test_batch_scaling_divides_every_group_by_the_batch_std() -> None:
    # Batch: mean 4, squared deviations 16 + 4 + 0 + 1 + 4 + 9 = 34, Bessel: 34 / 5 = 6.8.
    s = math.sqrt(6.8) + EPS
    result, _ = advantages(REWARDS, "batch")
    assert result == per_group([[-2 / s, 0.0, 2 / s], [-1 / s, 0.0, 1 / s]])


def test_no_scaling_leaves_rewards_minus_the_group_mean() -> None:
    result, stats = advantages(REWARDS, "none")
    assert result == per_group([[-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    assert (stats.samples, stats.dropped, stats.groups) == (6, 0, 2)
    assert (stats.reward_mean, stats.reward_max) == (4.0, 7.0)
    assert stats.reward_std == pytest.approx(math.sqrt(6.8))
    assert stats.frac_reward_zero_std == 0.0 and stats.no_signal_groups == ()


def test_dropped_samples_get_no_advantage_and_stay_out_of_the_group_statistics() -> None:
    result, stats = advantages([[None, 1.0, 3.0, None]], "group")  # mean 2, std sqrt(2)
    s = math.sqrt(2) + EPS
    assert result == per_group([[None, -1 / s, 1 / s, None]])
    assert (stats.samples, stats.dropped, stats.reward_mean) == (2, 2, 2.0)


def test_groups_that_tie_or_are_too_small_get_zero_advantages_and_are_counted() -> None:
    rewards = [[3.0, 3.0, 3.0], [None, 5.0, None], [0.0, 2.0, 4.0], [None, None]]
    result, stats = advantages(rewards, "group")
    assert result == per_group([[0.0, 0.0, 0.0], [None, 0.0, None], [-2 / (2 + EPS), 0.0, 2 / (2 + EPS)], [None] * 2])
    assert (stats.zero_std_groups, stats.too_small_groups, stats.no_signal_groups) == (1, 2, (0, 1, 3))
    assert (stats.frac_reward_zero_std, stats.frac_group_too_small) == (0.25, 0.5)
    assert stats.reward_mean == pytest.approx(20 / 7)


def test_an_empty_batch_has_zero_statistics_not_nan() -> None:
    result, stats = advantages([[None, None]], "batch")
    assert result == [[None, None]]
    assert (stats.samples, stats.reward_mean, stats.reward_std, stats.reward_max) == (0, 0.0, 0.0, 0.0)


def test_a_non_finite_reward_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        advantages([[1.0, math.nan]], "group")


# ---------------------------------------------------------------- loss

# Two sequences of 3 tokens; the second has 2 completion tokens. old = 0, so ratio = exp(new).
# eps_low 0.2, eps_high 0.3: the ratio is clipped to [0.8, 1.3].
#   seq 0, A = +1, ratios 1.0, 1.5, 0.5: objectives 1.0, 1.3 (high-clipped), 0.5 (unclipped: min picks 0.5)
#   seq 1, A = -1, ratios 0.5, 1.5:       objectives -0.8 (low-clipped), -1.5 (unclipped: min picks -1.5)
# per-token loss = -objective: [-1.0, -1.3, -0.5], [0.8, 1.5]; sum -0.5 over 5 tokens.
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
OLD = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, math.nan]], dtype=torch.float64)  # nan: ignored, masked out
A = torch.tensor([1.0, -1.0], dtype=torch.float64)


def new_logp() -> torch.Tensor:
    ratios = torch.tensor([[1.0, 1.5, 0.5], [0.5, 1.5, 7.0]], dtype=torch.float64)
    return ratios.log().requires_grad_()


def config(**fields: Any) -> GRPOConfig:
    return GRPOConfig(**({"epsilon_low": 0.2, "epsilon_high": 0.3, "beta": 0.0} | fields))


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("token_mean", -0.5 / 5),
        ("sequence_mean", ((-1.0 - 1.3 - 0.5) / 3 + (0.8 + 1.5) / 2) / 2),
        ("constant_normalizer", -0.5 / (2 * 4)),  # 2 sequences x max_completion_tokens 4
    ],
)
def test_the_clipped_loss_matches_the_hand_computed_value_for_each_aggregation(
    aggregation: str, expected: float
) -> None:
    loss, _ = grpo_loss(new_logp(), OLD, None, A, MASK, config(loss_aggregation=aggregation, max_completion_tokens=4))
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))


def test_clipped_tokens_get_no_gradient_and_the_others_get_minus_advantage_times_ratio() -> None:
    logp = new_logp()
    loss, _ = grpo_loss(logp, OLD, None, A, MASK, config())
    loss.backward()  # type: ignore[no-untyped-call]
    # d(-r A / N)/d log r = -r A / N, N = 5; zero where clipped (seq 0 token 1, seq 1 token 0) or masked.
    expected = torch.tensor([[-0.2, 0.0, -0.1], [0.0, 0.3, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(logp.grad, expected)


def test_the_metrics_report_clipping_on_each_side_and_the_ratio() -> None:
    metrics = grpo_loss(new_logp(), OLD, None, A, MASK, config())[1].metrics()
    assert set(metrics) == set(LOSS_METRICS)
    expected = {"clip_ratio_low": 0.2, "clip_ratio_high": 0.2, "clip_ratio_region": 0.4, "kl": 0.0}
    assert {k: metrics[k] for k in expected} == pytest.approx(expected)
    assert (metrics["ratio_mean"], metrics["ratio_max"], metrics["loss"]) == pytest.approx((1.0, 1.5, -0.1))


def test_the_k3_kl_to_the_reference_is_added_with_weight_beta() -> None:
    # d = ref - new = ln 2 at (0, 0) and -ln 2 at (1, 1): k3 = (2 - ln 2 - 1) + (1/2 + ln 2 - 1) = 0.5.
    logp = new_logp()
    ref = logp.detach().clone()
    ref[0, 0] += math.log(2)
    ref[1, 1] -= math.log(2)
    ref[1, 2] = math.inf  # masked: ignored
    loss, sums = grpo_loss(logp, OLD, ref, A, MASK, config(beta=0.1))
    torch.testing.assert_close(loss, torch.tensor((-0.5 + 0.1 * 0.5) / 5, dtype=torch.float64))
    assert sums.metrics()["kl"] == pytest.approx(0.5 / 5)


def test_beta_without_reference_log_probs_is_refused() -> None:
    with pytest.raises(ValueError, match="needs ref_logp"):
        grpo_loss(new_logp(), OLD, None, A, MASK, config(beta=0.1))


@pytest.mark.parametrize(
    ("fields", "fix"),
    [
        ({"group_size": 1}, "group_size = 1: a group needs >= 2"),
        ({"scale_rewards": "rank"}, "valid: group, batch, none"),
        ({"loss_aggregation": "sum"}, "valid: sequence_mean, token_mean, constant_normalizer"),
        ({"epsilon_low": 1.0}, "0 <= epsilon_low < 1"),
        ({"beta": -0.1}, "beta >= 0"),
        ({"mu": 0}, "mu >= 1"),
        ({"max_grad_norm": 0.0}, "max_grad_norm > 0"),
        ({"epsilon_high": math.inf}, "must be finite"),
    ],
)
def test_config_errors_name_the_setting_and_the_fix(fields: dict[str, Any], fix: str) -> None:
    with pytest.raises(ConfigError, match=r"^grpo\b") as error:
        GRPOConfig(**fields)
    assert fix in str(error.value)


def test_aggregation_and_scaling_may_be_given_as_strings_from_toml() -> None:
    assert GRPOConfig(loss_aggregation="sequence_mean").loss_aggregation is LossAggregation.SEQUENCE_MEAN  # type: ignore[arg-type]


# ---------------------------------------------------------------- log-probs, batches and updates

VOCAB = 64
PROMPT = [3, 4, 5, 6]
COMPLETIONS = [[10, 11, 12, 13, 1], [20, 21, 22, 1], [30, 31, 32, 33, 1], [40, 41, 1]]  # 1 = eos
REWARDS_G = [10.0, 8.0, -10.0, -20.0]  # the first two are better than the group's mean


def tiny_model(seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    return Qwen2ForCausalLM(config)


def on_policy_batch(model: torch.nn.Module, rewards: list[float]) -> GRPOBatch:
    """The group's samples with behaviour log-probs as the sampler would have recorded them."""
    scratch = collate([PROMPT] * 4, COMPLETIONS, [[0.0] * len(c) for c in COMPLETIONS], [0.0] * 4, pad_token_id=0)
    with torch.no_grad():
        logp = token_log_probs(model, scratch.input_ids, scratch.attention_mask, scratch.completion_mask)
    behaviour = [row[mask.bool()].tolist() for row, mask in zip(logp, scratch.completion_mask, strict=True)]
    adv, _ = advantages([rewards], "group")
    return collate([PROMPT] * 4, COMPLETIONS, behaviour, [a or 0.0 for a in adv[0]], pad_token_id=0)


def completion_log_prob(model: torch.nn.Module, batch: GRPOBatch) -> torch.Tensor:
    with torch.no_grad():
        return token_log_probs(model, batch.input_ids, batch.attention_mask, batch.completion_mask).sum(-1)  # (B,)


def test_collate_left_pads_prompts_and_right_pads_completions_aligned_with_the_tokens() -> None:
    batch = collate([[5, 6], [7]], [[8, 9, 10], [11]], [[-0.1, -0.2, -0.3], [-0.4]], [1.0, -1.0], pad_token_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 8, 9, 10], [0, 7, 11, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 0, 0]]
    assert batch.completion_mask.tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 0, 0]]
    torch.testing.assert_close(batch.old_logp, torch.tensor([[0, 0, -0.1, -0.2, -0.3], [0, 0, -0.4, 0, 0]]))
    assert batch.advantages.tolist() == [1.0, -1.0]


def test_token_log_probs_agree_with_the_models_own_cross_entropy() -> None:
    model = tiny_model()
    ids = torch.tensor([[3, 4, 5, 10, 11, 12], [3, 4, 6, 20, 21, 22]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1]] * 2)
    logp = token_log_probs(model, ids, torch.ones_like(ids), mask)  # (B, T)
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids.masked_fill(mask == 0, -100)).loss  # mean NLL, shifted by HF
    torch.testing.assert_close(-logp.sum() / mask.sum(), loss)
    assert (logp[mask == 0] == 0).all()


def tiny_gpt2() -> GPT2LMHeadModel:
    """Learned absolute positions: the model where left padding would shift every position."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=2, eos_token_id=1
    )
    return GPT2LMHeadModel(config).eval()  # eval: GPT-2's dropout is on by default


@pytest.mark.parametrize("make_model", [tiny_model, tiny_gpt2], ids=["qwen2-rope", "gpt2-absolute"])
def test_left_padding_does_not_change_a_sequences_log_probs(make_model: Callable[[], torch.nn.Module]) -> None:
    model = make_model()
    alone = collate([PROMPT], [COMPLETIONS[3]], [[0.0] * 3], [0.0], pad_token_id=0)
    beside_longer = collate(
        [[7, 8, *PROMPT], PROMPT], [COMPLETIONS[0], COMPLETIONS[3]], [[0.0] * 5, [0.0] * 3], [0.0] * 2, pad_token_id=0
    )
    assert beside_longer.input_ids[1, :2].tolist() == [0, 0]  # left-padded by two columns
    expected = completion_log_prob(model, alone)
    torch.testing.assert_close(completion_log_prob(model, beside_longer)[1:], expected, atol=1e-5, rtol=1e-5)


def test_log_probs_are_taken_at_the_sampling_temperature() -> None:
    model = tiny_model()
    ids = torch.tensor([[3, 4, 10, 11]])
    mask = torch.tensor([[0, 0, 1, 1]])
    with torch.no_grad():
        logits = model(ids).logits[0, 1:3]  # (2, V): predicting tokens 2 and 3
        expected = torch.log_softmax(logits / 0.5, -1).gather(1, ids[0, 2:, None])[:, 0]
        logp = token_log_probs(model, ids, torch.ones_like(ids), mask, temperature=0.5)
    torch.testing.assert_close(logp[0, 2:], expected)


def test_updates_raise_the_better_completions_and_lower_the_worse() -> None:
    model = tiny_model()
    batch = on_policy_batch(model, REWARDS_G)
    settings = GRPOConfig(group_size=4, mu=2, learning_rate=1e-2)
    optimizer = optimizer_for(model, settings)
    before = completion_log_prob(model, batch)
    first = update_step(model, optimizer, batch, settings)
    for _ in range(3):
        metrics = update_step(model, optimizer, batch, settings)
    change = completion_log_prob(model, batch) - before
    assert (change[:2] > 0).all() and (change[2:] < 0).all(), change
    assert set(first) == set(LOSS_METRICS) | set(UPDATE_METRICS) and first["passes"] == 2.0
    assert metrics["clip_ratio_region"] > 0  # off the behaviour policy by now: the clip holds it
    assert all(math.isfinite(v) for v in metrics.values())


def test_on_policy_the_first_pass_has_ratio_one_and_nothing_clipped() -> None:
    model = tiny_model()
    batch = on_policy_batch(model, REWARDS_G)
    metrics = update_step(model, optimizer_for(model, GRPOConfig()), batch, GRPOConfig(mu=1))
    assert metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-5) and metrics["clip_ratio_region"] == 0.0


def test_with_beta_the_reference_is_the_model_with_its_lora_adapter_off() -> None:
    model = get_peft_model(tiny_model(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    batch = on_policy_batch(model, REWARDS_G)
    settings = GRPOConfig(beta=0.5, learning_rate=1e-2)
    optimizer = optimizer_for(model, settings)
    first = update_step(model, optimizer, batch, settings)
    second = update_step(model, optimizer, batch, settings)
    assert first["kl"] == pytest.approx(0.0, abs=1e-9)  # a fresh adapter is the reference
    assert second["kl"] > 0


def test_a_non_finite_loss_raises_before_the_weights_change() -> None:
    model = tiny_model()
    batch = on_policy_batch(model, REWARDS_G)
    broken = GRPOBatch(
        batch.input_ids, batch.attention_mask, batch.completion_mask, batch.old_logp, torch.full((4,), math.nan)
    )
    weights = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match="GRPO loss is nan"):
        update_step(model, optimizer_for(model, GRPOConfig()), broken, GRPOConfig())
    assert all(torch.equal(w, p) for w, p in zip(weights, model.parameters(), strict=True))


def test_a_batch_with_misaligned_tensors_is_refused() -> None:
    batch = collate([PROMPT], COMPLETIONS[:1], [[0.0] * 5], [1.0], pad_token_id=0)
    with pytest.raises(ValueError, match="old_logp is"):
        GRPOBatch(batch.input_ids, batch.attention_mask, batch.completion_mask, batch.old_logp[:, 1:], batch.advantages)
    with pytest.raises(ValueError, match="NaN or infinite on a completion token"):
        GRPOBatch(
            batch.input_ids, batch.attention_mask, batch.completion_mask, batch.old_logp - math.inf, batch.advantages
        )
