"""Generation: sample G completions per prompt from the current policy, with their behaviour log-probs.

Two backends behind one interface (`Backend`):
- `hf`: transformers `generate` on the training model itself (CPU, or a GPU without vLLM). The policy
  it samples from is the model being trained, so its version is always the current one.
- `vllm`: a vLLM engine on the base model that serves the current LoRA adapter by version
  (`LoRARequest`); every completion records the adapter version that produced it, so a generator that
  serves a stale adapter shows at once. Written against vLLM's documented offline API
  (`LLM(enable_lora=True)`, `LLM.generate(..., lora_request=...)`, `SamplingParams(logprobs=0)`), imported
  lazily; vLLM cannot run on the development machines, so this backend has never been run (docs/trainer.md).

Behaviour log-probs are those of the sampling distribution (after temperature and top-p), token by
token: GRPO's importance ratio compares the updated policy with exactly what produced each sample.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

_FENCE = re.compile(r"```[ \t]*(?:c|C|c\+\+|cpp)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(completion: str) -> str | None:
    """The first fenced code block of a completion (```c ... ```), or None: a completion without code
    is a verdict of its own (`no_code`) and never reaches a bencher."""
    match = _FENCE.search(completion)
    if match is None or not match.group(1).strip():
        return None
    return match.group(1).strip() + "\n"


def render_prompt(tokenizer: Any, text: str) -> str:
    """The prompt as the model expects it: through the tokenizer's chat template when it has one."""
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        return str(rendered)
    return text


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int = 512
    """Longest completion, in tokens."""
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError("sampling needs max_new_tokens >= 1, temperature > 0 and 0 < top_p <= 1")


@dataclass(frozen=True)
class Completion:
    group: int
    """Index of the prompt this completion answers (its GRPO group)."""
    text: str
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    behaviour_logprobs: tuple[float, ...]
    """Log-probability of each completion token under the sampling distribution that drew it."""
    policy_version: int
    """The adapter version that produced it."""


class Backend(Protocol):
    name: str

    def sample(self, prompts: Sequence[str], group_size: int, settings: SamplingSettings) -> list[Completion]:
        """`group_size` completions of every prompt (already rendered), in prompt order."""
        ...

    def load_policy(self, adapter_dir: Path | None, version: int) -> None:
        """Serve this adapter version from now on (the hf backend samples the live model: nothing to load)."""
        ...


class HFBackend:
    name = "hf"

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.version = 0

    def load_policy(self, adapter_dir: Path | None, version: int) -> None:
        self.version = version

    @torch.no_grad()
    def sample(self, prompts: Sequence[str], group_size: int, settings: SamplingSettings) -> list[Completion]:
        tokenizer = self.tokenizer
        tokenizer.padding_side = "left"  # generation continues every row at its last column
        batch = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        was_training = self.model.training
        self.model.eval()
        output = self.model.generate(
            **batch,
            do_sample=True,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=0,
            max_new_tokens=settings.max_new_tokens,
            num_return_sequences=group_size,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        if was_training:
            self.model.train()
        prompt_width = batch["input_ids"].shape[1]
        scores = _sampled_log_probs(output.scores, output.sequences[:, prompt_width:])  # (B*G, T_new)
        completions = []
        for row in range(output.sequences.shape[0]):
            group = row // group_size
            prompt_ids = [
                int(t) for t, m in zip(batch["input_ids"][group], batch["attention_mask"][group], strict=True) if m
            ]
            new_ids = output.sequences[row, prompt_width:].tolist()
            length = _completion_length(new_ids, tokenizer.eos_token_id)
            ids = tuple(int(t) for t in new_ids[:length])
            logprobs = tuple(float(s) for s in scores[row, :length].tolist())
            text = tokenizer.decode(ids, skip_special_tokens=True)
            completions.append(Completion(group, text, tuple(prompt_ids), ids, logprobs, self.version))
        return completions


def _sampled_log_probs(scores: Sequence[torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """(B, T) log-prob of each sampled token under the processed (tempered, top-p) distribution of its step;
    `scores` holds T (B, V) processed logits, `tokens` is (B, T).

    Computed as `trainer.grpo.token_log_probs` computes the update's (picked logit - logsumexp), so the two
    agree to float rounding. On a CPU with Qwen's 151,936 logits, `log_softmax` is off by about 4e-5, and
    `compute_transition_scores(normalize_logits=True)`, which normalises across a strided (V, T) layout,
    by up to 1e-3 wherever one token dominates (measured with torch 2.13)."""
    columns = []
    for step, step_logits in enumerate(scores):
        logits = step_logits.float()  # (B, V)
        picked = logits.gather(1, tokens[:, step, None])  # (B, 1)
        columns.append(picked - torch.logsumexp(logits, dim=-1, keepdim=True))
    return torch.cat(columns, dim=1)


def _completion_length(ids: list[int], eos: int | None) -> int:
    """Tokens up to and including the first EOS; generation pads only rows that reached it, so a row
    without EOS is all sampled tokens, even ones equal to the pad token (Qwen's pad, `<|endoftext|>`, is a
    token base models write)."""
    for index, token in enumerate(ids):
        if token == eos:
            return index + 1
    return len(ids)


class VLLMBackend:
    """The base model in a vLLM engine, with the trainer's LoRA adapter served by version."""

    name = "vllm"

    def __init__(self, base_model_dir: str, max_lora_rank: int, **engine_args: Any) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError(
                "the vllm generation backend needs vLLM on a GPU node: pip install 'hpcrl[gpu]', "
                "or set generation.backend = 'hf'"
            ) from None
        self.engine = LLM(model=base_model_dir, enable_lora=True, max_lora_rank=max_lora_rank, **engine_args)
        self.lora: Any = None
        self.version = 0

    def load_policy(self, adapter_dir: Path | None, version: int) -> None:
        from vllm.lora.request import LoRARequest

        # lora_int_id must be unique per adapter content: the version (+1, since 0 means "no adapter").
        self.lora = None if adapter_dir is None else LoRARequest(f"policy-v{version}", version + 1, str(adapter_dir))
        self.version = version

    def sample(self, prompts: Sequence[str], group_size: int, settings: SamplingSettings) -> list[Completion]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=group_size,
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_tokens=settings.max_new_tokens,
            logprobs=0,  # the sampled token's log-prob
        )
        version = self.version
        outputs = self.engine.generate(list(prompts), params, lora_request=self.lora)
        completions = []
        for group, output in enumerate(outputs):
            for sample in output.outputs:
                ids = tuple(int(t) for t in sample.token_ids)
                logprobs = tuple(
                    float(step[token].logprob) for step, token in zip(sample.logprobs or [], ids, strict=True)
                )
                completions.append(
                    Completion(group, sample.text, tuple(output.prompt_token_ids), ids, logprobs, version)
                )
        return completions
