"""The online GRPO loop: generate -> submit -> (generate ahead) -> wait for rewards -> update -> log.

One step, top to bottom (`Trainer.step`):
  1. prompts from each problem's current stage (stage events applied between steps);
  2. sample G completions per prompt (or take the batch generated ahead during the previous wait);
  3. extract the code; a completion without code is scored `no_code` at once; submit the rest;
  4. with max_staleness 1, generate the next step's batch while the benchers measure this one;
  5. wait for the results (bounded: lost candidates are dropped, never charged), then briefly for the
     archive's verdict on each candidate's techniques (outside_stage);
  6. rewards -> group advantages -> GRPO update (mu passes) -> policy version + 1;
  7. log (JSONL, Prometheus, a `trainer.step` event) and checkpoint every few steps.
A checkpoint is taken between steps, when nothing is in flight, so no reward is counted twice: the
batch generated ahead is saved whole and resubmitted under the same ids (the bus answers them from its
journal), and rank 0 regenerates later steps from its restored RNG. Data-parallel, the other ranks are
seeded by rank, so their share of a regenerated step is new samples (measured again, counted once).
With several ranks (trainer/distributed.py), this loop runs on rank 0 and the others `follow` it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bus.client import BusClient
from bus.config import HpcrlConfig
from bus.schema import Archived, Result, Role, StageChange, TrainerStep, Verdict
from trainer import checkpoint, metrics, steplog
from trainer.backends import backend_for
from trainer.config import TrainerConfig
from trainer.distributed import Placement, Ranks, Update, device_of
from trainer.generation import Backend, Completion, HFBackend, extract_code, render_prompt
from trainer.grpo import AdvantageStats, GRPOConfig, LossAggregation, advantages, optimizer_for, scheduler_for
from trainer.policy import load_policy
from trainer.prompts import build_prompt, load_problem_text
from trainer.rewards import LOST, NO_CODE, Outcome, group_rewards
from trainer.tasks import schedule

log = logging.getLogger(__name__)


@dataclass
class Sample:
    completion: Completion
    candidate_id: str
    code: str | None
    result: Result | None = None
    outside_stage: bool | None = None


@dataclass(frozen=True)
class GroupTask:
    """What one prompt (GRPO group) of a batch asked for: its problem, size, and that problem's stage then."""

    problem: str
    size: int
    stage: int


@dataclass
class Batch:
    step: int
    tasks: list[GroupTask]
    """One per group, in group order."""
    samples: list[Sample]
    generate_s: float

    @property
    def stage(self) -> int:
        """The lowest stage among the batch's problems (the step's stage when it trains on one problem)."""
        return min(task.stage for task in self.tasks)

    def task_of(self, sample: Sample) -> GroupTask:
        return self.tasks[sample.completion.group]

    def to_json(self) -> dict[str, Any]:
        """The sampled batch (before submission) as a checkpoint keeps it."""
        return {
            "step": self.step,
            "tasks": [asdict(task) for task in self.tasks],
            "generate_s": self.generate_s,
            "samples": [
                {"candidate_id": s.candidate_id, "code": s.code, "completion": _json_of(s.completion)}
                for s in self.samples
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], single: GroupTask) -> Batch:
        """`single`: the run's one problem and size, for a batch saved before batches named their tasks."""
        samples = []
        for sample in data["samples"]:
            c = sample["completion"]
            completion = Completion(
                group=int(c["group"]),
                text=str(c["text"]),
                prompt_ids=tuple(c["prompt_ids"]),
                completion_ids=tuple(c["completion_ids"]),
                behaviour_logprobs=tuple(c["behaviour_logprobs"]),
                policy_version=int(c["policy_version"]),
            )
            samples.append(Sample(completion, sample["candidate_id"], sample["code"]))
        groups = 1 + max((s.completion.group for s in samples), default=-1)
        saved = data.get("tasks") or [{**asdict(single), "stage": data["stage"]}] * groups
        return cls(data["step"], [GroupTask(**task) for task in saved], samples, data["generate_s"])

    def groups(self) -> list[list[Sample]]:
        """The samples of each prompt (GRPO group), in prompt order: the rows of rewards and advantages."""
        by_group: dict[int, list[Sample]] = {}
        for sample in self.samples:
            by_group.setdefault(sample.completion.group, []).append(sample)
        return [by_group[group] for group in sorted(by_group)]


