"""The policy: a local Hugging Face causal LM with a LoRA adapter (peft); the reference policy is the
same model with the adapter disabled, so the KL term needs no second copy of the weights."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer


@dataclass(frozen=True)
class PolicyConfig:
    model_dir: str = ""
    """A local Hugging Face model directory (`from_pretrained`); nothing is downloaded."""
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names the adapter wraps (Qwen2/Llama names by default)."""
    device: str = "auto"
    """`cpu`, `cuda`, or `auto` (cuda when available)."""
    gradient_checkpointing: bool = False
    """Keep only each decoder layer's input in the forward pass and recompute the layer in the backward
    pass: activations of one layer instead of all (a 14B model's update needs it; `hpcrl plan` says by how
    much), for about a third more compute."""

    def __post_init__(self) -> None:
        if self.lora_rank < 1 or self.lora_alpha < 1:
            raise ValueError("policy: lora_rank and lora_alpha must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"policy.device = {self.device!r}: use 'auto', 'cpu' or 'cuda'")

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    @property
    def dtype(self) -> torch.dtype:
        """bf16 on a GPU, fp32 on a CPU (CPU bf16 matmuls are slow and lose the small updates)."""
        return torch.bfloat16 if self.torch_device.type == "cuda" else torch.float32


def load_policy(
    config: PolicyConfig, adapter_dir: Path | None = None, device: torch.device | None = None
) -> tuple[PeftModel, Any]:
    """The base model with a fresh LoRA adapter, or with the adapter saved in `adapter_dir` (a checkpoint),
    on `device` (default: config.torch_device; a data-parallel rank passes its own GPU)."""
    path = Path(config.model_dir).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"policy.model_dir = {config.model_dir!r} is not a Hugging Face model directory (no config.json): "
            "point it at a local model, or build one with `hpcrl tiny-model --out DIR`"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(path, dtype=config.dtype)
    base.to(device or config.torch_device)  # type: ignore[arg-type]  # transformers' stub types .to wrongly
    if config.gradient_checkpointing:
        # Non-reentrant: the frozen base's inputs need no requires_grad trick for the adapter's gradients
        # to flow through a recomputed layer, and it composes with DistributedDataParallel.
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})  # type: ignore[no-untyped-call]
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)
    else:
        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            # No dropout: samples are drawn without it and the update runs in training mode, so dropout would
            # make GRPO's importance ratio differ from 1 on the very samples it was taken from.
            lora_dropout=0.0,
            target_modules=config.lora_target_modules,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, lora)
    return model, tokenizer


@contextlib.contextmanager
def reference_policy(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The reference policy for the KL term: the same model with its LoRA adapter switched off."""
    disable_adapter: Any = getattr(model, "disable_adapter", None)
    if disable_adapter is None:
        raise ValueError(
            "beta > 0 needs reference log-probs: pass GRPOBatch.ref_logp, or train a peft model "
            "(its reference is the base model with the adapter off)"
        )
    with disable_adapter():
        yield model


def save_adapter(model: PeftModel, directory: Path) -> None:
    """Only the adapter's weights (megabytes, not the base model's gigabytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
