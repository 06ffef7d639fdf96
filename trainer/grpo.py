"""GRPO: group-relative advantages, the clipped policy-gradient loss, and the update step. Pure torch.

Data flow (one batch = the G completions of each of several prompts, already rewarded):
  rewards ─► `advantages` ─► `collate` (tokens, behaviour log-probs) ─► `update_step`:
      mu passes of { per micro-batch: `token_log_probs` ─► `grpo_loss` ─► backward (accumulate) }
                   ─► clip gradients ─► optimizer step

The variants follow TRL's GRPOTrainer: `scale_rewards` group/batch/none (Dr. GRPO: none), separate
low/high clip epsilons (DAPO's clip-higher), a k3 KL estimate to the reference weighted by `beta`, and
three loss aggregations. The importance ratio is taken against the behaviour log-probs recorded when
the completion was sampled, so samples from an older policy (a generator serving a stale adapter, or
mu > 1) are corrected by it.

Memory is bounded by the micro-batch, not the batch: each optimizer step accumulates the gradients of
micro-batches of `micro_batch_size` sequences, and every aggregation divides by the whole batch's counts
(`Normalizer`: its sequences and completion tokens, summed over data-parallel ranks), so the accumulated
gradient is the one-pass gradient. Log-probabilities never materialise full logits (trainer/logprobs.py).

Left out on purpose: entropy bonuses and any trainer state; the loop that calls these functions owns that.

NaN policy: rewards reaching `advantages` are finite (trainer/rewards.py drops what is not) and a
non-finite one is refused. A non-finite loss or gradient norm in `update_step` raises
FloatingPointError before the optimizer steps, so broken weights are never written; the message names
the usual causes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import torch

from bus.config import ConfigError
from trainer.logprobs import PolicyLogProbs, token_log_probs
from trainer.policy import reference_policy

ADVANTAGE_EPS: Final = 1e-4
"""Added to the standard deviation that scales advantages (as TRL does), so a near-tie does not blow up."""


class ScaleRewards(enum.StrEnum):
    GROUP = "group"
    """(r - group mean) / (group std + eps): the original GRPO."""
    BATCH = "batch"
    """(r - group mean) / (batch std + eps): one scale for every group."""
    NONE = "none"
    """r - group mean: Dr. GRPO (std scaling favours groups that are nearly tied)."""


class LossAggregation(enum.StrEnum):
    SEQUENCE_MEAN = "sequence_mean"
    """Mean over each sequence's tokens, then over sequences (GRPO): a token of a short completion
    weighs more than one of a long completion."""
    TOKEN_MEAN = "token_mean"
    """Sum over every completion token of the batch / their number (DAPO): every token weighs the same."""
    CONSTANT_NORMALIZER = "constant_normalizer"
    """Sum over every completion token / (sequences x max_completion_tokens) (Dr. GRPO): no length bias
    and a normalizer that does not change from batch to batch."""


@dataclass(frozen=True)
class GRPOConfig:
    """`[grpo]`: the optimisation."""

    group_size: int = 8
    """G: completions sampled per prompt; their rewards are compared with each other."""
    scale_rewards: ScaleRewards = ScaleRewards.GROUP
    """How advantages are scaled: `group`, `batch` or `none` (see ScaleRewards)."""
    epsilon_low: float = 0.2
    """The importance ratio is clipped below at 1 - epsilon_low."""
    epsilon_high: float = 0.28
    """... and above at 1 + epsilon_high (DAPO: higher than epsilon_low, so unlikely tokens can grow)."""
    beta: float = 0.0
    """Weight of the KL to the reference policy (the base model, adapter off); 0 skips the reference
    forward pass (TRL's default: the clip and the LoRA rank already bound the drift)."""
    mu: int = 1
    """Optimizer steps per batch; after the first, the importance ratio corrects for the updated policy."""
    loss_aggregation: LossAggregation = LossAggregation.TOKEN_MEAN
    """`sequence_mean`, `token_mean` or `constant_normalizer` (see LossAggregation)."""
    max_completion_tokens: int = 512
    """The normalizer of `constant_normalizer`: the longest completion generation may produce, in tokens."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global L2 norm before each optimizer step."""
    learning_rate: float = 1e-5
    """AdamW learning rate of the adapter's weights (`optimizer_for`)."""
    warmup_steps: int = 0
    """Steps over which the learning rate rises linearly to learning_rate (`scheduler_for`); 0: none."""
    temperature: float = 1.0
    """The sampling temperature: log-probs are taken at the same temperature, so ratios compare the
    distribution that sampled with the one being trained."""
    top_p: float = 0.95
    """Nucleus sampling: cutting the rarest 5% of the distribution removes most broken samples of a
    small policy (the tiny model: 95.8% correct samples at 1.0, 99.5% at 0.95)."""
    micro_batch_size: int = 8
    """Sequences per forward/backward pass; gradients accumulate over the micro-batches of a batch into
    one optimizer step. In sequences, not tokens: a completion is at most max_completion_tokens long, so
    micro_batch_size x (prompt + max_completion_tokens) bounds the activations, and `hpcrl plan` picks the
    largest that fits a GPU. Per rank under data parallelism."""
    logprob_chunk_tokens: int = 1024
    """Completion tokens per LM-head chunk when taking log-probs (trainer/logprobs.py): the largest
    logits tensor is (logprob_chunk_tokens, vocabulary) in float32."""

    def __post_init__(self) -> None:
        for name, kind in (("scale_rewards", ScaleRewards), ("loss_aggregation", LossAggregation)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                valid = ", ".join(m.value for m in kind)
                raise ConfigError(f"grpo.{name} = {value!r}; valid: {valid}") from None
        if self.group_size < 2:
            raise ConfigError(f"grpo.group_size = {self.group_size}: a group needs >= 2 completions to have a baseline")
        if not 0 <= self.epsilon_low < 1 or self.epsilon_high < 0:
            raise ConfigError(
                "grpo needs 0 <= epsilon_low < 1 (the lower clip 1 - epsilon_low must stay positive) "
                "and epsilon_high >= 0"
            )
        if self.warmup_steps < 0:
            raise ConfigError(f"grpo.warmup_steps = {self.warmup_steps} must be >= 0 (0: no warm-up)")
        if self.beta < 0 or self.mu < 1 or self.max_completion_tokens < 1:
            raise ConfigError("grpo needs beta >= 0 (0: no KL), mu >= 1 and max_completion_tokens >= 1")
        if self.micro_batch_size < 1 or self.logprob_chunk_tokens < 1:
            raise ConfigError(
                f"grpo.micro_batch_size = {self.micro_batch_size} and grpo.logprob_chunk_tokens = "
                f"{self.logprob_chunk_tokens} must be >= 1 (`hpcrl plan` suggests values that fit a GPU)"
            )
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"grpo.top_p = {self.top_p} must be in (0, 1] (1: no nucleus cut)")
        if not (self.max_grad_norm > 0 and self.learning_rate > 0 and self.temperature > 0):
            raise ConfigError("grpo needs max_grad_norm > 0, learning_rate > 0 and temperature > 0")
        numbers = (self.epsilon_low, self.epsilon_high, self.beta, self.max_grad_norm, self.learning_rate)
        if not all(math.isfinite(x) for x in (*numbers, self.temperature)):
            raise ConfigError("grpo: epsilons, beta, max_grad_norm, learning_rate and temperature must be finite")


# ---------------------------------------------------------------- advantages


@dataclass(frozen=True)
class AdvantageStats:
    """What one batch of rewards looked like (logged with each step)."""

    groups: int
    """Prompts in the batch (one group of completions each)."""
    samples: int
    """Rewarded samples (not dropped)."""
    dropped: int
    """Samples without a reward (infra_error, lost, ...): no advantage, no gradient."""
    zero_std_groups: int
    """Groups of >= 2 rewarded samples whose rewards all tie: advantages 0, nothing to learn."""
    too_small_groups: int
    """Groups with fewer than 2 rewarded samples: no baseline, advantages 0."""
    frac_reward_zero_std: float
    """zero_std_groups / groups."""
    frac_group_too_small: float
    """too_small_groups / groups."""
    no_signal_groups: tuple[int, ...]
    """Indices of the groups counted in zero_std_groups or too_small_groups: with beta = 0 their
    samples may be left out of the update (they only dilute the token-mean normalizer)."""
    reward_mean: float
    """Mean reward of the rewarded samples (0.0 when there are none)."""
    reward_std: float
    """Their standard deviation (Bessel-corrected; 0.0 below 2 samples)."""
    reward_max: float
    """Their maximum (0.0 when there are none)."""


def advantages(
    rewards: Sequence[Sequence[float | None]], scale: ScaleRewards | str
) -> tuple[list[list[float | None]], AdvantageStats]:
    """Group-relative advantages: A = r - mean(group), divided by the group's or the batch's standard
    deviation (+ ADVANTAGE_EPS) or not at all. `rewards[g][i]` is sample i of prompt g; None is a
    dropped sample: it is left out of every statistic and gets no advantage (None). A group whose
    rewarded samples all tie, or that has fewer than 2 of them, gets advantages 0. Standard deviations
    are Bessel-corrected (as torch.std and TRL)."""
    scale = ScaleRewards(scale)
    valid = [[r for r in group if r is not None] for group in rewards]
    everything = [r for group in valid for r in group]
    if not all(math.isfinite(r) for r in everything):
        raise ValueError("advantages: a reward is NaN or infinite; trainer/rewards.py drops such samples")
    batch_std = _std(everything)

    result: list[list[float | None]] = []
    no_signal: list[int] = []
    zero_std = too_small = 0
    for g, (group, kept) in enumerate(zip(rewards, valid, strict=True)):
        if len(kept) < 2 or max(kept) == min(kept):
            too_small += len(kept) < 2
            zero_std += len(kept) >= 2
            no_signal.append(g)
            result.append([None if r is None else 0.0 for r in group])
            continue
        mean = math.fsum(kept) / len(kept)
        match scale:
            case ScaleRewards.GROUP:
                divisor = _std(kept) + ADVANTAGE_EPS
            case ScaleRewards.BATCH:
                divisor = batch_std + ADVANTAGE_EPS
            case ScaleRewards.NONE:
                divisor = 1.0
        result.append([None if r is None else (r - mean) / divisor for r in group])

    groups = len(rewards)
    stats = AdvantageStats(
        groups=groups,
        samples=len(everything),
        dropped=sum(len(group) for group in rewards) - len(everything),
        zero_std_groups=zero_std,
        too_small_groups=too_small,
        frac_reward_zero_std=zero_std / groups if groups else 0.0,
        frac_group_too_small=too_small / groups if groups else 0.0,
        no_signal_groups=tuple(no_signal),
        reward_mean=math.fsum(everything) / len(everything) if everything else 0.0,
        reward_std=batch_std,
        reward_max=max(everything, default=0.0),
    )
    return result, stats


def _std(values: Sequence[float]) -> float:
    """Bessel-corrected standard deviation; 0.0 below 2 values."""
    if len(values) < 2:
        return 0.0
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


# ---------------------------------------------------------------- loss


LOSS_METRICS: Final[dict[str, str]] = {
    "loss": "The aggregated loss (policy-gradient term + beta * KL).",
    "clip_ratio_low": "Share of completion tokens whose ratio is below 1 - epsilon_low with a negative advantage "
    "(clipped: no gradient).",
    "clip_ratio_high": "Share of completion tokens whose ratio is above 1 + epsilon_high with a positive advantage "
    "(clipped: no gradient).",
    "clip_ratio_region": "clip_ratio_low + clip_ratio_high.",
    "kl": "Mean k3 estimate of KL(policy || reference) per completion token (0 when beta = 0).",
    "ratio_mean": "Mean importance ratio policy / behaviour per completion token (1 when on-policy).",
    "ratio_max": "Largest importance ratio of the batch.",
}
"""Every metric `LossSums.metrics` returns, documented (`update_step` adds UPDATE_METRICS)."""


@dataclass(frozen=True)
class Normalizer:
    """What each loss aggregation divides by: counts of the whole batch (every micro-batch, every
    data-parallel rank), so that summing micro-batch losses gives the loss of the batch in one pass."""

    sequences: int
    """Rows of the batch (sequence_mean averages over them; constant_normalizer multiplies them)."""
    tokens: int
    """Completion tokens of the batch (token_mean divides by them)."""

    @classmethod
    def of(cls, completion_mask: torch.Tensor) -> Normalizer:
        return cls(sequences=int(completion_mask.shape[0]), tokens=int(completion_mask.sum()))


@dataclass(frozen=True)
class LossSums:
    """The loss and its metrics as sums over completion tokens, so micro-batches (and ranks) add up."""

    loss: float = 0.0
    """Already normalised by the whole batch: the micro-batches' losses add up to the batch's."""
    tokens: float = 0.0
    clipped_low: float = 0.0
    clipped_high: float = 0.0
    kl: float = 0.0
    ratio: float = 0.0
    ratio_max: float = 0.0
    """Largest ratio seen (0 before any token): a max, not a sum."""

    def __add__(self, other: LossSums) -> LossSums:
        summed = {name: getattr(self, name) + getattr(other, name) for name in self.summed_fields()}
        return LossSums(**summed, ratio_max=max(self.ratio_max, other.ratio_max))

    @staticmethod
    def summed_fields() -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(LossSums) if f.name != "ratio_max")

    def metrics(self) -> dict[str, float]:
        """LOSS_METRICS: shares and means per completion token."""
        tokens = max(self.tokens, 1.0)
        return {
            "loss": self.loss,
            "clip_ratio_low": self.clipped_low / tokens,
            "clip_ratio_high": self.clipped_high / tokens,
            "clip_ratio_region": (self.clipped_low + self.clipped_high) / tokens,
            "kl": self.kl / tokens,
            "ratio_mean": self.ratio / tokens if self.tokens else 1.0,
            "ratio_max": self.ratio_max if self.tokens else 1.0,
        }


