"""Prometheus metrics of the trainer, one gauge per figure of the step record (docs/trainer.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from trainer.rewards import VERDICTS
from trainer.steplog import StepRecord

STEP_FIGURES = {
    "reward_mean": "Mean reward of the step's scored samples.",
    "reward_std": "Standard deviation of the step's rewards.",
    "reward_max": "Best reward of the step.",
    "gflops_mean": "Mean measured GFLOPS of the step's scored samples (a failure counts as 0).",
    "gflops_max": "Best measured GFLOPS of the step.",
    "kl": "Mean k3 KL to the reference policy over the update.",
    "loss": "GRPO loss of the update.",
    "clip_ratio_region": "Share of completion tokens whose importance ratio was clipped.",
    "completion_length_mean": "Mean completion length in tokens.",
    "tokens_per_s": "Generation throughput in tokens per second.",
    "generate_s": "Seconds spent generating the step's samples (0 when generated ahead).",
    "wait_s": "Seconds the trainer waited for rewards.",
    "update_s": "Seconds of the GRPO update.",
    "step_s": "Seconds of the whole step.",
    "idle_ratio": "Share of the step the trainer spent waiting for the benchers.",
    "bencher_idle_ratio": "Share of the benchers' time during the step not spent on this run's fresh candidates "
    "(1 - their compile + run seconds / (live workers x step seconds)).",
    "entropy": "Per-token entropy of the sampling distribution, estimated by the sampled tokens' mean -log p.",
    "lost": "Samples of the step whose result did not come back in time (dropped from their groups).",
    "staleness": "Policy versions between the samples' policy and the one being updated.",
    "lr": "Learning rate for the next update (grpo.learning_rate once warm-up is over).",
    "frac_reward_zero_std": "Share of groups whose rewards all tie (no learning signal).",
}
GAUGES = {name: Gauge(f"hpcrl_trainer_{name}", text) for name, text in STEP_FIGURES.items()}
STEPS = Counter("hpcrl_trainer_steps_total", "GRPO updates made.")
SAMPLES = Counter("hpcrl_trainer_samples_total", "Samples scored, by verdict.", ["verdict"])
for _verdict in sorted(VERDICTS):
    SAMPLES.labels(_verdict)
STEP_NUMBER = Gauge("hpcrl_trainer_step", "The step last completed.")
PENDING = Gauge("hpcrl_trainer_pending_candidates", "Candidates of the current step submitted and not yet back.")
VLLM_SERVER_RETRIES = Counter(
    "hpcrl_trainer_vllm_server_retries_total",
    "Requests to the vLLM server tried again after a refused connection, a timeout or HTTP 408/429/5xx.",
)


def observe(record: StepRecord) -> None:
    STEPS.inc()
    STEP_NUMBER.set(record.step)
    figures = record.figures()
    for name, gauge in GAUGES.items():
        if name in figures:  # the update's figures are missing from a step without an update
            gauge.set(figures[name])
    for verdict, count in record.verdicts.items():
        SAMPLES.labels(verdict).inc(count)
