"""`hpcrl plan`: the memory a training run will need per GPU, predicted from the model's config.json and
the trainer's configuration, before any GPU is booked (no weights are read: a 14B model directory on a
login node is enough).

Per GPU: the frozen base (bf16), the adapter, its gradients and AdamW's moments, the activations of one
micro-batch with and without gradient checkpointing, the logits chunk, and the largest micro-batch that
fits; and for a vLLM server, the weights plus the KV cache of a step's sequences. Under data parallelism
each GPU holds the whole base (DDP replicates it) and the step's rows are shared out. The arithmetic and
its sources are in ops/plan_memory.py; `hpcrl perf update` holds it to measured peaks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Final

from ops.plan_memory import (
    HEADROOM_FRACTION,
    VLLM_SERVER_GPU_MEMORY_UTILIZATION,
    ModelShape,
    UpdateShape,
    largest_micro_batch,
    server_memory,
    update_memory,
)

GIB: Final = 2**30
GPU_DTYPE_BYTES: Final = 2
"""bf16: the policy's dtype on a GPU (trainer.policy.PolicyConfig.dtype)."""
DEFAULT_PROMPT_TOKENS: Final = 1024
"""Longest prompt assumed when --prompt-tokens is not given (the DGEMM prompt is about 200 tokens rendered)."""


def plan(
    model_dir: Path, gpus: int, gpu_memory_gib: float, config_path: str | None, prompt_tokens: int, server_gpus: int
) -> dict[str, Any]:
    """Everything `hpcrl plan --json` prints."""
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json: pass a Hugging Face model directory as --model")
    shape = ModelShape.from_config(json.loads(config_file.read_text()))
    from trainer.config import load_trainer_config  # torch comes with it: only once the model is known

    trainer = load_trainer_config(config_path)
    rows = trainer.loop.prompts_per_step * trainer.grpo.group_size
    rows_per_gpu = math.ceil(rows / gpus)
    update = UpdateShape(
        micro_batch_size=min(trainer.grpo.micro_batch_size, rows_per_gpu),
        prompt_tokens=prompt_tokens,
        completion_tokens=trainer.grpo.max_completion_tokens,
        logprob_chunk_tokens=trainer.grpo.logprob_chunk_tokens,
        lora_rank=trainer.policy.lora_rank,
        lora_targets=tuple(trainer.policy.lora_target_modules),
        dtype_bytes=GPU_DTYPE_BYTES,
        gradient_checkpointing=trainer.policy.gradient_checkpointing,
    )
    capacity = gpu_memory_gib * GIB
    # trainer.backend = "vllm" runs the engine in the trainer's process, on its GPU: the update gets the rest.
    # Otherwise the figures are those of a vllm_server job on GPUs of its own.
    in_process = trainer.loop.backend == "vllm"
    utilization = trainer.vllm.gpu_memory_utilization if in_process else VLLM_SERVER_GPU_MEMORY_UTILIZATION
    server = server_memory(shape, rows, update.sequence_tokens, utilization, 1 if in_process else server_gpus)
    beside_engine = 1 - server.utilization if in_process else 1.0
    usable = capacity * beside_engine * (1 - HEADROOM_FRACTION)
    memory = update_memory(shape, update)
    largest = {
        name: largest_micro_batch(shape, dataclasses.replace(update, gradient_checkpointing=on), usable, rows)
        for name, on in (("checkpointing", True), ("no_checkpointing", False))
    }
    return {
        "model": {
            "dir": str(model_dir), **dataclasses.asdict(shape),
            "parameters": shape.parameters(),
            "adapter_parameters": shape.adapter_parameters(update.lora_rank, update.lora_targets),
        },
        "gpus": gpus,
        "gpu_memory_bytes": int(capacity),
        "headroom_fraction": HEADROOM_FRACTION,
        "usable_bytes": int(usable),
        "settings": dataclasses.asdict(update) | {
            "dtype": "bf16", "backend": trainer.loop.backend, "rows_per_step": rows, "rows_per_gpu": rows_per_gpu,
            "micro_batches_per_pass": math.ceil(rows_per_gpu / update.micro_batch_size),
        },
        "per_gpu": dataclasses.asdict(memory) | {
            "resident_bytes": memory.resident_bytes, "update_bytes": memory.update_bytes,
            "total_bytes": memory.total_bytes, "fits": memory.total_bytes <= usable,
        },
        "largest_micro_batch": largest,
        "vllm": dataclasses.asdict(server) | {
            "kv_cache_bytes": server.kv_cache_bytes, "total_bytes": server.total_bytes,
            "per_gpu_bytes": server.per_gpu_bytes, "fits": server.per_gpu_bytes <= server.utilization * capacity,
            "utilization_needed": round(server.per_gpu_bytes / capacity, 3),
        },
    }  # fmt: skip


