"""Data parallelism on torch.distributed: one process per GPU (or CPU rank), launched by torchrun or srun.

The frozen base is replicated on every rank; the LoRA adapter is trained under DistributedDataParallel,
which all-reduces its gradients (`nccl` on GPUs, `gloo` on CPUs). Rank 0 drives: it alone talks to the
bus and writes checkpoints, the step log and metrics; the other ranks follow its commands (`follow`):

  Sample  every rank samples its share of the step's groups (group g on rank g % world); rank 0 gathers
          them in group order
  Update  every rank takes its share of the rows chosen for the update (row i on rank i % world) and
          runs `update_step` with a `DDPReplicas`: the normaliser and metrics cover all ranks' rows
  Stop    the followers leave their loop

Commands are Python objects sent with torch.distributed's object collectives (broadcast_object_list,
gather_object), all from rank 0, in the order rank 0 issues them, so every rank runs the same sequence
of collectives. Nothing here all-reduces by hand: gradients go through DDP, counts through all_reduce.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from trainer.generation import Backend, Completion, SamplingSettings
from trainer.grpo import GRPOConfig, collate, update_step
from trainer.logprobs import PolicyLogProbs

log = logging.getLogger(__name__)

DEFAULT_MASTER_PORT = 29500
"""torchrun's default rendezvous port; under srun without MASTER_PORT, 20000 + job id % 20000 instead."""


@dataclass(frozen=True)
class Placement:
    """Where this process sits in the job, from the launcher's environment."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    """Index of this process on its node: the GPU it drives."""
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Placement:
        """torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), else srun's
        (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the rendezvous host is the step's first node), else a
        single process."""
        env = os.environ if env is None else env
        if "RANK" in env and "WORLD_SIZE" in env:
            return cls(
                rank=int(env["RANK"]),
                world_size=int(env["WORLD_SIZE"]),
                local_rank=int(env.get("LOCAL_RANK", "0")),
                master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
                master_port=int(env.get("MASTER_PORT", DEFAULT_MASTER_PORT)),
            )
        if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
            nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "")
            job = int(env.get("SLURM_JOB_ID", "0"))
            return cls(
                rank=int(env["SLURM_PROCID"]),
                world_size=int(env["SLURM_NTASKS"]),
                local_rank=int(env.get("SLURM_LOCALID", "0")),
                master_addr=env.get("MASTER_ADDR") or first_host(nodes),
                master_port=int(env.get("MASTER_PORT") or 20000 + job % 20000),
            )
        return cls()


def device_of(device: torch.device, placement: Placement) -> torch.device:
    """This rank's device: on GPUs, the one its local rank names (one process per GPU)."""
    return torch.device("cuda", placement.local_rank) if device.type == "cuda" else device


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list (`node[01-04]` -> node01), expanded by scontrol as SLURM does."""
    if not nodelist:
        return "127.0.0.1"
    try:
        hosts = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        raise RuntimeError(
            f"cannot expand the SLURM node list {nodelist!r} with scontrol ({error}): set MASTER_ADDR to the "
            "first node's host name"
        ) from None
    return hosts[0]


class DDPReplicas:
    """grpo.Replicas on torch.distributed: the policy's log-probs under DistributedDataParallel."""

    def __init__(self, model: torch.nn.Module, config: GRPOConfig, device: torch.device) -> None:
        self.world_size = dist.get_world_size()
        self.device = device
        # DDP's own start-up sync would broadcast every parameter, the frozen base too (28 GB for a 14B model)
        # though every rank loaded it from the same files: only the adapter goes from rank 0 to the others.
        # broadcast_buffers off: the buffers (rotary tables) never change, and every rank loaded them.
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.requires_grad:
                    dist.broadcast(parameter.data, src=0)
        self.ddp = DistributedDataParallel(
            PolicyLogProbs(model, config.temperature, config.logprob_chunk_tokens),
            device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False,
            init_sync=False,
        )

    @property
    def scorer(self) -> torch.nn.Module:
        return self.ddp

    def no_sync(self) -> contextlib.AbstractContextManager[None]:
        return self.ddp.no_sync()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        return self._all_reduce(values, dist.ReduceOp.SUM)

    def maximum(self, values: torch.Tensor) -> torch.Tensor:
        return self._all_reduce(values, dist.ReduceOp.MAX)

    def _all_reduce(self, values: torch.Tensor, op: Any) -> torch.Tensor:
        on_device = values.to(self.device)  # nccl reduces device tensors only
        dist.all_reduce(on_device, op=op)
        return on_device.cpu()


# ---------------------------------------------------------------- commands from rank 0


@dataclass(frozen=True)
class Sample:
    prompts: list[str]
    """One rendered prompt per group of the step."""
    group_size: int
    settings: SamplingSettings
    policy_version: int
    """The version every rank's (identical) policy is at: each completion records it."""


@dataclass(frozen=True)
class Update:
    rows: list[tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...], float]]
    """(prompt ids, completion ids, behaviour log-probs, advantage) of every row chosen for the update."""
    pad_token_id: int


