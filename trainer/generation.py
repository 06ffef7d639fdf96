"""Generation: sample G completions per prompt from the current policy, with their behaviour log-probs.

Three backends behind one interface (`Backend`):
- `hf`: transformers `generate` on the training model itself (CPU, or a GPU without vLLM). The policy
  it samples from is the model being trained, so its version is always the current one.
- `vllm`: a vLLM engine in the trainer's process, on the base model, serving the current LoRA adapter by
  version (`LoRARequest` on a `policy-v<N>` directory, trainer/adapters.py); every completion records the
  adapter version that produced it, so a generator that serves a stale adapter shows at once. Written
  against vLLM's documented offline API (`LLM(enable_lora=True)`, `LLM.generate(..., lora_request=...)`,
  `SamplingParams(logprobs=0)`), imported lazily; vLLM cannot run on the development machines, so this
  backend has never been run (docs/trainer.md).
- `vllm_server`: a vLLM server on GPUs of its own, over HTTP (trainer/vllm_server.py).

Behaviour log-probs are those of the sampling distribution (after temperature and top-p), token by
token: GRPO's importance ratio compares the updated policy with exactly what produced each sample.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import torch

from trainer.adapters import AdapterStore, adapter_name

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

    def load_policy(self, model: Any, version: int) -> None:
        """Sample policy `version` from now on: `model` is the trainer's live peft model at that version.
        The hf backend samples `model` itself; the vLLM backends save its adapter (version 0 is the base
        model: nothing to save) and load it into their engine."""
        ...


class HFBackend:
    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, chunk_sequences: int = 64) -> None:
        if chunk_sequences < 1:
            raise ValueError(f"HFBackend: chunk_sequences = {chunk_sequences} must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.chunk_sequences = chunk_sequences
        """Sequences per `generate` call: its KV cache and one step's logits grow with the sequences it holds."""
        self.version = 0

    def load_policy(self, model: Any, version: int) -> None:
        self.version = version

    @torch.no_grad()
    def sample(self, prompts: Sequence[str], group_size: int, settings: SamplingSettings) -> list[Completion]:
        # Row r answers prompt r // group_size; generated chunk_sequences rows at a time.
        groups = [group for group in range(len(prompts)) for _ in range(group_size)]
        completions: list[Completion] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(groups), self.chunk_sequences):
                chunk = groups[start : start + self.chunk_sequences]
                completions += self._sample_rows(chunk, [prompts[g] for g in chunk], settings)
        finally:
            if was_training:
                self.model.train()
        return completions

    def _sample_rows(self, groups: list[int], prompts: list[str], settings: SamplingSettings) -> list[Completion]:
        """One completion of each prompt (one `generate` call); `groups[i]` is prompt i's group."""
        tokenizer = self.tokenizer
        tokenizer.padding_side = "left"  # generation continues every row at its last column
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(self.model.device)
        from transformers import GenerationConfig, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        # The whole sampling distribution is ours: the model's generation_config.json (Qwen's sets top_k,
        # top_p, temperature and a repetition penalty) must not change what the update's log-probs describe.
        config = GenerationConfig(  # type: ignore[no-untyped-call]
            do_sample=True,
            temperature=1.0,  # applied by our own processors below, so the recorder comes after them
            top_p=1.0,
            top_k=0,
            max_new_tokens=settings.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        recorder = _SampledLogProbs()
        processors = LogitsProcessorList(
            ([TemperatureLogitsWarper(settings.temperature)] if settings.temperature != 1.0 else [])
            + ([TopPLogitsWarper(settings.top_p)] if settings.top_p < 1.0 else [])
            + [recorder]
        )
        output = self.model.generate(
            **batch, generation_config=config, logits_processor=processors, return_dict_in_generate=True
        )
        prompt_width = batch["input_ids"].shape[1]
        scores = recorder.finish(output.sequences[:, prompt_width:])  # (rows, T_new)
        completions = []
        for row, group in enumerate(groups):
            prompt_ids = [
                int(t) for t, m in zip(batch["input_ids"][row], batch["attention_mask"][row], strict=True) if m
            ]
            new_ids = output.sequences[row, prompt_width:].tolist()
            length = _completion_length(new_ids, tokenizer.eos_token_id)
            ids = tuple(int(t) for t in new_ids[:length])
            logprobs = tuple(float(s) for s in scores[row, :length].tolist())
            text = tokenizer.decode(ids, skip_special_tokens=True)
            completions.append(Completion(group, text, tuple(prompt_ids), ids, logprobs, self.version))
        return completions


class _SampledLogProbs:
    """The last logits processor of a `generate` call: it sees each step's processed (tempered, top-p)
    scores, and with the next step's input (or, for the last step, the output) the token drawn from them,
    and keeps that token's log-prob only. One (rows, V) tensor stays alive, not one per generated token
    (`output_scores` would hold rows x T x V floats: 40 GB for 64 Qwen samples of 1,024 tokens).

    Computed as `trainer.logprobs.token_log_probs` computes the update's (picked logit - logsumexp), so the two
    agree to float rounding. On a CPU with Qwen's 151,936 logits, `log_softmax` is off by about 4e-5, and
    `compute_transition_scores(normalize_logits=True)`, which normalises across a strided (V, T) layout,
    by up to 1e-3 wherever one token dominates (measured with torch 2.13)."""

    def __init__(self) -> None:
        self.pending: torch.Tensor | None = None
        """(rows, V) processed scores of the step whose token is not yet known."""
        self.columns: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.pending is not None:
            self._take(input_ids[:, -1])  # the token drawn from the pending step's scores
        self.pending = scores.float()
        return scores

    def finish(self, generated: torch.Tensor) -> torch.Tensor:
        """(rows, T) log-probs of the `generated` (rows, T) tokens."""
        if self.pending is not None:
            self._take(generated[:, -1])
        if len(self.columns) != generated.shape[1]:
            raise RuntimeError(f"{len(self.columns)} scored steps for {generated.shape[1]} generated tokens")
        if not self.columns:
            return torch.zeros(generated.shape, dtype=torch.float32)
        return torch.stack(self.columns, dim=1)

    def _take(self, tokens: torch.Tensor) -> None:
        assert self.pending is not None
        picked = self.pending.gather(1, tokens[:, None])[:, 0]  # (rows,)
        self.columns.append(picked - torch.logsumexp(self.pending, dim=-1))
        self.pending = None


def _completion_length(ids: list[int], eos: int | None) -> int:
    """Tokens up to and including the first EOS; generation pads only rows that reached it, so a row
    without EOS is all sampled tokens, even ones equal to the pad token (Qwen's pad, `<|endoftext|>`, is a
    token base models write)."""
    for index, token in enumerate(ids):
        if token == eos:
            return index + 1
    return len(ids)


@dataclass(frozen=True)
class VLLMEngineConfig:
    """`[vllm]`: the in-process vLLM engine of the `vllm` backend, on the training GPU.

    Beside the engine's share, that GPU must hold the training copy: the base weights (2 bytes per
    parameter in bf16: 28 GB for a 14B model), the LoRA parameters with their gradients and AdamW state
    (16 bytes per LoRA parameter, fp32), and the update's activations and logits (they grow with
    prompts_per_step x group_size x sequence length; policy.gradient_checkpointing shrinks them). The
    engine's share holds a second copy of the base weights plus its KV cache. A model that does not fit
    twice with room for activations wants the `vllm_server` backend on GPUs of its own.
    """

    gpu_memory_utilization: float = 0.45
    """Share of the GPU's memory the engine takes (weights + KV cache; vLLM's own default, 0.9, would
    leave nothing for training). 0.45 of an 80 GB GPU is 36 GB: a 14B model's 28 GB of weights and 8 GB
    of KV cache, leaving 44 GB for the training copy and the update (a starting point, not measured here)."""

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization < 1:
            raise ValueError(
                f"vllm.gpu_memory_utilization = {self.gpu_memory_utilization}: use a share between 0 and 1 "
                "that leaves room for the training copy (docs/trainer.md)"
            )


ADAPTERS_KEPT: Final = 2
"""Adapter versions the in-process engine keeps on disk: the one it serves and the one before (the engine
reads an adapter when a request first uses it, then keeps it in its own LoRA cache)."""


class VLLMBackend:
    """The base model in a vLLM engine, with the trainer's LoRA adapter served by version."""

    name = "vllm"

    def __init__(
        self, base_model_dir: str, max_lora_rank: int, adapters: AdapterStore, config: VLLMEngineConfig
    ) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError(
                "the vllm generation backend needs vLLM on a GPU node: pip install 'hpcrl[gpu]', "
                "or set trainer.backend = 'hf'"
            ) from None
        self.engine = LLM(
            model=base_model_dir,
            enable_lora=True,
            max_lora_rank=max_lora_rank,
            gpu_memory_utilization=config.gpu_memory_utilization,
            # Log-probs of the distribution that drew the tokens (after temperature and top-p), as the
            # importance ratio needs; vLLM's default gives the raw model's (vLLM >= 0.10.2).
            logprobs_mode="processed_logprobs",
        )
        self.adapters = adapters
        self.lora: Any = None
        self.version = 0

    def load_policy(self, model: Any, version: int) -> None:
        if version == self.version:
            return  # an update that changed nothing (every advantage zero) keeps its version and its weights
        from vllm.lora.request import LoRARequest

        # lora_int_id must be unique per adapter content and > 0: the version (0 is the base model).
        self.lora = (
            None
            if version == 0
            else LoRARequest(adapter_name(version), version, str(self.adapters.save(model, version)))
        )
        self.adapters.prune(version)
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