def grpo_loss(
    new_logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    config: GRPOConfig,
    normalizer: Normalizer | None = None,
) -> tuple[torch.Tensor, LossSums]:
    """The clipped GRPO loss of a (micro-)batch: (B, T) log-probs under the policy being trained (`new_logp`),
    the behaviour policy that sampled (`old_logp`) and the reference (`ref_logp`, needed when beta > 0);
    (B,) advantages; (B, T) completion mask. Values outside the mask are ignored, whatever they are.
    Aggregated over `normalizer` (default: this batch alone), so micro-batch losses add up to the batch's."""
    normalizer = normalizer or Normalizer.of(completion_mask)
    mask = completion_mask.bool()  # (B, T)
    weights = mask.to(new_logp.dtype)  # (B, T)
    zeros = torch.zeros_like(new_logp)
    # Importance ratio against the behaviour policy, clipped asymmetrically (DAPO).
    ratio = torch.exp(torch.where(mask, new_logp - old_logp, zeros))  # (B, T)
    clipped = ratio.clamp(1 - config.epsilon_low, 1 + config.epsilon_high)  # (B, T)
    a = advantages[:, None].to(new_logp.dtype)  # (B, 1)
    per_token = -torch.minimum(ratio * a, clipped * a)  # (B, T)
    # k3 estimate of KL(policy || reference): exp(d) - d - 1 with d = ref - new; >= 0, unbiased.
    if config.beta > 0:
        if ref_logp is None:
            raise ValueError("grpo_loss: beta > 0 needs ref_logp (log-probs under the reference policy)")
        d = torch.where(mask, ref_logp - new_logp, zeros)  # (B, T)
        kl = torch.exp(d) - d - 1  # (B, T)
        per_token = per_token + config.beta * kl
    else:
        kl = zeros
    # Aggregate over the completion tokens, divided by the whole batch's counts.
    per_token = torch.where(mask, per_token, zeros)
    match config.loss_aggregation:
        case LossAggregation.SEQUENCE_MEAN:
            loss = (per_token.sum(-1) / weights.sum(-1).clamp(min=1)).sum() / max(normalizer.sequences, 1)
        case LossAggregation.TOKEN_MEAN:
            loss = per_token.sum() / max(normalizer.tokens, 1)
        case LossAggregation.CONSTANT_NORMALIZER:
            loss = per_token.sum() / (max(normalizer.sequences, 1) * config.max_completion_tokens)

    with torch.no_grad():
        low = (ratio < 1 - config.epsilon_low) & (a < 0) & mask
        high = (ratio > 1 + config.epsilon_high) & (a > 0) & mask
        sums = LossSums(
            loss=loss.item(),
            tokens=weights.sum().item(),
            clipped_low=low.sum().item(),
            clipped_high=high.sum().item(),
            kl=(kl * weights).sum().item(),
            ratio=(ratio * weights).sum().item(),
            ratio_max=ratio[mask].max().item() if mask.any() else 0.0,
        )
    return loss, sums