def print_table(found: dict[str, Any]) -> None:
    m, s, g, v = found["model"], found["settings"], found["per_gpu"], found["vllm"]
    ties = "tied" if m["tied_embeddings"] else "untied"
    print(
        f"{m['dir']}: {m['parameters'] / 1e9:.2f}B parameters ({m['layers']} layers, hidden {m['hidden_size']}, "
        f"{m['heads']}/{m['kv_heads']} heads, vocabulary {m['vocab_size']}, {ties} embeddings)"
    )
    print(
        f"{found['gpus']} GPU(s) x {found['gpu_memory_bytes'] / GIB:g} GiB; per GPU {s['rows_per_gpu']} of the step's "
        f"{s['rows_per_step']} rows in micro-batches of {s['micro_batch_size']} x ({s['prompt_tokens']} prompt + "
        f"{s['completion_tokens']} completion) tokens, bf16, LoRA rank {s['lora_rank']} on {len(s['lora_targets'])} "
        f"projections ({m['adapter_parameters'] / 1e6:.1f}M parameters)"
    )
    in_use = "checkpointing" if s["gradient_checkpointing"] else "no checkpointing"
    rows = [
        ("weights (bf16)", g["weights_bytes"]),
        ("adapter (fp32)", g["adapter_bytes"]),
        ("gradients (fp32)", g["gradients_bytes"]),
        ("optimizer state (AdamW, fp32)", g["optimizer_bytes"]),
        ("activations, no checkpointing" + ("  <- in use" if not s["gradient_checkpointing"] else ""),
         g["activations_bytes"]),
        ("activations, checkpointing" + ("  <- in use" if s["gradient_checkpointing"] else ""),
         g["activations_checkpointed_bytes"]),
        (f"logits chunk ({min(s['logprob_chunk_tokens'], s['micro_batch_size'] * s['completion_tokens'])} tokens)",
         g["logits_chunk_bytes"]),
    ]  # fmt: skip
    for label, size in rows:
        print(f"  {label:<44}{size / GIB:>9.2f} GiB")
    usable = found["usable_bytes"] / GIB
    verdict = "fits" if g["fits"] else "DOES NOT FIT"
    beside = ", beside the vllm backend's engine" if s["backend"] == "vllm" else ""
    print(f"  {'total (' + in_use + ')':<44}{g['total_bytes'] / GIB:>9.2f} GiB  {verdict} in {usable:.1f} GiB "
          f"({found['headroom_fraction']:.0%} headroom{beside})")  # fmt: skip
    largest = found["largest_micro_batch"]
    print(
        f"largest micro-batch that fits (up to the step's {s['rows_per_step']} rows): {largest['checkpointing']} with "
        f"gradient checkpointing, {largest['no_checkpointing']} without (0: not one sequence)"
    )
    where = "the trainer's GPU (vllm backend)" if s["backend"] == "vllm" else f"{v['gpus']} server GPU(s)"
    print(
        f"vLLM on {where}: weights {v['weights_bytes'] / GIB:.2f} GiB + KV cache {v['kv_bytes_per_token'] / 2**10:.0f} "
        f"KiB/token x {v['tokens']} tokens = {v['total_bytes'] / GIB:.2f} GiB, {v['per_gpu_bytes'] / GIB:.2f} GiB per "
        f"GPU in the {v['utilization']:g} of it vLLM takes: {'fits' if v['fits'] else 'DOES NOT FIT'}; "
        f"gpu_memory_utilization >= {v['utilization_needed']:g}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hpcrl plan", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="Hugging Face model directory (config.json only)")
    parser.add_argument("--gpus", type=int, default=1, help="data-parallel ranks, one GPU each (default 1)")
    parser.add_argument("--gpu-memory-gib", type=float, required=True, help="memory of one GPU, GiB (80 for an H100)")
    parser.add_argument("--config", help="the trainer's TOML config ([trainer], [policy], [grpo]); default: defaults")
    parser.add_argument(
        "--prompt-tokens", type=int, default=DEFAULT_PROMPT_TOKENS,
        help=f"longest prompt in tokens, chat template included (default {DEFAULT_PROMPT_TOKENS})",
    )  # fmt: skip
    parser.add_argument(
        "--server-gpus", type=int, default=1,
        help="tensor-parallel GPUs of the vllm_server job (default 1; ignored with trainer.backend = vllm)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    args = parser.parse_args(argv)
    if min(args.gpus, args.prompt_tokens, args.server_gpus) < 1 or args.gpu_memory_gib <= 0:
        parser.error("--gpus, --server-gpus and --prompt-tokens must be >= 1 and --gpu-memory-gib > 0")
    try:
        found = plan(args.model, args.gpus, args.gpu_memory_gib, args.config, args.prompt_tokens, args.server_gpus)
    except (FileNotFoundError, ValueError) as error:  # ConfigError is a ValueError
        parser.exit(2, f"hpcrl plan: {error}\n")
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print_table(found)
    return 0
