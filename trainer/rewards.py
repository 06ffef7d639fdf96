"""Rewards: one number per candidate from its measured outcome. Pure functions, no bus, no torch.

Data flow: a `Result` (and the archive's `outside_stage` flag) becomes an `Outcome`; `reward` scores one
outcome under a `RewardConfig`; `group_rewards` scores one GRPO group and applies noise ties.

Presets (`RewardConfig.preset`) for an `ok` outcome, whose median rate is in its problem's metric (GFLOPS, or
GB/s for a memory-bound problem):
- `paper`: its median rate.
- `log_speedup`: ln(median rate / naive baseline rate), the speedup floored at `min_speedup`; the baseline is
  the problem's naive reference measured on the node that measured the outcome (`Result.naive_rate`), or a
  fixed `naive_baseline_gflops`. Comparable across problems and nodes: the preset for a mix of problems.
- `normalized`: median GFLOPS / the node's peak GFLOPS (a fraction of peak; GFLOPS problems only).
Every other verdict gets its penalty (`RewardConfig.penalties` over the preset's defaults), always at
or below the lowest reward a correct program can get: a correct program never scores below a broken one.

Dropped (None, never charged to the policy, excluded from its group's statistics): `infra_error` (our
fault), `lost` (no result came back in time), an outcome whose `outside_stage` is still unknown when
the flag could change its reward, and an `ok` outcome with a broken measurement (NaN policy below).

NaN policy: NaN or infinite numbers never become a reward. An `ok` outcome whose rates are not finite,
are negative, or are not ordered min <= median <= max is a broken measurement; the bencher should never
report one, so it is our fault and is dropped like `infra_error` (a dropped sample carries no gradient,
so the policy cannot exploit it). So is an `ok` outcome under `log_speedup` whose node did not measure the
naive baseline (naive_rate 0): its speedup is unknown, never guessed. Rates of other verdicts are never
read. A configuration with a non-finite number is refused at start.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from bus.config import ConfigError
from bus.schema import Result, Verdict

NO_CODE: Final = "no_code"
"""Trainer-only verdict: the completion holds no code, so nothing was sent to a bencher."""
LOST: Final = "lost"
"""Trainer-only verdict: the candidate was sent but no result came back in time."""
VERDICTS: Final[frozenset[str]] = frozenset({*(v.value for v in Verdict), NO_CODE, LOST})
"""Every verdict an `Outcome` may carry."""
PENALIZED: Final[tuple[str, ...]] = (
    NO_CODE,
    Verdict.REJECTED,
    Verdict.COMPILE_ERROR,
    Verdict.TIMEOUT,
    Verdict.CRASH,
    Verdict.RESOURCE_LIMIT,
    Verdict.WRONG_ANSWER,
)
"""The verdicts charged to the policy with a penalty (the keys of `RewardConfig.penalties`)."""
DROPPED: Final[frozenset[str]] = frozenset({Verdict.INFRA_ERROR, LOST})
"""The verdicts never charged to the policy."""


class RewardPreset(enum.StrEnum):
    PAPER = "paper"
    """Median rate (GFLOPS or GB/s) when correct."""
    LOG_SPEEDUP = "log_speedup"
    """ln(median rate / the naive baseline's rate) when correct."""
    NORMALIZED = "normalized"
    """Median GFLOPS / peak_gflops when correct."""


class OutsideStagePolicy(enum.StrEnum):
    VIOLATION = "violation"
    """Scored at most as a policy violation (the `rejected` penalty)."""
    ZERO = "zero"
    """Scored at most 0 (a failing outcome keeps its lower penalty)."""
    IGNORE = "ignore"
    """Scored as if it stayed inside its stage."""


DEFAULT_PENALTIES: Final[Mapping[RewardPreset, Mapping[str, float]]] = {
    # The paper's tiers: a format or forbidden-library violation costs most, a wrong answer least
    # (it compiled, ran and finished). resource_limit is a crash caused by one of our limits.
    RewardPreset.PAPER: {
        NO_CODE: -100.0,
        Verdict.REJECTED: -100.0,
        Verdict.COMPILE_ERROR: -40.0,
        Verdict.TIMEOUT: -30.0,
        Verdict.CRASH: -20.0,
        Verdict.RESOURCE_LIMIT: -20.0,
        Verdict.WRONG_ANSWER: -10.0,
    },
    # Correct programs score ln(speedup) >= ln(min_speedup) = -4.6 by default: the tiers sit below that.
    RewardPreset.LOG_SPEEDUP: {
        NO_CODE: -10.0,
        Verdict.REJECTED: -10.0,
        Verdict.COMPILE_ERROR: -8.0,
        Verdict.TIMEOUT: -7.0,
        Verdict.CRASH: -6.0,
        Verdict.RESOURCE_LIMIT: -6.0,
        Verdict.WRONG_ANSWER: -5.0,
    },
    # Correct programs score a fraction of peak, in [0, ~1]: the paper's tiers divided by 100.
    RewardPreset.NORMALIZED: {
        NO_CODE: -1.0,
        Verdict.REJECTED: -1.0,
        Verdict.COMPILE_ERROR: -0.4,
        Verdict.TIMEOUT: -0.3,
        Verdict.CRASH: -0.2,
        Verdict.RESOURCE_LIMIT: -0.2,
        Verdict.WRONG_ANSWER: -0.1,
    },
}


@dataclass(frozen=True)
class RewardConfig:
    """`[rewards]`: how an outcome becomes a reward."""

    preset: RewardPreset = RewardPreset.PAPER
    """What a correct program scores: `paper`, `log_speedup` or `normalized` (see RewardPreset)."""
    penalties: Mapping[str, float] = field(default_factory=dict)
    """Penalties by verdict (keys from PENALIZED) that replace the preset's defaults (DEFAULT_PENALTIES);
    verdicts not named keep the default. Each must be at or below the lowest correct reward (`ok_floor`)."""
    naive_baseline_gflops: float = 0.0
    """`log_speedup`: a fixed rate of the naive program that speedups are measured against, for a run on one
    problem; 0 (the default): each result's `naive_rate`, the problem's naive reference measured on the node
    that measured the result (a mix of problems needs this)."""
    min_speedup: float = 0.01
    """`log_speedup`: a correct program slower than this fraction of the baseline scores as this one, so
    0 GFLOPS keeps a finite reward (ln 0.01 = -4.6) that stays above every penalty."""
    peak_gflops: float = 0.0
    """`normalized`: the node's peak GFLOPS (required > 0 there); an outcome's own `peak_gflops`, when
    known, takes precedence."""
    outside_stage: OutsideStagePolicy = OutsideStagePolicy.VIOLATION
    """How a result using techniques outside its stage scores: `violation` (at most the `rejected`
    penalty), `zero` (at most 0) or `ignore` (as usual)."""
    noise_ties: bool = True
    """Within a group, correct results the measurements cannot tell apart share one reward (the mean of
    theirs), so the policy is not pushed towards whichever was luckier (rule in `tie_clusters`)."""

    def __post_init__(self) -> None:
        _coerce_enum(self, "preset", RewardPreset)
        _coerce_enum(self, "outside_stage", OutsideStagePolicy)
        unknown = sorted(set(self.penalties) - set(PENALIZED))
        if unknown:
            raise ConfigError(
                f"rewards.penalties has unknown verdicts {unknown}; valid: {', '.join(PENALIZED)} "
                "(ok is scored by the preset, infra_error and lost are never charged)"
            )
        numbers = {
            "naive_baseline_gflops": self.naive_baseline_gflops,
            "min_speedup": self.min_speedup,
            "peak_gflops": self.peak_gflops,
            **{f"penalties.{k}": v for k, v in self.penalties.items()},
        }
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"rewards.{name} = {value!r} must be a finite number")
        if self.naive_baseline_gflops < 0:
            raise ConfigError("rewards.naive_baseline_gflops must be >= 0 (0: each node's measured naive_rate)")
        if not 0 < self.min_speedup <= 1:
            raise ConfigError(f"rewards.min_speedup = {self.min_speedup} must be in (0, 1]")
        if self.preset is RewardPreset.NORMALIZED and self.peak_gflops <= 0:
            raise ConfigError(
                "rewards.preset = 'normalized' needs peak_gflops > 0: set it to the node's peak "
                "(hpcrl_bencher_peak_gflops)"
            )
        floor = self.ok_floor
        too_high = {v: p for v, p in self.all_penalties.items() if p > floor}
        if too_high:
            raise ConfigError(
                f"rewards.penalties {too_high} are above the lowest reward of a correct program "
                f"({floor:.4g} under '{self.preset}'): lower them to {floor:.4g} or less"
            )

    @property
    def all_penalties(self) -> dict[str, float]:
        """The penalty of every verdict in PENALIZED: the preset's defaults, then `penalties`."""
        return {str(k): float(v) for k, v in {**DEFAULT_PENALTIES[self.preset], **self.penalties}.items()}

    @property
    def ok_floor(self) -> float:
        """The lowest reward a correct program can get under the preset."""
        return math.log(self.min_speedup) if self.preset is RewardPreset.LOG_SPEEDUP else 0.0