# ---------------------------------------------------------------- batch and update


@dataclass(frozen=True)
class GRPOBatch:
    """The tensors of one update. Row b is prompt + completion, left-padded prompt then right-padded
    completion; every (B, T) tensor is aligned with `input_ids` (column t describes token t)."""

    input_ids: torch.Tensor
    """(B, T) token ids."""
    attention_mask: torch.Tensor
    """(B, T) 1 on real tokens, 0 on padding."""
    completion_mask: torch.Tensor
    """(B, T) 1 on completion tokens (the ones the loss trains), 0 elsewhere."""
    old_logp: torch.Tensor
    """(B, T) behaviour log-probs recorded at generation, on completion tokens (anything elsewhere)."""
    advantages: torch.Tensor
    """(B,) advantage of each completion."""
    ref_logp: torch.Tensor | None = None
    """(B, T) log-probs under the reference policy, or None: `update_step` computes them when beta > 0."""

    def __post_init__(self) -> None:
        shape = self.input_ids.shape
        if self.input_ids.dim() != 2:
            raise ValueError(f"GRPOBatch.input_ids must be (B, T), not {tuple(shape)}")
        tensors = {"attention_mask": self.attention_mask, "completion_mask": self.completion_mask}
        tensors |= {"old_logp": self.old_logp} | ({} if self.ref_logp is None else {"ref_logp": self.ref_logp})
        for name, tensor in tensors.items():
            if tensor.shape != shape:
                raise ValueError(f"GRPOBatch.{name} is {tuple(tensor.shape)}; input_ids is {tuple(shape)}")
        if self.advantages.shape != shape[:1]:
            raise ValueError(f"GRPOBatch.advantages must be ({shape[0]},), not {tuple(self.advantages.shape)}")
        if not torch.isfinite(self.old_logp[self.completion_mask.bool()]).all():
            raise ValueError("GRPOBatch.old_logp is NaN or infinite on a completion token: the sampler lost it")

    def to(self, device: torch.device | str) -> GRPOBatch:
        return self._sliced(slice(None), slice(None), device)

    def micro_batches(self, size: int) -> list[GRPOBatch]:
        """Consecutive slices of at most `size` rows, each cut to the columns some row of it attends (a
        micro-batch of short sequences does not pay for the batch's longest). Positions count attended
        tokens only, so cutting padding columns changes no log-prob."""
        slices = []
        for start in range(0, int(self.input_ids.shape[0]), size):
            rows = slice(start, start + size)
            attended = self.attention_mask[rows].any(0).nonzero()[:, 0]  # (attended columns,)
            columns = slice(int(attended[0]), int(attended[-1]) + 1) if attended.numel() else slice(0, 1)
            slices.append(self._sliced(rows, columns))
        return slices

    def _sliced(self, rows: slice, columns: slice, device: torch.device | str | None = None) -> GRPOBatch:
        """These rows and columns of every tensor (on `device`, when given)."""

        def cut(tensor: torch.Tensor) -> torch.Tensor:
            return tensor[rows, columns].to(device) if device is not None else tensor[rows, columns]

        return GRPOBatch(
            cut(self.input_ids),
            cut(self.attention_mask),
            cut(self.completion_mask),
            cut(self.old_logp),
            self.advantages[rows].to(device) if device is not None else self.advantages[rows],
            None if self.ref_logp is None else cut(self.ref_logp),
        )


