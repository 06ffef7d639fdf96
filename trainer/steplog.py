"""The trainer's step record (`StepRecord`) and its log, `train.jsonl`: one JSON record per step, appended and
flushed as each step ends. The same record feeds the log, the Prometheus gauges (trainer/metrics.py) and
the `trainer.step` event, so the three never disagree.

A line is a record only once its newline is written. A run killed mid-write (SIGKILL, a lost node) leaves
a torn last line, and a reader of a live run can see a line half-written (the kernel copies a write that
crosses a page boundary a page at a time). Every reader here skips an unterminated last line; the
trainer's resume also drops it, so the redone step is logged once, whole.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # torch stays out of readers of the log (the demo's summary, `hpcrl train-report`)
    from trainer.grpo import AdvantageStats

LOG_FILE = "train.jsonl"


@dataclass(frozen=True)
class StepRecord:
    """What one step did. Every float figure here is also a gauge `hpcrl_trainer_<name>` (trainer/metrics.py)."""

    step: int
    policy_version: int
    """The policy version after the step's update."""
    stage: int
    """The stage the batch's prompts were built for (0: the problem is not staged)."""
    verdicts: dict[str, int]
    """Samples of the step by verdict (no_code and lost included)."""
    programs: list[str]
    """A short digest of each sample's code: a policy collapsing onto one program shows here however its
    reward looks (the demo fails on it)."""
    advantage: AdvantageStats
    """The rewards' statistics (reward_mean, reward_std, reward_max, zero-std groups, ...)."""
    update: dict[str, float] = field(default_factory=dict)
    """trainer.grpo LOSS_METRICS and UPDATE_METRICS of the update; empty when no sample carried signal."""
    gflops_mean: float = 0.0
    """Mean measured GFLOPS of the step's scored samples (a failure counts as 0)."""
    gflops_max: float = 0.0
    """Best measured GFLOPS of the step."""
    completion_length_mean: float = 0.0
    """Mean completion length in tokens."""
    tokens_per_s: float = 0.0
    """Generation throughput in tokens per second."""
    generate_s: float = 0.0
    """Seconds spent generating the step's samples (during the previous step's wait when generated ahead)."""
    wait_s: float = 0.0
    """Seconds the trainer waited for rewards."""
    update_s: float = 0.0
    """Seconds of the GRPO update."""
    step_s: float = 0.0
    """Seconds of the whole step."""
    idle_ratio: float = 0.0
    """Share of the step the trainer spent waiting for the benchers."""
    bencher_idle_ratio: float = 0.0
    """Share of the benchers' time during the step not spent on this run's fresh candidates
    (1 - their compile + run seconds / (live workers x step seconds))."""
    entropy: float = 0.0
    """Per-token entropy of the sampling distribution, estimated by the sampled tokens' mean -log p."""
    lost: int = 0
    """Samples whose result did not come back in time (dropped from their groups)."""
    staleness: int = 0
    """Policy versions between the samples' policy and the one being updated."""
    lr: float = 0.0
    """Learning rate for the next update (grpo.learning_rate once warm-up is over)."""

    def to_json(self) -> dict[str, Any]:
        """The flat JSON line of train.jsonl: this record's fields, the advantage statistics and the update's."""
        own = {name: value for name, value in asdict(self).items() if name not in ("advantage", "update")}
        stats = {k: v for k, v in asdict(self.advantage).items() if isinstance(v, int | float)}
        return own | stats | self.update

    def figures(self) -> dict[str, float]:
        """Every number of the record by name (what the gauges show)."""
        numbers = {k: v for k, v in self.to_json().items() if isinstance(v, int | float) and not isinstance(v, bool)}
        return {k: float(v) for k, v in numbers.items()}


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """The complete step records of a run, in step order (a missing log is an empty run)."""
    path = run_dir / LOG_FILE
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def open_resumed_at(run_dir: Path, step: int) -> TextIO:
    """The step log, open for appending, keeping only the complete records of steps up to `step` (the
    checkpoint's): a step logged by a run killed before its checkpoint is redone, and must appear once."""
    path = run_dir / LOG_FILE
    kept = [record for record in read_log(run_dir) if record["step"] <= step]
    path.write_text("".join(json.dumps(record) + "\n" for record in kept))
    return path.open("a")


def append(log: TextIO, record: StepRecord) -> None:
    """One step's record, flushed: a reader (the demo, `hpcrl train-report`) sees it at once."""
    log.write(json.dumps(record.to_json()) + "\n")
    log.flush()