def _coerce_enum(config: object, name: str, kind: type[enum.StrEnum]) -> None:
    """TOML gives strings: turn them into the enum, or name the valid values."""
    value = getattr(config, name)
    try:
        object.__setattr__(config, name, kind(value))
    except ValueError:
        raise ConfigError(f"rewards.{name} = {value!r}; valid: {', '.join(m.value for m in kind)}") from None


@dataclass(frozen=True)
class Outcome:
    """What the trainer knows about one candidate when it scores it (independent of the bus messages)."""

    verdict: str
    """A `Verdict`, or the trainer's own `no_code` / `lost`."""
    rate_median: float = 0.0
    """Median rate of the timed calls in the problem's metric, GFLOPS or GB/s (read for `ok` only)."""
    rate_min: float | None = None
    """Slowest timed call; None: no spread known (the median stands alone)."""
    rate_max: float | None = None
    """Fastest timed call; None: no spread known."""
    outside_stage: bool | None = None
    """The archive found techniques its stage does not permit; None: the archive has not said yet."""
    peak_gflops: float | None = None
    """Peak of the node that measured it (`normalized`); None: the config's `peak_gflops`."""
    naive_rate: float = 0.0
    """The naive reference's rate on the node that measured it (`log_speedup`); 0: not measured."""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Outcome.verdict = {self.verdict!r}; valid: {', '.join(sorted(VERDICTS))}")
        if self.peak_gflops is not None and not (math.isfinite(self.peak_gflops) and self.peak_gflops > 0):
            raise ValueError(f"Outcome.peak_gflops = {self.peak_gflops!r} must be a finite number > 0 (or None)")

    @classmethod
    def from_result(cls, result: Result, outside_stage: bool | None = None) -> Outcome:
        """A bencher's result; `outside_stage` comes from the archive's `archived` event."""
        return cls(result.verdict, *result.rates, outside_stage=outside_stage, naive_rate=result.naive_rate)

    @property
    def spread(self) -> tuple[float, float]:
        """[min, max] rate of the timed calls; the median alone when no spread is known."""
        low = self.rate_median if self.rate_min is None else self.rate_min
        high = self.rate_median if self.rate_max is None else self.rate_max
        return low, high

    @property
    def measured(self) -> bool:
        """An `ok` outcome whose figures can be trusted: finite, >= 0, min <= median <= max (NaN policy)."""
        low, high = self.spread
        figures = (low, self.rate_median, high)
        return all(math.isfinite(f) and f >= 0 for f in figures) and low <= self.rate_median <= high


