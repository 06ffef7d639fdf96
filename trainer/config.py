"""The trainer's configuration: `[trainer]` (the loop) plus `[policy]`, `[rewards]`, `[grpo]`, and the
vLLM backends' `[vllm]` and `[vllm_server]`.

Sampling is set in one place, `[grpo]` (`temperature`, `top_p`, `max_completion_tokens`), so the
log-probabilities of the update are those of the distribution that drew the samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bus.config import ConfigError, read_toml, section
from bus.problems import ProblemError, load_registry, parse_task, problem_dirs_setting
from trainer.generation import SamplingSettings, VLLMEngineConfig
from trainer.grpo import GRPOConfig
from trainer.policy import PolicyConfig
from trainer.rewards import RewardConfig, RewardPreset
from trainer.tasks import TrainingTask
from trainer.vllm_server import VLLMServerConfig

BACKENDS = ("hf", "vllm", "vllm_server")


@dataclass(frozen=True)
class LoopConfig:
    """`[trainer]`: what to train on and how the online loop runs."""

    run: str = "train"
    """Run id on the bus (every candidate carries it; the archive's report plots by it)."""
    run_dir: str = "hpcrl-run"
    """Checkpoints, the JSONL log and the resolved config go here."""
    problem: str = "dgemm"
    """The problem to train on (a registry id: bencher/problems/ or bencher.problem_dirs), unless `problems`
    names a mix."""
    size: int = 256
    """Problem size n every candidate of `problem` is measured at."""
    problems: tuple[str, ...] = ()
    """A mix to train on instead of `problem`: `id@size` entries (`["dgemm@256", "jacobi2d@1024"]`; no size:
    the problem's default), each step drawing its prompts across them in proportion to problem_weights
    (trainer/tasks.py). The archive stages each problem on its own, and each prompt carries its problem's stage."""
    problem_weights: tuple[float, ...] = ()
    """Relative share of each of `problems`, in the same order; empty: equal shares."""
    steps: int = 50
    """GRPO updates to make."""
    prompts_per_step: int = 2
    """Groups per step; each gets grpo.group_size samples."""
    max_staleness: int = 1
    """Policy versions a sample may lag behind the policy being updated: 1 generates step t+1 while
    the benchers measure step t; 0 is synchronous."""
    result_timeout_s: float = 600.0
    """A candidate without a result by then is dropped from its group (never charged to the policy)."""
    collective_timeout_s: float = 3600.0
    """Data parallelism: how long a rank waits in a torch.distributed collective. The other ranks wait in
    one while rank 0 waits for the benchers and generates, so it must exceed result_timeout_s plus a
    step's generation; a rank that died is noticed after it (or at once, when the launcher kills the job)."""
    archive_wait_s: float = 5.0
    """After the results, how long to wait for the archive's technique verdicts (outside_stage)."""
    checkpoint_every: int = 5
    """Steps between checkpoints (and one at the end)."""
    backend: str = "hf"
    """Generation backend: `hf` (transformers generate on the training model), `vllm` (a vLLM engine
    beside it on the training GPU, `[vllm]`) or `vllm_server` (a vLLM server on GPUs of its own, `[vllm_server]`)."""
    generation_chunk_sequences: int = 64
    """hf backend: sequences per `generate` call (their KV cache, and one step's logits, grow with them); a
    step's prompts_per_step x group_size samples are generated in chunks of this many."""
    threads: int = 0
    """torch threads on CPU; 0: torch's default."""
    seed: int = 0
    metrics_port: int = 0
    """Port of the Prometheus /metrics endpoint on metrics_address; 0 disables it."""
    metrics_address: str = "127.0.0.1"
    """Address the metrics endpoint binds: 0.0.0.0 lets a Prometheus on another host scrape it."""

    def __post_init__(self) -> None:
        for name in ("problems", "problem_weights"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple):
                raise ConfigError(f"trainer.{name} must be a list")
            object.__setattr__(self, name, tuple(value))  # TOML gives lists; the config stays hashable
        if self.problem_weights and len(self.problem_weights) != len(self.problems):
            raise ConfigError(
                f"trainer.problem_weights has {len(self.problem_weights)} entries for {len(self.problems)} problems: "
                "give one weight per entry of trainer.problems, or none (equal shares)"
            )
        if any(not isinstance(w, int | float) or isinstance(w, bool) or not w > 0 for w in self.problem_weights):
            raise ConfigError("trainer.problem_weights must be numbers > 0")
        if self.steps < 1 or self.prompts_per_step < 1 or self.size < 1 or self.generation_chunk_sequences < 1:
            raise ConfigError(
                "trainer.steps, trainer.prompts_per_step, trainer.size and trainer.generation_chunk_sequences "
                "must be >= 1"
            )
        if self.max_staleness not in (0, 1):
            raise ConfigError("trainer.max_staleness must be 0 (synchronous) or 1 (generate one step ahead)")
        if self.backend not in BACKENDS:
            raise ConfigError(f"trainer.backend = {self.backend!r}: use one of {', '.join(map(repr, BACKENDS))}")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"trainer.metrics_port = {self.metrics_port} is not a TCP port (0 disables)")
        if self.collective_timeout_s <= self.result_timeout_s:
            raise ConfigError(
                f"trainer.collective_timeout_s = {self.collective_timeout_s} must exceed trainer.result_timeout_s = "
                f"{self.result_timeout_s}: the other ranks wait that long for rank 0 to collect the rewards"
            )
        if self.result_timeout_s <= 0 or self.archive_wait_s < 0 or self.checkpoint_every < 1:
            raise ConfigError("trainer.result_timeout_s > 0, archive_wait_s >= 0 and checkpoint_every >= 1 please")