def _json_of(completion: Completion) -> dict[str, Any]:
    """A completion as JSON holds it (tuples as lists), so a saved batch equals its reloaded record."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(completion).items()}


def rows_for_update(
    batch: Batch, advantage_rows: list[list[float | None]], grpo: GRPOConfig
) -> list[tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...], float]]:
    """(prompt ids, completion ids, behaviour log-probs, advantage) of each sample the update trains on:
    every rewarded sample with a completion, except that with beta = 0 a sample of advantage 0 is left out
    under token_mean and sequence_mean (it adds nothing but a share of the normaliser: DAPO's dynamic
    sampling). With beta > 0 it still carries the KL term, and constant_normalizer divides by every
    sampled sequence (Dr. GRPO: a normaliser that does not change from batch to batch), so then it stays."""
    keep_zero = grpo.beta > 0 or grpo.loss_aggregation == LossAggregation.CONSTANT_NORMALIZER
    rows = []
    for group, row in zip(batch.groups(), advantage_rows, strict=True):
        for sample, advantage in zip(group, row, strict=True):
            c = sample.completion
            if advantage is not None and (advantage != 0.0 or keep_zero) and c.completion_ids:
                rows.append((c.prompt_ids, c.completion_ids, c.behaviour_logprobs, advantage))
    return rows


@dataclass
class StepTimes:
    generate_s: float = 0.0
    wait_s: float = 0.0
    update_s: float = 0.0
    staleness: int = 0
    """Policy versions between the oldest sample of the step and the policy being updated."""


@dataclass
class Learner:
    """What every rank holds: the policy, its optimizer and schedule, a generation backend, and the job's
    ranks (trainer/distributed.py) that sampling and updates are spread over."""

    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    backend: Backend
    ranks: Ranks

    @classmethod
    def load(cls, config: TrainerConfig, placement: Placement, resume: Path | None) -> Learner:
        """The policy from `resume` (a checkpoint: adapter, optimizer, scheduler) or fresh. Every rank seeds
        alike first, so a fresh adapter starts the same everywhere, then by rank, so ranks sample apart."""
        torch.manual_seed(config.loop.seed)
        device = device_of(config.policy.torch_device, placement)
        model, tokenizer = load_policy(config.policy, resume / "adapter" if resume else None, device)
        optimizer = optimizer_for(model, config.grpo)
        scheduler = scheduler_for(optimizer, config.grpo)
        if resume:
            checkpoint.load_optimizer(resume, optimizer, scheduler)
        if not placement.is_main:
            torch.manual_seed(config.loop.seed + placement.rank)
        # Only the hf backend samples on every rank; a vLLM engine or server is rank 0's alone.
        backend: Backend = (
            backend_for(config, model, tokenizer, Path(config.loop.run_dir).expanduser())
            if placement.is_main
            else HFBackend(model, tokenizer, config.loop.generation_chunk_sequences)
        )
        ranks = Ranks(placement, model, backend, optimizer, scheduler, config.grpo, device)
        return cls(model, tokenizer, optimizer, scheduler, backend, ranks)


def follow(config: TrainerConfig, placement: Placement) -> int:
    """A rank other than 0: the same policy as rank 0, sampling and updating on rank 0's commands."""
    learner = Learner.load(config, placement, checkpoint.latest(Path(config.loop.run_dir).expanduser()))
    learner.ranks.follow()
    learner.ranks.close()
    return 0