def collate(
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    behaviour_logprobs: Sequence[Sequence[float]],
    advantages: Sequence[float],
    pad_token_id: int,
) -> GRPOBatch:
    """One batch from per-sample token ids, behaviour log-probs (one per completion token) and advantages."""
    prompt_width = max(len(p) for p in prompt_ids)
    completion_width = max(max(len(c) for c in completion_ids), 1)
    rows, attention, completion, old = [], [], [], []
    for prompt, tokens, logprobs in zip(prompt_ids, completion_ids, behaviour_logprobs, strict=True):
        if len(logprobs) != len(tokens):
            raise ValueError(f"collate: {len(tokens)} completion tokens but {len(logprobs)} behaviour log-probs")
        left = prompt_width - len(prompt)
        right = completion_width - len(tokens)
        rows.append([pad_token_id] * left + [*prompt, *tokens] + [pad_token_id] * right)
        attention.append([0] * left + [1] * (len(prompt) + len(tokens)) + [0] * right)
        completion.append([0] * prompt_width + [1] * len(tokens) + [0] * right)
        old.append([0.0] * prompt_width + [*logprobs] + [0.0] * right)
    return GRPOBatch(
        input_ids=torch.tensor(rows),
        attention_mask=torch.tensor(attention),
        completion_mask=torch.tensor(completion),
        old_logp=torch.tensor(old, dtype=torch.float32),
        advantages=torch.tensor(list(advantages), dtype=torch.float32),
    )


