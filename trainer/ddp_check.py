"""One GRPO update spread over N data-parallel ranks against the same update in one process: the adapter
must move the same (`hpcrl perf update` reports the worst relative difference as ddp_rel_diff_max).

`ddp_agreement` runs the update here, then launches the ranks with torchrun on loopback (gloo), through
the trainer's own `Ranks.update` (rank 0 sends the rows, every rank updates its share under DDP), once per
loss aggregation, with mu = 2 and beta > 0. Plain SGD, so the weight change is the gradient itself: AdamW's
first step would hide a gradient off by a constant factor (a mean where a sum belongs) behind its sign.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import torch

from trainer.distributed import Placement, Ranks, Update, process_group
from trainer.generation import HFBackend
from trainer.grpo import GRPOConfig, LossAggregation
from trainer.policy import PolicyConfig, load_policy

SEED: Final = 0
LAUNCH_TIMEOUT_S: Final = 300.0


def check_config(aggregation: LossAggregation) -> GRPOConfig:
    return GRPOConfig(
        mu=2, beta=0.1, loss_aggregation=aggregation, micro_batch_size=2, max_completion_tokens=16,
        max_grad_norm=1e9, epsilon_low=0.1, epsilon_high=0.1,
    )  # fmt: skip


def fixed_rows(vocab_size: int, count: int) -> list[tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...], float]]:
    """`count` rows of varied prompt and completion lengths, off-policy behaviour log-probs and advantages."""
    generator = torch.Generator().manual_seed(SEED)
    rows = []
    for index in range(count):
        prompt = torch.randint(2, vocab_size, (3 + index % 4,), generator=generator).tolist()
        completion = torch.randint(2, vocab_size, (2 + (index * 5) % 7,), generator=generator).tolist()
        behaviour = (-3.0 - torch.rand(len(completion), generator=generator)).tolist()
        rows.append((tuple(prompt), tuple(completion), tuple(behaviour), float(torch.randn(1, generator=generator))))
    return rows


def adapter_after_update(
    model_dir: Path, rows: int, aggregation: LossAggregation, placement: Placement, dtype: torch.dtype
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The adapter's (weights, change) after one update of `rows` fixed rows on this placement's ranks
    (world 1: here alone), in `dtype`."""
    torch.manual_seed(SEED)
    model, tokenizer = load_policy(PolicyConfig(model_dir=str(model_dir), device="cpu"))
    model.to(dtype)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # off zero, so the KL to the reference (adapter off) is not zero
            parameter.data.normal_(0, 0.02)
    config = check_config(aggregation)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    ranks = Ranks(placement, model, HFBackend(model, tokenizer), optimizer, schedule, config, torch.device("cpu"))
    if placement.is_main:
        ranks.update(Update(fixed_rows(int(model.config.vocab_size), rows), int(tokenizer.pad_token_id)))
        ranks.stop()
    else:
        ranks.follow()
    ranks.close()
    return {n: (p.detach(), p.detach() - before[n]) for n, p in model.named_parameters() if p.requires_grad}


@dataclass(frozen=True)
class Agreement:
    """How far the adapter after a data-parallel update is from the same update in one process: the worst
    relative L2 difference over adapter tensors and loss aggregations."""

    weights_float32: float
    """Of the adapter's weights, in float32 (what "the same adapter weights" means: the issue's figure)."""
    change_float32: float
    """Of the weights' change, in float32: rounding of the differently shaped micro-batches shows here
    (about 1e-5 on the tiny model)."""
    change_float64: float
    """Of the weights' change, in float64: with rounding out of the way, the update itself must agree (~1e-12)."""


def ddp_agreement(
    model_dir: Path, world_size: int = 2, rows: int = 6, dtypes: tuple[str, ...] = ("float32", "float64")
) -> Agreement:
    """Run one update on `world_size` gloo ranks (torchrun) and in this process, in each of `dtypes` (a
    figure of a dtype left out is NaN)."""
    worst = {"weights_float32": 0.0, "change_float32": 0.0, "change_float64": 0.0}
    worst |= {key: math.nan for key in worst if not key.endswith(dtypes)}
    for name in dtypes:
        dtype = getattr(torch, name)
        ranked = _ranked_update(model_dir, world_size, rows, name)
        for aggregation in LossAggregation:
            alone = adapter_after_update(model_dir, rows, aggregation, Placement(), dtype)
            for tensor, (weights, change) in alone.items():
                if not change.norm() > 0:
                    raise RuntimeError(f"the update did not move {tensor}: the comparison would prove nothing")
                other_weights, other_change = ranked[aggregation.value][tensor]
                worst[f"change_{name}"] = max(worst[f"change_{name}"], _relative(other_change, change))
                if dtype == torch.float32:
                    worst["weights_float32"] = max(worst["weights_float32"], _relative(other_weights, weights))
    return Agreement(**worst)


def _relative(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value - reference).norm() / reference.norm())


def _ranked_update(
    model_dir: Path, world_size: int, rows: int, dtype: str
) -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    with tempfile.TemporaryDirectory(prefix="hpcrl-ddp-") as scratch:
        out = Path(scratch) / "changes.pt"
        launch_ranks(
            world_size,
            [
                "-m",
                "trainer.ddp_check",
                "--model",
                str(model_dir),
                "--rows",
                str(rows),
                "--dtype",
                dtype,
                "--out",
                str(out),
            ],
        )
        return torch.load(out)  # type: ignore[no-any-return]


def launch_ranks(world_size: int, program: list[str], timeout_s: float = LAUNCH_TIMEOUT_S) -> str:
    """Run `program` (a script, or -m MODULE, with its arguments) on `world_size` ranks with torchrun on
    loopback; its output, or RuntimeError with the ranks' errors. On the timeout the whole process group is
    killed: torchrun's ranks would outlive torchrun alone."""
    with socket.socket() as probe:  # a free loopback port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={world_size}",
               "--master-addr=127.0.0.1", f"--master-port={port}", *program]  # fmt: skip
    # gloo on the loopback interface only; one thread per rank (the ranks share the machine's cores).
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    ranks = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = ranks.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(ranks.pid, signal.SIGKILL)
        ranks.communicate()
        raise RuntimeError(f"{world_size} ranks of {program} did not finish in {timeout_s:.0f} s") from None
    if ranks.returncode != 0:
        raise RuntimeError(f"{world_size} ranks of {program} failed ({ranks.returncode}):\n{stderr[-3000:]}")
    return stdout


def main(argv: list[str] | None = None) -> int:
    """One rank of the check (run by torchrun): rank 0 saves every aggregation's adapter change."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--dtype", choices=["float32", "float64"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    placement = Placement.from_environment()
    changes = {}
    with process_group(placement, torch.device("cpu"), LAUNCH_TIMEOUT_S):
        for aggregation in LossAggregation:
            dtype = getattr(torch, args.dtype)
            changes[aggregation.value] = adapter_after_update(args.model, args.rows, aggregation, placement, dtype)
    if placement.is_main:
        torch.save(changes, args.out)
        print(json.dumps({"saved": str(args.out), "ranks": placement.world_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