class Trainer:
    def __init__(
        self,
        hpcrl: HpcrlConfig,
        config: TrainerConfig,
        stop: threading.Event | None = None,
        placement: Placement | None = None,
    ) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.run_dir = Path(config.loop.run_dir).expanduser()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if config.loop.threads:
            torch.set_num_threads(config.loop.threads)
        resume = checkpoint.latest(self.run_dir)
        learner = Learner.load(config, placement or Placement(), resume)
        self.model, self.tokenizer = learner.model, learner.tokenizer
        self.optimizer, self.scheduler = learner.optimizer, learner.scheduler
        self.backend, self.ranks = learner.backend, learner.ranks
        self.state = checkpoint.TrainerState()
        if resume:
            self.state = checkpoint.load_state(resume)
            checkpoint.load_rng(resume)
            log.info("event=resumed checkpoint=%s step=%d", resume, self.state.step)
        # A resumed model holds its checkpoint's adapter: the backend serves that version from the start.
        self.backend.load_policy(self.model, self.state.policy_version)
        self.tasks = config.tasks
        self.problem_texts = {t.problem: load_problem_text(t.problem, config.problem_dirs) for t in self.tasks}
        self.client = BusClient(
            hpcrl.bus,
            hpcrl.client,
            name=f"trainer-{config.loop.run}",
            role=Role.TRAINER,
            subscribe=["stage.", "archive."],
        )
        self.outside: dict[str, bool] = {}
        """Archive verdicts on techniques, by candidate id (they may arrive before we look)."""
        self.log_file = steplog.open_resumed_at(self.run_dir, self.state.step)
        (self.run_dir / "config.json").write_text(json.dumps(config.resolved(), indent=2, default=str))

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        self._read_stages(initial=True)
        # A resumed run submits the batch its checkpoint generated ahead: the same samples, the same ids.
        single = GroupTask(self.tasks[0].problem, self.tasks[0].size, 0)
        ahead = Batch.from_json(self.state.pending, single) if self.state.pending else None
        try:
            while self.state.step < self.config.loop.steps and not self.stop.is_set():
                ahead = self.step(ahead)
            self._checkpoint(ahead)
        finally:
            self.ranks.stop()
            self.ranks.close()
        self.client.close()
        self.log_file.close()
        return 0

    def step(self, ahead: Batch | None) -> Batch | None:
        number = self.state.step + 1
        times = StepTimes()
        # 1-2. Prompts from the current stage; samples (unless generated ahead during the last wait).
        self._read_stages()
        batch = ahead or self._generate(number)
        times.generate_s = batch.generate_s
        # 3. Submit what has code.
        self._submit(batch)
        # 4. Generate the next step while the benchers measure this one.
        next_batch = None
        if self.config.loop.max_staleness >= 1 and number < self.config.loop.steps:
            next_batch = self._generate(number + 1)
        # 5. Wait for the results, then (briefly) for the archive's technique verdicts.
        started = time.monotonic()
        self._await(batch)
        times.wait_s = time.monotonic() - started
        # 6. Rewards -> advantages -> update.
        started = time.monotonic()
        rewards, outcomes = self._rewards(batch)
        advantage_rows, stats = advantages(rewards, self.config.grpo.scale_rewards)
        times.staleness = self.state.policy_version - min(s.completion.policy_version for s in batch.samples)
        update = self._update(batch, advantage_rows)
        times.update_s = time.monotonic() - started
        self.state.step = number
        self.state.policy_version += 1 if update else 0
        self.backend.load_policy(self.model, self.state.policy_version)
        # 7. Log, publish, checkpoint.
        self._log(batch, outcomes, rewards, stats, update, times)
        if number % self.config.loop.checkpoint_every == 0:
            self._checkpoint(next_batch)
        return next_batch

    # ------------------------------------------------------------ phases

    def _read_stages(self, initial: bool = False) -> None:
        events = self.client.latest(["stage."], timeout_s=10.0) if initial else self.client.next_events(0.0)
        for event in events or []:
            if isinstance(event, StageChange):
                self.state.stages[event.problem] = {"stage": event.to_stage, "techniques": list(event.techniques)}
                log.info("event=stage problem=%s stage=%d", event.problem, event.to_stage)
            elif isinstance(event, Archived):
                self.outside[event.candidate_id] = event.outside_stage
        for lost in self.client.take_losses():
            # Evicted from the broker's journal before we read them (docs/trainer.md): a lost result leaves
            # its sample `lost` (dropped, never charged); a lost stage change is superseded by the newest,
            # which is never evicted. Counted in hpcrl_bus_events_lost_total.
            log.error(
                "event=events_lost topic=%s after_bus_seq=%d through_bus_seq=%d count=%d exact=%s",
                lost.topic or "*",
                lost.after_bus_seq,
                lost.through_bus_seq,
                lost.count,
                lost.exact,
            )

    def _generate(self, number: int) -> Batch:
        tasks, prompts = [], []
        for task in schedule(self.tasks, number, self.config.loop.prompts_per_step):
            # Each prompt carries its own problem's stage: the archive stages problems independently.
            view = self.state.stages.get(task.problem)
            tasks.append(GroupTask(task.problem, task.size, int(view["stage"]) if view else 0))
            text = build_prompt(self.problem_texts[task.problem], view["techniques"] if view else None)
            prompts.append(render_prompt(self.tokenizer, text))
        started = time.monotonic()
        completions = self.ranks.sample(
            prompts,
            self.config.grpo.group_size,
            self.config.sampling,
            self.state.policy_version,
        )
        generate_s = time.monotonic() - started
        samples = []
        for index, completion in enumerate(completions):
            code = extract_code(completion.text)
            # The id names the content: a batch regenerated after a restart reuses a result only for the same code.
            digest = hashlib.sha256((code or completion.text).encode()).hexdigest()[:16]
            samples.append(Sample(completion, f"{self.config.loop.run}-s{number}-{index}-{digest}", code))
        return Batch(number, tasks, samples, generate_s)

    def _submit(self, batch: Batch) -> None:
        for sample in batch.samples:
            if sample.code is None:
                continue
            task = batch.task_of(sample)
            self.client.submit(
                problem=task.problem,
                size=task.size,
                source=sample.code,
                run=self.config.loop.run,
                stage=task.stage,
                policy_version=sample.completion.policy_version,
                candidate_id=sample.candidate_id,
            )

    def _await(self, batch: Batch) -> None:
        waiting = {s.candidate_id: s for s in batch.samples if s.code is not None}
        deadline = time.monotonic() + self.config.loop.result_timeout_s
        while waiting and time.monotonic() < deadline and not self.stop.is_set():
            metrics.PENDING.set(len(waiting))
            for cid, result in self.client.wait_results(list(waiting), timeout_s=0.5).items():
                waiting.pop(cid).result = result
            self._read_stages()
        metrics.PENDING.set(0)
        for sample in waiting.values():
            log.warning("event=candidate_lost id=%s (dropped from its group)", sample.candidate_id)
        # A problem not staged (no archive has announced a stage for it): nothing can lie outside a stage.
        staged = [s for s in batch.samples if batch.task_of(s).stage > 0]
        for sample in batch.samples:
            if batch.task_of(sample).stage == 0:
                sample.outside_stage = False
        flags_by = time.monotonic() + self.config.loop.archive_wait_s
        while time.monotonic() < flags_by and any(s.candidate_id not in self.outside for s in staged if s.result):
            self._read_stages()
            self.client.pump(0.05)
        for sample in staged:
            sample.outside_stage = self.outside.pop(sample.candidate_id, None)

    def _rewards(self, batch: Batch) -> tuple[list[list[float | None]], list[Outcome]]:
        rows, outcomes = [], []
        for group in batch.groups():
            group_outcomes = [self._outcome(s) for s in group]
            outcomes.extend(group_outcomes)
            rows.append(group_rewards(group_outcomes, self.config.rewards))
        return rows, outcomes

    def _outcome(self, sample: Sample) -> Outcome:
        if sample.code is None:
            return Outcome(NO_CODE)
        if sample.result is None:
            return Outcome(LOST)
        return Outcome.from_result(sample.result, sample.outside_stage)

    def _update(self, batch: Batch, advantage_rows: list[list[float | None]]) -> dict[str, float]:
        """The update on the samples `rows_for_update` chooses (spread over the ranks), then the schedule's
        step; {} when none is chosen."""
        rows = rows_for_update(batch, advantage_rows, self.config.grpo)
        return self.ranks.update(Update(rows, int(self.tokenizer.pad_token_id)))

    def _log(
        self,
        batch: Batch,
        outcomes: list[Outcome],
        rewards: list[list[float | None]],
        stats: AdvantageStats,
        update: dict[str, float],
        times: StepTimes,
    ) -> None:
        scored = [(o, r) for o, r in zip(outcomes, [r for row in rewards for r in row], strict=True) if r is not None]
        # The policy's quality: GFLOPS of every scored sample, a failure counting as 0.
        gflops = [o.rate_median if o.verdict == Verdict.OK else 0.0 for o, _ in scored]
        verdicts: dict[str, int] = {}
        for outcome in outcomes:
            verdicts[str(outcome.verdict)] = verdicts.get(str(outcome.verdict), 0) + 1
        lengths = [len(s.completion.completion_ids) for s in batch.samples]
        step_s = times.generate_s + times.wait_s + times.update_s
        # What the benchers spent on this batch: fresh results only (a cache hit costs them ~nothing).
        bencher_busy_s = sum(
            s.result.compile_s + s.result.run_s for s in batch.samples if s.result and not s.result.cached
        )
        bencher_seconds = max(1, self.client.workers_alive) * step_s
        # Entropy of the sampling distribution per token, estimated by the sampled tokens' -log p.
        logprobs = [lp for s in batch.samples for lp in s.completion.behaviour_logprobs]
        record = steplog.StepRecord(
            step=batch.step,
            policy_version=self.state.policy_version,
            stage=batch.stage,
            verdicts=verdicts,
            programs=[hashlib.sha256((s.code or "").encode()).hexdigest()[:12] for s in batch.samples],
            advantage=stats,
            update=update,
            gflops_mean=statistics.fmean(gflops) if gflops else 0.0,
            gflops_max=max(gflops, default=0.0),
            completion_length_mean=statistics.fmean(lengths) if lengths else 0.0,
            tokens_per_s=sum(lengths) / batch.generate_s if batch.generate_s else 0.0,
            generate_s=times.generate_s,
            wait_s=times.wait_s,
            update_s=times.update_s,
            step_s=step_s,
            idle_ratio=times.wait_s / step_s if step_s else 0.0,
            bencher_idle_ratio=min(1.0, max(0.0, 1 - bencher_busy_s / bencher_seconds)) if step_s else 0.0,
            entropy=-statistics.fmean(logprobs) if logprobs else 0.0,
            lost=verdicts.get(LOST, 0),
            staleness=times.staleness,
            lr=self.optimizer.param_groups[0]["lr"],
        )
        steplog.append(self.log_file, record)
        metrics.observe(record)
        self.client.publish(
            TrainerStep,
            run=self.config.loop.run,
            step=record.step,
            policy_version=record.policy_version,
            reward_mean=stats.reward_mean,
            reward_std=stats.reward_std,
            reward_max=stats.reward_max,
            gflops_mean=record.gflops_mean,
            gflops_max=record.gflops_max,
            loss=update.get("loss", 0.0),
            kl=update.get("kl", 0.0),
            step_s=record.step_s,
            verdicts=record.verdicts,
            stage=record.stage,
            idle_ratio=record.idle_ratio,
            bencher_idle_ratio=record.bencher_idle_ratio,
        )
        log.info(
            "event=step step=%d stage=%d reward_mean=%.3f gflops_mean=%.3f gflops_max=%.3f verdicts=%s step_s=%.2f",
            record.step,
            record.stage,
            stats.reward_mean,
            record.gflops_mean,
            record.gflops_max,
            record.verdicts,
            record.step_s,
        )

    def _checkpoint(self, ahead: Batch | None) -> None:
        self.state.pending = ahead.to_json() if ahead else None
        path = checkpoint.save(
            self.run_dir, self.state, self.model, self.optimizer, self.scheduler, self.config.resolved()
        )
        log.info("event=checkpoint path=%s step=%d", path, self.state.step)