def reward(outcome: Outcome, config: RewardConfig) -> float | None:
    """The reward of one outcome, or None when it is dropped (never charged to the policy)."""
    return _score(outcome, config)[0]


def group_rewards(outcomes: Sequence[Outcome], config: RewardConfig) -> list[float | None]:
    """The rewards of one GRPO group, in order; with `noise_ties`, each tie cluster shares its mean."""
    scored = [_score(outcome, config) for outcome in outcomes]
    rewards = [value for value, _ in scored]
    if not config.noise_ties:
        return rewards
    # Only correct programs scored on their own speed tie; a capped outside-stage result keeps its cap.
    tieable = {i: value for i, (value, may_tie) in enumerate(scored) if may_tie and value is not None}
    positions = list(tieable)
    for cluster in tie_clusters([outcomes[i] for i in positions]):
        members = [positions[c] for c in cluster]
        shared = math.fsum(tieable[i] for i in members) / len(members)
        for i in members:
            rewards[i] = shared
    return rewards


def tie_clusters(outcomes: Sequence[Outcome]) -> list[list[int]]:
    """Indices of measured `ok` outcomes grouped into clusters the measurements cannot tell apart.

    Two outcomes are indistinguishable when either one's median lies within the other's [min, max].
    Clusters are built from the fastest down: the fastest unclustered outcome leads a new cluster, and
    every slower one indistinguishable from that leader joins it. Comparing with the leader only (never
    with the other members) keeps ties from chaining: 10, 9.9, 9.8, ... never all become one cluster.
    Equal medians are taken in input order. Every outcome is in exactly one cluster (alone if need be).
    """
    order = sorted(range(len(outcomes)), key=lambda i: -outcomes[i].rate_median)
    clusters: list[list[int]] = []
    for i in order:
        if clusters and _indistinguishable(outcomes[clusters[-1][0]], outcomes[i]):
            clusters[-1].append(i)
        else:
            clusters.append([i])
    return clusters


