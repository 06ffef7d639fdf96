"""Checkpoints round trip: adapter, optimizer, scheduler, step, RNG, the pending batch and stages
come back as saved; a crash while writing leaves the previous checkpoint in place."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from trainer import checkpoint
from trainer.generation import Completion
from trainer.grpo import GRPOConfig, collate, optimizer_for, scheduler_for, update_step
from trainer.loop import Batch, GroupTask, Sample
from trainer.policy import PolicyConfig, load_policy


def a_batch() -> Batch:
    completions = [
        Completion(group=0, text=f"```c\nint x{i};\n```", prompt_ids=(1, 2, 3), completion_ids=(4, 5 + i),
                   behaviour_logprobs=(-0.5, -1.25 - i), policy_version=2)
        for i in range(3)
    ]  # fmt: skip
    samples = [Sample(c, f"run-s4-{i}-abc", c.text if i else None) for i, c in enumerate(completions)]
    return Batch(step=4, tasks=[GroupTask("jacobi2d", 255, 2)], samples=samples, generate_s=0.75)


def test_a_batch_survives_json_as_it_was() -> None:
    batch = a_batch()
    again = Batch.from_json(json.loads(json.dumps(batch.to_json())), GroupTask("dgemm", 256, 0))
    assert again == batch
    assert isinstance(again.samples[0].completion.completion_ids, tuple)


def test_a_batch_saved_before_batches_named_their_tasks_is_the_runs_one_problem() -> None:
    saved = a_batch().to_json()
    del saved["tasks"]
    saved["stage"] = 3
    again = Batch.from_json(json.loads(json.dumps(saved)), GroupTask("dgemm", 256, 0))
    assert again.tasks == [GroupTask("dgemm", 256, 3)] and again.stage == 3


@pytest.fixture
def trained(tiny_model: Path) -> tuple[object, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The tiny model with a fresh adapter after one real GRPO update (so the optimizer has state)."""
    torch.manual_seed(0)
    model, tokenizer = load_policy(PolicyConfig(model_dir=str(tiny_model), device="cpu"))
    config = GRPOConfig(learning_rate=1e-2, warmup_steps=4)
    optimizer = optimizer_for(model, config)
    scheduler = scheduler_for(optimizer, config)
    batch = collate([[5, 6, 7], [5, 6]], [[8, 9], [10]], [[-1.0, -2.0], [-0.5]], [1.0, -1.0], tokenizer.pad_token_id)
    update_step(model, optimizer, batch, config)
    scheduler.step()
    return model, optimizer, scheduler


def adapter_weights(model: object) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora" in n}  # type: ignore[attr-defined]


def test_a_checkpoint_round_trips_every_part(tiny_model: Path, trained: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    model, optimizer, scheduler = trained
    state = checkpoint.TrainerState(
        step=3,
        policy_version=3,
        pending=a_batch().to_json(),
        stages={"dgemm": {"stage": 2, "techniques": ["loop_order", "tiling"]}},
    )
    random.seed(7)
    torch.manual_seed(7)
    path = checkpoint.save(tmp_path, state, model, optimizer, scheduler, {"loop": {"steps": 9}})
    expected_python, expected_torch = random.random(), torch.rand(3)
    assert checkpoint.latest(tmp_path) == path and path.name == "step-000003"

    # A fresh trainer's objects, restored from the checkpoint.
    random.seed(99)
    torch.manual_seed(99)
    restored, _ = load_policy(PolicyConfig(model_dir=str(tiny_model), device="cpu"), path / "adapter")
    config = GRPOConfig(learning_rate=1e-2, warmup_steps=4)
    fresh_optimizer = optimizer_for(restored, config)
    fresh_scheduler = scheduler_for(fresh_optimizer, config)
    checkpoint.load_optimizer(path, fresh_optimizer, fresh_scheduler)
    checkpoint.load_rng(path)
    loaded = checkpoint.load_state(path)

    assert loaded == state
    assert Batch.from_json(loaded.pending or {}, GroupTask("dgemm", 256, 0)) == a_batch()
    saved, again = adapter_weights(model), adapter_weights(restored)
    assert saved.keys() == again.keys() and saved
    assert all(torch.equal(saved[name], again[name]) for name in saved)
    assert fresh_scheduler.last_epoch == scheduler.last_epoch == 1
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 2 / 4), "warm-up: step 2 of 4"
    moments = [s["exp_avg"] for s in optimizer.state.values()]
    fresh_moments = [s["exp_avg"] for s in fresh_optimizer.state.values()]
    assert len(moments) == len(fresh_moments) > 0
    assert all(torch.equal(a, b) for a, b in zip(moments, fresh_moments, strict=True))
    assert random.random() == expected_python and torch.equal(torch.rand(3), expected_torch), "RNG restored"
    assert json.loads((path / "config.json").read_text()) == {"loop": {"steps": 9}}


def test_a_crash_while_writing_leaves_the_previous_checkpoint_latest(trained: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    model, optimizer, scheduler = trained
    first = checkpoint.save(tmp_path, checkpoint.TrainerState(step=1), model, optimizer, scheduler, {})
    # A writer killed mid-way leaves a partial directory and no pointer change.
    partial = tmp_path / "checkpoints" / ".step-000002.partial"
    partial.mkdir()
    (partial / "state.json").write_text("{not json")
    assert checkpoint.latest(tmp_path) == first
    second = checkpoint.save(tmp_path, checkpoint.TrainerState(step=2), model, optimizer, scheduler, {})
    assert checkpoint.latest(tmp_path) == second and not partial.exists()
    assert checkpoint.load_state(second).step == 2


def test_no_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    assert checkpoint.latest(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step-000005")  # names a directory that is not there
    assert checkpoint.latest(tmp_path) is None