@dataclass(frozen=True)
class Stop:
    pass


Command = Sample | Update | Stop


class Ranks:
    """The job's ranks as the loop sees them: sampling and updating spread over every rank; with one process,
    plain local calls."""

    def __init__(
        self,
        placement: Placement,
        model: torch.nn.Module,
        backend: Backend,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        config: GRPOConfig,
        device: torch.device,
    ) -> None:
        self.placement = placement
        self.model = model
        self.backend = backend
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.config = config
        self.device = device
        self.shard_sampling = backend.name == "hf"
        """Whether every rank samples (the hf backend) or rank 0's backend alone (a vLLM engine or server)."""
        self.replicas = DDPReplicas(model, config, device) if placement.world_size > 1 else None

    def sample(
        self, prompts: list[str], group_size: int, settings: SamplingSettings, policy_version: int
    ) -> list[Completion]:
        """`group_size` completions of every prompt, in prompt order, sampled across the ranks."""
        if not self.shard_sampling:
            return self.backend.sample(prompts, group_size, settings)
        command = Sample(prompts, group_size, settings, policy_version)
        self._broadcast(command)
        return self._sample(command)

    def update(self, rows: Update) -> dict[str, float]:
        """One update_step on the chosen rows, each rank on its share, then the learning-rate schedule's step;
        returns the batch's metrics ({} when no row was chosen: nothing to learn from)."""
        self._broadcast(rows)
        return self._update(rows)

    def stop(self) -> None:
        self._broadcast(Stop())

    def close(self) -> None:
        """Drop the DDP wrapper while the process group still exists (before `process_group` ends): a
        DistributedDataParallel freed after destroy_process_group can hang its process at exit (seen on
        gloo, intermittently: a rank that never exited)."""
        self.replicas = None
        gc.collect()  # the DDP reducer sits in reference cycles

    def follow(self) -> None:
        """A follower's loop (rank > 0): run rank 0's commands until it stops."""
        while True:
            command = self._broadcast(None)
            match command:
                case Sample():
                    self._sample(command)
                case Update():
                    try:
                        self._update(command)
                    except FloatingPointError as error:
                        # update_step raises it on every rank at once (it checks all-reduced values): rank 0
                        # ends its run and sends Stop, which this rank must still be here to receive.
                        log.error("event=update_failed rank=%d error=%s", self.placement.rank, error)
                case Stop():
                    return

    def _broadcast(self, command: Command | None) -> Command:
        if self.placement.world_size == 1:
            assert command is not None
            return command
        box: list[Any] = [command]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[no-any-return]

    def _sample(self, command: Sample) -> list[Completion]:
        world, rank = self.placement.world_size, self.placement.rank
        groups = list(range(rank, len(command.prompts), world))
        self.backend.load_policy(self.model, command.policy_version)
        local = self.backend.sample([command.prompts[g] for g in groups], command.group_size, command.settings)
        # The backend numbers groups 0.. in the order given: back to the step's numbering.
        mine = [dataclasses.replace(c, group=groups[c.group]) for c in local]
        if world == 1:
            return mine
        gathered: list[list[Completion]] | None = [[] for _ in range(world)] if rank == 0 else None
        dist.gather_object(mine, gathered, dst=0)
        if gathered is None:
            return []
        return sorted((c for part in gathered for c in part), key=lambda c: c.group)  # stable: samples in order

    def _update(self, command: Update) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if command.rows:
            world, rank = self.placement.world_size, self.placement.rank
            shard = command.rows[rank::world]
            batch = None  # fewer rows than ranks: this one joins the update with nothing of its own
            if shard:
                prompts, completions, behaviour, advantages = zip(*shard, strict=True)
                batch = collate(prompts, completions, behaviour, advantages, command.pad_token_id).to(self.device)
            self.model.train()
            metrics = update_step(self.model, self.optimizer, batch, self.config, self.replicas)
        self.scheduler.step()
        return metrics


@contextlib.contextmanager
def process_group(placement: Placement, device: torch.device, timeout_s: float) -> Iterator[None]:
    """Membership of the job's process group (nothing for one process): nccl on GPUs, gloo on CPUs.
    `timeout_s` bounds every collective: followers wait in one while rank 0 waits for the benchers, so it
    must exceed that wait."""
    if placement.world_size == 1:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        init_method=f"tcp://{placement.master_addr}:{placement.master_port}",
        rank=placement.rank,
        world_size=placement.world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    log.info("event=process_group rank=%d world_size=%d device=%s", placement.rank, placement.world_size, device)
    try:
        yield
    finally:
        dist.destroy_process_group()