def _indistinguishable(a: Outcome, b: Outcome) -> bool:
    (a_low, a_high), (b_low, b_high) = a.spread, b.spread
    return a_low <= b.rate_median <= a_high or b_low <= a.rate_median <= b_high


def _score(outcome: Outcome, config: RewardConfig) -> tuple[float | None, bool]:
    """(reward, or None when dropped; whether it is a correct program's own score, which may tie)."""
    if outcome.verdict in DROPPED:
        return None, False
    if outcome.verdict == Verdict.OK:
        value = _ok_reward(outcome, config) if outcome.measured else None
        if value is None:
            return None, False  # NaN policy: a broken or unbaselined measurement is our fault, never the policy's
    else:
        value = config.all_penalties[outcome.verdict]
    # A completion without code uses no technique at all: the stage policy has nothing to judge.
    if (
        outcome.verdict == NO_CODE
        or config.outside_stage is OutsideStagePolicy.IGNORE
        or outcome.outside_stage is False
    ):
        return value, outcome.verdict == Verdict.OK
    cap = config.all_penalties[Verdict.REJECTED] if config.outside_stage is OutsideStagePolicy.VIOLATION else 0.0
    if outcome.outside_stage is None:
        # Not known yet: scored only when the flag could not change the reward (it is at or below the
        # cap already); otherwise dropped like a lost candidate, never guessed in the policy's favour.
        return (value if value <= cap else None), False
    return min(value, cap), False


def _ok_reward(outcome: Outcome, config: RewardConfig) -> float | None:
    rate = outcome.rate_median
    match config.preset:
        case RewardPreset.PAPER:
            return rate
        case RewardPreset.LOG_SPEEDUP:
            baseline = config.naive_baseline_gflops or outcome.naive_rate
            if not (math.isfinite(baseline) and baseline > 0):
                return None
            return math.log(max(rate / baseline, config.min_speedup))
        case RewardPreset.NORMALIZED:
            peak = outcome.peak_gflops if outcome.peak_gflops is not None else config.peak_gflops
            return rate / peak
