"""Checkpoints: everything a trainer needs to resume after kill -9 without double-counting a reward.

A checkpoint is a directory `step-<N>/` under `<run_dir>/checkpoints/`: the LoRA adapter, the
optimizer's and the learning-rate scheduler's state, the step and policy version, the RNG states, the
pending candidates (the batch generated ahead for the next step, sampled but not yet submitted: a resumed
run submits exactly these, under the same ids, so results the bus already journaled for them are reused),
the stage view, and the resolved config. It is written to a temporary directory and renamed into place,
and `latest` names the newest complete one, so a crash while writing leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.policy import save_adapter

LATEST = "latest"


@dataclass
class TrainerState:
    step: int = 0
    """Updates done (the next step to run is `step + 1`)."""
    policy_version: int = 0
    pending: dict[str, Any] | None = None
    """The batch generated ahead for step + 1, not yet submitted (trainer.loop.Batch.to_json), or None.
    Checkpoints are taken between steps, so no submitted candidate is ever waiting for its reward."""
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """problem -> {"stage": int, "techniques": [...]}: the stage view the prompts use."""


def save(
    run_dir: Path,
    state: TrainerState,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: dict[str, Any],
) -> Path:
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:06d}"
    partial = root / f".step-{state.step:06d}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    save_adapter(model, partial / "adapter")
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python_rng": random.getstate(),
        },
        partial / "optimizer.pt",
    )
    state_json = {
        "step": state.step,
        "policy_version": state.policy_version,
        "pending": state.pending,
        "stages": state.stages,
    }
    (partial / "state.json").write_text(json.dumps(state_json))
    (partial / "config.json").write_text(json.dumps(config, indent=2, default=str))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(final.name)
    os.replace(pointer, root / LATEST)  # atomic: `latest` always names a complete checkpoint
    return final


def latest(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def load_state(checkpoint: Path) -> TrainerState:
    data = json.loads((checkpoint / "state.json").read_text())
    return TrainerState(data["step"], data["policy_version"], data["pending"], data["stages"])


def load_optimizer(
    checkpoint: Path, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> None:
    saved = torch.load(checkpoint / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])


def load_rng(checkpoint: Path) -> None:
    """Rank 0's random state: a resumed run samples its next batches as the uninterrupted run would have
    (other ranks are seeded by rank; their share of a step regenerated after a restart differs)."""
    saved = torch.load(checkpoint / "optimizer.pt", weights_only=False)
    torch.set_rng_state(saved["torch_rng"])
    if saved.get("cuda_rng") and torch.cuda.is_available():  # on a GPU, generate draws from the CUDA generator
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    random.setstate(saved["python_rng"])
