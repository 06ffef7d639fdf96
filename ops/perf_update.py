"""`hpcrl perf update`: one GRPO update's peak memory for batches of 8, 32 and 64 sequences at a fixed
micro-batch, held to `hpcrl plan`'s prediction, and the micro-batched update's agreement with one pass.

The model is a random Qwen2 of Qwen's real vocabulary (151,936 rows) and tokenizer (trainer/random_model.py),
saved as a model directory and loaded by trainer.policy.load_policy, so the LoRA adapter, the dtype and
gradient checkpointing are those of training. Every row is the DGEMM task's chat-rendered prompt and a
tokenised C program from the corpus, cut to a set length; row i of a micro-batch is shortened by i steps, so
every micro-batch is padded as real ones are, and all have the same shape.

Memory, on a CPU: each batch size in a fresh process, the peak resident set during `update_step` (VmHWM,
reset through /proc/self/clear_refs just before it) minus the resident set just before it (policy loaded,
batch built, one update of a single micro-batch done: AdamW's moments exist and torch's code is paged in, as
in a running trainer). The processes run with glibc's mmap threshold fixed at 64 KiB (MALLOC_MMAP_THRESHOLD_):
every freed tensor goes back to the kernel, so the resident set follows the live tensors (by default the
threshold grows with the blocks freed, and the warm-up's activations would stay in the heap and count as
"before", hiding a third of the update). On a GPU:
torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus memory_allocated before; that path
has never run (no GPU on the development machines). What every figure means: docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bus.daemon import setup_logging
from ops.perf import PerfReport
from ops.perf_bus import git_commit, machine_info
from ops.plan_memory import ModelShape, UpdateShape, update_memory

TARGET_PEAK_RATIO: Final = 1.3
"""Peak of the largest batch over the smallest's (issue 12): memory is bounded by the micro-batch."""
TARGET_REL_DIFF: Final = 1e-5
"""Worst relative L2 difference of the adapter's change, micro-batched vs one pass (and DDP vs one rank)."""
TARGET_PLAN_ERROR: Final = 0.25
"""|predicted - measured| / measured of `hpcrl plan`'s update memory (issue 12)."""
BEHAVIOUR_NOISE: Final = 0.3
"""Standard deviation of the behaviour log-probs around the random model's (about -log V): importance
ratios spread across the clip range, as a stale sampler's do."""
WORKER_TIMEOUT_S: Final = 600.0
WORKER_ENV: Final = {"OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
"""One thread per measuring process (they run side by side); the allocator setting: module docstring."""


@dataclass(frozen=True)
class Setting:
    """The model and the updates measured (printed as the report's settings)."""

    batch_sizes: tuple[int, ...]
    """Sequences per update; the memory target compares the largest with the smallest."""
    checkpointed_batch_sizes: tuple[int, ...]
    """Batch sizes measured again with policy.gradient_checkpointing (the plan's other activation figure)."""
    micro_batch_size: int
    """grpo.micro_batch_size of the memory measurements."""
    completion_tokens: int
    """The longest completion; the others of a micro-batch are shorter (module docstring)."""
    logprob_chunk_tokens: int
    """grpo.logprob_chunk_tokens: below a micro-batch's completion tokens, so chunks are full."""
    layers: int
    """Decoder layers of the random Qwen2 (its vocabulary is always Qwen's)."""
    hidden_size: int
    intermediate_size: int
    heads: int
    kv_heads: int
    """Key/value heads: fewer than heads, grouped-query attention as in Qwen2.5."""
    lora_rank: int
    """policy.lora_rank (on policy's default target projections, alpha = 2 x rank)."""
    agreement_batch_size: int
    """Sequences of the batch updated in one pass and in micro-batches of agreement_micro_batch_size."""
    agreement_micro_batch_size: int
    """Smaller than agreement_batch_size, so the accumulated update has several micro-batches."""
    beta: float = 0.04
    """KL weight: > 0, so the reference forward pass (adapter off) is part of every update."""

    def grpo(self, **changes: Any) -> Any:
        from trainer.grpo import GRPOConfig

        settings = {
            "beta": self.beta, "micro_batch_size": self.micro_batch_size,
            "logprob_chunk_tokens": self.logprob_chunk_tokens, "max_completion_tokens": self.completion_tokens,
        }  # fmt: skip
        return GRPOConfig(**settings | changes)

    def update_shape(self, prompt_tokens: int, gradient_checkpointing: bool) -> UpdateShape:
        """The update as `hpcrl plan` sees it, on a CPU (float32)."""
        return UpdateShape(
            micro_batch_size=self.micro_batch_size, prompt_tokens=prompt_tokens,
            completion_tokens=self.completion_tokens, logprob_chunk_tokens=self.logprob_chunk_tokens,
            lora_rank=self.lora_rank, lora_targets=_lora_targets(), dtype_bytes=4,
            gradient_checkpointing=gradient_checkpointing,
        )  # fmt: skip


FULL: Final = Setting(
    batch_sizes=(8, 32, 64), checkpointed_batch_sizes=(8, 64), micro_batch_size=8, completion_tokens=256,
    logprob_chunk_tokens=512, layers=4, hidden_size=256, intermediate_size=1024, heads=4, kv_heads=2, lora_rank=16,
    agreement_batch_size=8, agreement_micro_batch_size=2,
)  # fmt: skip
QUICK: Final = Setting(
    batch_sizes=(2, 4), checkpointed_batch_sizes=(4,), micro_batch_size=2, completion_tokens=24,
    logprob_chunk_tokens=32, layers=2, hidden_size=64, intermediate_size=128, heads=4, kv_heads=2, lora_rank=4,
    agreement_batch_size=4, agreement_micro_batch_size=2,
)  # fmt: skip


@dataclass
class Report(PerfReport):
    """Everything `hpcrl perf update --json` prints (as one JSON object)."""

    benchmark: str = "update"
    measured: str = ""
    """What the memory figures are, in words (they differ between a CPU and a GPU)."""
    model_bytes: int = 0
    """The policy's parameters (base and adapter) in bytes."""
    peak_bytes_by_batch: dict[str, int] = field(default_factory=dict)
    """Batch size -> bytes the update added at its peak over what was resident before it."""
    checkpointed_peak_bytes_by_batch: dict[str, int] = field(default_factory=dict)
    """The same with gradient checkpointing."""
    before_bytes_by_batch: dict[str, int] = field(default_factory=dict)
    """Batch size -> resident bytes just before the update (CPU), or allocated bytes (GPU)."""
    update_seconds_by_batch: dict[str, float] = field(default_factory=dict)
    peak_ratio_64_over_8: float = 0.0
    """Largest batch's peak over the smallest's (in quick mode, of its own batch sizes)."""
    grad_rel_diff_max: float = 0.0
    """Worst over the loss aggregations of grad_rel_diff_by_aggregation."""
    grad_rel_diff_by_aggregation: dict[str, float] = field(default_factory=dict)
    """||change(micro-batches) - change(one pass)|| / ||change(one pass)|| of the whole adapter (mu = 2)."""
    grad_rel_diff_rounding: float = 0.0
    """The same difference between two one-pass updates whose LM-head chunks differ (token_mean): float32
    rounding alone, the floor under grad_rel_diff_max."""
    ddp_rel_diff_max: float | None = None
    """||adapter(2 gloo ranks) - adapter(1 process)|| / ||adapter(1 process)|| after one update, float32,
    worst over adapter tensors and loss aggregations (trainer/ddp_check.py)."""
    ddp_change_rel_diff: dict[str, float] = field(default_factory=dict)
    """The same for the adapter's change, by dtype: float32 shows rounding of differently shaped
    micro-batches (~1e-5); float64 shows the update itself agrees (~1e-14)."""
    ddp_note: str = ""
    plan_vs_measured: dict[str, Any] = field(default_factory=dict)
    """`hpcrl plan`'s update memory for the same model and settings, and its error against each peak."""


def _lora_targets() -> tuple[str, ...]:
    from trainer.policy import PolicyConfig

    return tuple(PolicyConfig().lora_target_modules)


# ---------------------------------------------------------------- the model and the batch


def build_model(out: Path, setting: Setting) -> Path:
    from trainer.random_model import qwen_tokenizer_dir, save_random_qwen2

    return save_random_qwen2(
        out, qwen_tokenizer_dir(), hidden_size=setting.hidden_size, layers=setting.layers, heads=setting.heads,
        kv_heads=setting.kv_heads, intermediate_size=setting.intermediate_size,
    )  # fmt: skip


def load(model_dir: Path, setting: Setting, checkpointing: bool = False) -> tuple[Any, Any]:
    from trainer.policy import PolicyConfig, load_policy

    config = PolicyConfig(
        model_dir=str(model_dir), lora_rank=setting.lora_rank, lora_alpha=2 * setting.lora_rank,
        gradient_checkpointing=checkpointing,
    )  # fmt: skip
    return load_policy(config)


def dgemm_tokens(tokenizer: Any, completion_tokens: int) -> tuple[list[int], list[int]]:
    """The DGEMM task's prompt as the policy sees it (chat template) and a C program of `completion_tokens`
    tokens ending in EOS (the corpus's register-blocked kernel, repeated if it is shorter)."""
    from trainer.corpus import generate_item
    from trainer.generation import render_prompt

    item = generate_item(random.Random(0), "dgemm", "register_blocked")
    prompt = tokenizer(render_prompt(tokenizer, item.prompt)).input_ids
    code = tokenizer(item.completion).input_ids
    program = code * math.ceil(completion_tokens / len(code))
    return prompt, [*program[: completion_tokens - 1], tokenizer.eos_token_id]


def grpo_batch(tokenizer: Any, setting: Setting, rows: int) -> Any:
    """`rows` sequences; row i's completion is shortened by (i mod micro_batch_size) steps of
    completion_tokens / (2 micro_batch_size), so each micro-batch has a full-length row and padding."""
    import torch

    from trainer.grpo import collate

    prompt, completion = dgemm_tokens(tokenizer, setting.completion_tokens)
    step = setting.completion_tokens // (2 * setting.micro_batch_size)
    completions = [completion[step * (i % setting.micro_batch_size) :] for i in range(rows)]
    generator = torch.Generator().manual_seed(rows)
    uniform = -math.log(len(tokenizer))
    behaviour = [(uniform + BEHAVIOUR_NOISE * torch.randn(len(c), generator=generator)).tolist() for c in completions]
    advantages = torch.randn(rows, generator=generator).tolist()
    return collate([prompt] * rows, completions, behaviour, advantages, tokenizer.pad_token_id)


# ---------------------------------------------------------------- memory (one process per batch size)


def _resident_bytes(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field_name}: the CPU memory figures need Linux")


def measure_update(model_dir: Path, setting: Setting, rows: int, checkpointing: bool) -> dict[str, Any]:
    """One update of `rows` sequences: the bytes it added at its peak over what was there before it."""
    import torch

    from trainer.grpo import optimizer_for, update_step

    model, tokenizer = load(model_dir, setting, checkpointing)
    device = next(model.parameters()).device
    config = setting.grpo()
    batch = grpo_batch(tokenizer, setting, rows).to(device)
    optimizer = optimizer_for(model, config)
    model.train()  # as the trainer updates (transformers checkpoints layers only in training mode)
    # A running trainer's state: AdamW's moments exist, and the first backward pass has faulted in
    # torch's code pages and thread arenas, which would otherwise count as the update's memory.
    update_step(model, optimizer, grpo_batch(tokenizer, setting, setting.micro_batch_size).to(device), config)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
        before = _resident_bytes("VmRSS")
    started = time.perf_counter()
    update_step(model, optimizer, batch, config)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _resident_bytes("VmHWM")
    return {
        "rows": rows,
        "checkpointing": checkpointing,
        "device": device.type,
        "before_bytes": before,
        "peak_bytes": peak - before,
        "update_s": round(seconds, 2),
        "model_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "prompt_tokens": int(batch.input_ids.shape[1]) - setting.completion_tokens,
    }


def start_measurements(model_dir: Path, quick: bool, setting: Setting) -> list[subprocess.Popen[str]]:
    """One process per measure_update, side by side (memory is per process; WORKER_ENV)."""
    runs = [(rows, False) for rows in setting.batch_sizes] + [(rows, True) for rows in setting.checkpointed_batch_sizes]
    command = [sys.executable, "-m", "ops.perf_update", "--model", str(model_dir), *(["--quick"] if quick else [])]
    return [
        subprocess.Popen(
            [*command, "--measure-rows", str(rows), *(["--checkpointing"] if checkpointing else [])],
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ | WORKER_ENV,
        )
        for rows, checkpointing in runs
    ]


def finish_measurements(workers: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    results = []
    for worker in workers:
        out, _ = worker.communicate(timeout=WORKER_TIMEOUT_S)
        if worker.returncode != 0:
            command = " ".join(str(arg) for arg in worker.args[2:])  # type: ignore[index]  # a list, as started
            raise RuntimeError(f"{command} failed (exit {worker.returncode}); see its stderr above")
        results.append(json.loads(out))
    return results


# ---------------------------------------------------------------- agreement with the one-pass update


def adapter_change(model: Any, initial: dict[str, Any], batch: Any, config: Any) -> Any:
    """The adapter's change after update_step from `initial`, as one vector, under plain SGD: the change
    is the summed gradients of the mu passes (AdamW's first step would show only their signs)."""
    import torch

    from trainer.grpo import update_step

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in initial:
                parameter.copy_(initial[name])
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    update_step(model, torch.optim.SGD(list(trainable.values()), lr=1.0), batch, config)
    return torch.cat([(parameter.detach() - initial[name]).flatten() for name, parameter in trainable.items()])


def grad_agreement(model_dir: Path, setting: Setting) -> tuple[dict[str, float], float]:
    """Per loss aggregation (mu = 2, beta > 0): the relative L2 difference of the adapter's change between
    micro-batches of agreement_micro_batch_size and one pass over the whole batch; and the floor under it, the same
    difference between two one-pass updates that differ only in their LM-head chunks (float32 rounding:
    a sum over 151,936 vocabulary entries taken in another order)."""
    import torch

    from trainer.grpo import LossAggregation

    model, tokenizer = load(model_dir, setting)
    batch = grpo_batch(tokenizer, setting, setting.agreement_batch_size)
    generator = torch.Generator().manual_seed(1)
    # lora_B off zero: the policy differs from the reference, so the KL term has a gradient too.
    initial = {
        name: (torch.randn(p.shape, generator=generator) * 0.05 if "lora_B" in name else p.detach().clone())
        for name, p in model.named_parameters()
        if p.requires_grad
    }
    model.train()
    rows = len(batch.input_ids)

    def change(aggregation: LossAggregation, **config: Any) -> Any:
        grpo = setting.grpo(mu=2, loss_aggregation=aggregation, max_grad_norm=1e9, **config)
        return adapter_change(model, initial, batch, grpo)

    def relative(a: Any, b: Any) -> float:
        return float((a - b).norm() / b.norm())

    one_pass = {aggregation: change(aggregation, micro_batch_size=rows) for aggregation in LossAggregation}
    differences = {}
    for aggregation, reference in one_pass.items():
        if not reference.norm() > 0:
            raise RuntimeError(f"{aggregation}: the update moved nothing; the comparison would prove nothing")
        accumulated = change(aggregation, micro_batch_size=setting.agreement_micro_batch_size)
        differences[aggregation.value] = relative(accumulated, reference)
    other_chunks = change(LossAggregation.TOKEN_MEAN, micro_batch_size=rows, logprob_chunk_tokens=7)
    return differences, relative(other_chunks, one_pass[LossAggregation.TOKEN_MEAN])


def ddp_agreement(model_dir: Path, quick: bool) -> tuple[float, dict[str, float], str]:
    """trainer/ddp_check.py on this model: one update on 2 gloo ranks (torchrun, loopback) vs one process.
    Returns the adapter weights' relative difference (float32, the issue's figure), the change's relative
    difference by dtype (quick: float32 only), and what was run."""
    from trainer.ddp_check import ddp_agreement as trainer_ddp_agreement

    dtypes = ("float32",) if quick else ("float32", "float64")
    agreement = trainer_ddp_agreement(model_dir, world_size=2, dtypes=dtypes)
    changes = {"float32": agreement.change_float32} | ({} if quick else {"float64": agreement.change_float64})
    note = "2 gloo ranks (torchrun) vs 1 process, one update (mu 2, beta 0.1, SGD), every loss aggregation"
    return agreement.weights_float32, changes, note


# ---------------------------------------------------------------- the report


def plan_vs_measured(setting: Setting, shape: ModelShape, measured: list[dict[str, Any]]) -> dict[str, Any]:
    """`hpcrl plan`'s update memory (gradients, activations, logits chunk) for this setting in float32,
    against each measured peak, with and without gradient checkpointing."""
    found: dict[str, Any] = {}
    for checkpointing, name in ((False, "no_checkpointing"), (True, "checkpointing")):
        runs = [m for m in measured if m["checkpointing"] == checkpointing]
        predicted = update_memory(shape, setting.update_shape(runs[0]["prompt_tokens"], checkpointing))
        errors = {str(m["rows"]): (predicted.update_bytes - m["peak_bytes"]) / m["peak_bytes"] for m in runs}
        found[name] = {
            "predicted_update_bytes": predicted.update_bytes,
            "predicted_parts_bytes": {
                "gradients": predicted.gradients_bytes,
                "activations": predicted.activations_checkpointed_bytes
                if checkpointing
                else predicted.activations_bytes,
                "logits_chunk": predicted.logits_chunk_bytes,
            },
            "relative_error_by_batch": {rows: round(error, 3) for rows, error in errors.items()},
        }
    every_error = [e for mode in found.values() for e in mode["relative_error_by_batch"].values()]
    return found | {"relative_error_max": max(abs(e) for e in every_error)}


def targets(report: Report) -> dict[str, Any]:
    checks = {
        "peak_ratio_64_over_8": (report.peak_ratio_64_over_8, TARGET_PEAK_RATIO),
        "grad_rel_diff_max": (report.grad_rel_diff_max, TARGET_REL_DIFF),
        "ddp_rel_diff_max": (report.ddp_rel_diff_max, TARGET_REL_DIFF),
        "plan_relative_error": (report.plan_vs_measured["relative_error_max"], TARGET_PLAN_ERROR),
    }
    return {
        name: {"value": value, "target": f"<= {limit:g}", "met": None if value is None else value <= limit}
        for name, (value, limit) in checks.items()
    }


def run(quick: bool) -> Report:
    setting = QUICK if quick else FULL
    started = time.monotonic()
    report = Report(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        commit=git_commit(),
        quick=quick,
        machine=machine_info(),
    )
    with tempfile.TemporaryDirectory(prefix="hpcrl-perf-update-") as tmp:
        model_dir = build_model(Path(tmp) / "random-qwen2", setting)
        workers = start_measurements(model_dir, quick, setting)
        try:
            report.grad_rel_diff_by_aggregation, report.grad_rel_diff_rounding = grad_agreement(model_dir, setting)
            report.ddp_rel_diff_max, report.ddp_change_rel_diff, report.ddp_note = ddp_agreement(model_dir, quick)
            measured = finish_measurements(workers)
        finally:
            for worker in workers:
                worker.kill()  # only if something above failed: finished workers ignore it
        shape = ModelShape.from_config(json.loads((model_dir / "config.json").read_text()))
    plain = [m for m in measured if not m["checkpointing"]]
    report.measured = (
        "torch.cuda.max_memory_allocated during update_step minus memory_allocated before it"
        if plain[0]["device"] == "cuda"
        else "peak resident set (VmHWM) during update_step minus the resident set just before it, one process "
        "per figure (policy loaded, batch built, one single-micro-batch update done before)"
    )
    report.settings = dataclasses.asdict(setting) | {
        "prompt_tokens": plain[0]["prompt_tokens"], "vocab_size": shape.vocab_size, "device": plain[0]["device"],
        "mu": 1, "temperature": 1.0, "lora_targets": list(_lora_targets()),
    }  # fmt: skip
    report.model_bytes = plain[0]["model_bytes"]
    report.peak_bytes_by_batch = {str(m["rows"]): m["peak_bytes"] for m in plain}
    report.checkpointed_peak_bytes_by_batch = {str(m["rows"]): m["peak_bytes"] for m in measured if m["checkpointing"]}
    report.before_bytes_by_batch = {str(m["rows"]): m["before_bytes"] for m in plain}
    report.update_seconds_by_batch = {str(m["rows"]): m["update_s"] for m in plain}
    report.peak_ratio_64_over_8 = round(plain[-1]["peak_bytes"] / plain[0]["peak_bytes"], 3)
    report.grad_rel_diff_max = max(report.grad_rel_diff_by_aggregation.values())
    report.plan_vs_measured = plan_vs_measured(setting, shape, measured)
    report.targets = targets(report)
    report.wall_s = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl perf update", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a small model and batches (seconds), for smoke tests")
    parser.add_argument("--measure-rows", type=int, help=argparse.SUPPRESS)  # one worker: measure_update
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="WARNING", help="stderr log level")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.measure_rows is not None:
        setting = QUICK if args.quick else FULL
        print(json.dumps(measure_update(args.model, setting, args.measure_rows, args.checkpointing)))
        return 0
    report = run(args.quick)
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
        return 0
    mib = 2**20
    print(f"hpcrl perf update  {report.date}  {report.machine.get('cpu_model', '')}  ({report.measured})")
    for label, peaks, mode in (
        ("", report.peak_bytes_by_batch, "no_checkpointing"),
        (", checkpointing", report.checkpointed_peak_bytes_by_batch, "checkpointing"),
    ):
        for rows, peak in peaks.items():
            error = report.plan_vs_measured[mode]["relative_error_by_batch"][rows]
            print(f"  B = {rows:>3}{label}: update peak {peak / mib:8.1f} MiB (plan {error:+.1%})")
    print(f"  peak ratio {report.peak_ratio_64_over_8}; grad rel diff {report.grad_rel_diff_max:.2e} (rounding "
          f"{report.grad_rel_diff_rounding:.2e}); ddp {report.ddp_rel_diff_max} ({report.ddp_note})")  # fmt: skip
    missed = [name for name, t in report.targets.items() if t["met"] is False]
    print(f"targets: {'all met' if not missed else 'MISSED ' + ', '.join(missed)}; wall {report.wall_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