def optimizer_for(model: torch.nn.Module, config: GRPOConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only (the LoRA adapter's)."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)


def scheduler_for(optimizer: torch.optim.Optimizer, config: GRPOConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule, stepped once per GRPO step: a linear warm-up over warmup_steps, then
    constant (online RL has no known end to decay towards)."""
    warmup = config.warmup_steps
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)


UPDATE_METRICS: Final[dict[str, str]] = {
    "grad_norm": "Global L2 norm of the gradients before clipping, mean over the mu passes.",
    "passes": "Optimizer steps taken on the batch (mu).",
    "micro_batches": "Forward/backward passes per optimizer step (on this rank).",
}
"""The metrics `update_step` adds to LOSS_METRICS (which it averages over the mu passes)."""


class Replicas(Protocol):
    """Data parallelism as `update_step` sees it (trainer/distributed.py implements it with
    torch.distributed and DistributedDataParallel): every rank holds a shard of the batch."""

    world_size: int

    @property
    def scorer(self) -> torch.nn.Module:
        """The DDP-wrapped `PolicyLogProbs` of the policy: its backward all-reduces the adapter's gradients."""
        ...

    def no_sync(self) -> contextlib.AbstractContextManager[None]:
        """Accumulate this backward's gradients locally (every micro-batch but the last of a pass)."""
        ...

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `values` over the ranks (an all-reduce)."""
        ...

    def maximum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise maximum of `values` over the ranks (an all-reduce)."""
        ...


def update_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: GRPOBatch | None,
    config: GRPOConfig,
    replicas: Replicas | None = None,
) -> dict[str, float]:
    """mu optimizer steps on one batch, each accumulating the gradients of micro-batches of
    config.micro_batch_size rows; returns LOSS_METRICS averaged over the passes and UPDATE_METRICS.
    With `replicas`, `batch` is this rank's shard: the normaliser and the metrics cover every rank's, and
    DDP averages the gradients, so the loss is scaled by the world size to sum them instead. A rank whose
    shard is empty (`batch` None: fewer rows than ranks) still joins every gradient all-reduce, adding 0."""
    if batch is None and replicas is None:
        raise ValueError("update_step: no batch (None is only for a data-parallel rank without rows)")
    micro_batches = batch.micro_batches(config.micro_batch_size) if batch is not None else []
    counts = torch.tensor(
        [0, 0] if batch is None else [batch.input_ids.shape[0], batch.completion_mask.sum()], dtype=torch.float64
    )
    if replicas is not None:
        counts = replicas.sum(counts)
    normalizer = Normalizer(sequences=int(counts[0]), tokens=int(counts[1]))
    world_size = replicas.world_size if replicas is not None else 1
    scorer = (
        replicas.scorer
        if replicas is not None
        else PolicyLogProbs(model, config.temperature, config.logprob_chunk_tokens)
    )

    # 1. Reference log-probs, once per batch (the reference never changes).
    ref_logps: list[torch.Tensor | None] = [mb.ref_logp for mb in micro_batches]
    if config.beta > 0:
        ref_logps = [ref if ref is not None else _reference_log_probs(model, mb, config)
                     for mb, ref in zip(micro_batches, ref_logps, strict=True)]  # fmt: skip

    # 2. mu passes: log-probs under the current policy, loss against the fixed behaviour log-probs; the
    #    gradients of every micro-batch accumulate before the one optimizer step.
    params = [p for group in optimizer.param_groups for p in group["params"]]
    history: list[dict[str, float]] = []
    for _ in range(config.mu):
        optimizer.zero_grad(set_to_none=True)
        sums = LossSums()
        for index, (mb, ref_logp) in enumerate(zip(micro_batches, ref_logps, strict=True)):
            last = index == len(micro_batches) - 1
            sync = contextlib.nullcontext() if replicas is None or last else replicas.no_sync()
            with sync:
                new_logp = scorer(mb.input_ids, mb.attention_mask, mb.completion_mask)  # (b, t)
                loss, part = grpo_loss(
                    new_logp, mb.old_logp, ref_logp, mb.advantages, mb.completion_mask, config, normalizer
                )
                # A non-finite loss still goes through backward: under data parallelism every rank must join
                # the same all-reduces, and the summed loss below tells every rank alike (then all raise).
                (loss * world_size).backward()  # type: ignore[no-untyped-call]
            sums += part
        if not micro_batches:
            _join_with_zero_gradient(scorer, model)
        if replicas is not None:
            sums = _summed_over_ranks(sums, replicas)
        if not math.isfinite(sums.loss):
            optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(
                f"GRPO loss is {sums.loss}: look for behaviour log-probs taken at another temperature "
                "or from another model, or a diverging policy (lower learning_rate)"
            )

        # 3. Clip the gradients, then step (never with a non-finite gradient: the weights stay sound).
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        if not torch.isfinite(grad_norm):
            optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(f"GRPO gradient norm is {grad_norm.item()}: the step was not taken")
        optimizer.step()
        history.append(sums.metrics() | {"grad_norm": grad_norm.item()})

    # 4. Metrics: means over the passes.
    optimizer.zero_grad(set_to_none=True)
    averaged = {name: math.fsum(h[name] for h in history) / len(history) for name in history[0]}
    return averaged | {"passes": float(len(history)), "micro_batches": float(len(micro_batches))}


def _join_with_zero_gradient(scorer: torch.nn.Module, model: torch.nn.Module) -> None:
    """One synchronised backward that adds nothing: DDP needs every rank in every gradient all-reduce,
    and a gradient only flows from a forward that used the adapter (so: one real token, weighted 0)."""
    device = next(model.parameters()).device
    tokens = torch.zeros((1, 2), dtype=torch.long, device=device)
    logp = scorer(tokens, torch.ones_like(tokens), torch.tensor([[0, 1]], device=device))  # (1, 2)
    (logp.sum() * 0.0).backward()


def _summed_over_ranks(sums: LossSums, replicas: Replicas) -> LossSums:
    """Every rank's loss sums added up (ratio_max: the largest), so each rank logs the whole batch's."""
    names = LossSums.summed_fields()
    totals = replicas.sum(torch.tensor([getattr(sums, n) for n in names], dtype=torch.float64))
    ratio_max = replicas.maximum(torch.tensor([sums.ratio_max], dtype=torch.float64))
    return LossSums(**dict(zip(names, totals.tolist(), strict=True)), ratio_max=float(ratio_max[0]))


def _reference_log_probs(model: torch.nn.Module, batch: GRPOBatch, config: GRPOConfig) -> torch.Tensor:
    """Log-probs under the reference policy (the adapter switched off), without grad."""
    with torch.no_grad(), reference_policy(model):
        return token_log_probs(
            model, batch.input_ids, batch.attention_mask, batch.completion_mask, config.temperature,
            config.logprob_chunk_tokens,
        )  # fmt: skip