@dataclass(frozen=True)
class TrainerConfig:
    loop: LoopConfig
    policy: PolicyConfig
    rewards: RewardConfig
    grpo: GRPOConfig
    vllm: VLLMEngineConfig = field(default_factory=VLLMEngineConfig)
    vllm_server: VLLMServerConfig = field(default_factory=VLLMServerConfig)
    problem_dirs: tuple[str, ...] = ()
    """`[bencher] problem_dirs` of the same configuration file: a site's problems, which prompts are read from."""

    def __post_init__(self) -> None:
        tasks = self.tasks  # checks every problem and size against the registry
        try:
            metrics = {load_registry(self.problem_dirs).problem(task.problem).metric for task in tasks}
        except ProblemError as error:
            raise ConfigError(f"trainer: {error}") from None
        if len({task.problem for task in tasks}) > 1 and self.rewards.preset is RewardPreset.PAPER:
            raise ConfigError(
                "trainer.problems mixes problems, whose rates (GFLOPS, GB/s) are not comparable: set "
                "rewards.preset = 'log_speedup' (the speedup over each node's naive reference; docs/trainer.md)"
            )
        if self.rewards.preset is RewardPreset.NORMALIZED and metrics != {"gflops"}:
            raise ConfigError(
                "rewards.preset = 'normalized' divides GFLOPS by the node's peak; a GB/s problem has no such peak: "
                "use 'log_speedup'"
            )
        if self.loop.backend == "vllm_server" and not (self.vllm_server.url or self.vllm_server.url_file):
            raise ConfigError(
                "trainer.backend = 'vllm_server' needs the server's address: set vllm_server.url, or "
                "vllm_server.url_file to the file ops/slurm/vllm-server.sbatch writes"
            )

    @property
    def tasks(self) -> tuple[TrainingTask, ...]:
        """The (problem, size, weight) mix this run trains on: trainer.problems, or the one problem and size."""
        try:
            registry = load_registry(self.problem_dirs)
            if not self.loop.problems:
                registry.problem(self.loop.problem).check_size(self.loop.size)
                return (TrainingTask(self.loop.problem, self.loop.size),)
            weights = self.loop.problem_weights or (1.0,) * len(self.loop.problems)
            parsed = [parse_task(entry, registry) for entry in self.loop.problems]
        except ProblemError as error:
            raise ConfigError(f"trainer: {error}") from None
        return tuple(TrainingTask(p.problem, p.size, float(w)) for p, w in zip(parsed, weights, strict=True))

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(self.grpo.max_completion_tokens, self.grpo.temperature, self.grpo.top_p)

    def resolved(self) -> dict[str, Any]:
        """Every setting, as saved with each run and checkpoint."""
        sections = ("loop", "policy", "rewards", "grpo", "vllm", "vllm_server")
        return {
            **{name: asdict(getattr(self, name)) for name in sections},
            "problem_dirs": list(self.problem_dirs),
            "tasks": [asdict(task) for task in self.tasks],
        }


def load_trainer_config(path: str | None, env: dict[str, str] | None = None) -> TrainerConfig:
    data = read_toml(path)
    if "top_p" in data.get("trainer", {}):
        raise ConfigError("trainer.top_p moved to [grpo] (top_p = ...), beside the other sampling settings")
    try:
        return TrainerConfig(
            loop=section(LoopConfig, data, "trainer", env),
            policy=section(PolicyConfig, data, "policy", env),
            rewards=section(RewardConfig, data, "rewards", env),
            grpo=section(GRPOConfig, data, "grpo", env),
            vllm=section(VLLMEngineConfig, data, "vllm", env),
            vllm_server=section(VLLMServerConfig, data, "vllm_server", env),
            problem_dirs=problem_dirs_setting(data, env),
        )
    except ValueError as error:  # the sections' own checks raise ValueError subclasses
        raise ConfigError(str(error)) from None
