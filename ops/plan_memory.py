"""Predicted memory of one GRPO update and of a vLLM server, from a model's config.json alone: pure arithmetic.

`hpcrl plan` prints it for a GPU; `hpcrl perf update` holds it to the peaks it measures on a CPU (the same
formulas at 4 bytes per value). What the update keeps, and why (trainer/grpo.py, trainer/logprobs.py):

- the frozen base in the policy's dtype, and the LoRA adapter with its gradients and AdamW's two moments,
  all float32 (peft keeps the adapter in float32 under a bf16 base);
- activations: everything autograd saves for the backward pass of one micro-batch, counted tensor by
  tensor the way Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models",
  section 4.1) count them, for a Qwen2/Llama decoder layer (RMSNorm, attention through SDPA with no T x T
  scores, SwiGLU MLP) with a frozen base and the adapter on its projections (`layer_saved_bytes_per_token`);
  with gradient checkpointing, each layer's input plus one layer recomputed in the backward pass;
- the logits of one LM-head chunk of completion tokens (`LOGITS_CHUNK_COPIES` float32 (chunk, V) tensors).

Not counted: the CUDA context, the caching allocator's fragmentation, cuBLAS and attention workspaces
(`HEADROOM_FRACTION` is left for them), and the batch's own (B, T) tensors (kilobytes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

ADAPTER_BYTES: Final = 4
"""The adapter, its gradients and AdamW's moments are float32 whatever the base's dtype."""
LOGITS_CHUNK_COPIES: Final = 4
"""float32 (chunk, V) tensors alive at the peak of a chunk's backward pass: the recomputed logits (saved
for logsumexp's and gather's backward), logsumexp's exp(logits - lse) workspace, and the two gradients
that flow into the logits (from logsumexp and from gather) before they are summed. Measured on CPU
(`hpcrl perf update`, docs/performance.md)."""
HEADROOM_FRACTION: Final = 0.15
"""Share of a GPU's memory left out of the plan: the CUDA context (about 0.5 GiB), the caching
allocator's fragmentation, cuBLAS and attention workspaces."""
PROJECTIONS: Final = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The linear layers of a Qwen2/Llama decoder layer: what policy.lora_target_modules may name."""


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on, read from a Hugging Face config.json (Qwen2/Llama key names)."""

    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int
    kv_heads: int
    """Key/value heads (grouped-query attention); equal to heads without GQA."""
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    """The LM head shares the input embedding's matrix (Qwen2.5 0.5B-3B) instead of its own (7B and up)."""
    attention_bias: bool
    """q, k and v projections carry a bias (Qwen2 does; Llama does not)."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelShape:
        try:
            hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
            return cls(
                hidden_size=hidden,
                intermediate_size=int(config["intermediate_size"]),
                layers=int(config["num_hidden_layers"]),
                heads=heads,
                kv_heads=int(config.get("num_key_value_heads") or heads),
                head_dim=int(config.get("head_dim") or hidden // heads),
                vocab_size=int(config["vocab_size"]),
                tied_embeddings=bool(config.get("tie_word_embeddings", False)),
                attention_bias=bool(config.get("attention_bias", config.get("model_type") == "qwen2")),
            )
        except KeyError as missing:
            raise ValueError(
                f"config.json has no {missing}: hpcrl plan reads decoder-only Qwen2/Llama configurations "
                "(hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size)"
            ) from None

    def projection_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each linear layer of a decoder layer, by its module name."""
        q, kv, h, i = (
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
            self.hidden_size,
            self.intermediate_size,
        )
        return {
            "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
        }  # fmt: skip

    def parameters(self) -> int:
        """Parameters of the whole model: embeddings, decoder layers (projections, q/k/v biases, two norms
        each), the final norm, and the LM head unless it is tied to the embeddings."""
        embedding = self.vocab_size * self.hidden_size
        projections = sum(n_in * n_out for n_in, n_out in self.projection_shapes().values())
        biases = (self.heads + 2 * self.kv_heads) * self.head_dim if self.attention_bias else 0
        layer = projections + biases + 2 * self.hidden_size
        return embedding * (1 if self.tied_embeddings else 2) + self.layers * layer + self.hidden_size

    def adapter_parameters(self, rank: int, targets: tuple[str, ...]) -> int:
        """LoRA parameters: rank x (in + out) per adapted projection per layer."""
        shapes = self.projection_shapes()
        unknown = sorted(set(targets) - set(shapes))
        if unknown:
            raise ValueError(
                f"policy.lora_target_modules names {unknown}: hpcrl plan knows the decoder's {', '.join(PROJECTIONS)}"
            )
        return self.layers * sum(rank * sum(shapes[name]) for name in targets)


@dataclass(frozen=True)
class UpdateShape:
    """The update whose memory is predicted, on one device (one data-parallel rank)."""

    micro_batch_size: int
    """Sequences per forward/backward pass (grpo.micro_batch_size)."""
    prompt_tokens: int
    """Longest prompt, in tokens (chat template included)."""
    completion_tokens: int
    """Longest completion, in tokens (grpo.max_completion_tokens)."""
    logprob_chunk_tokens: int
    """Completion tokens per LM-head chunk (grpo.logprob_chunk_tokens)."""
    lora_rank: int
    lora_targets: tuple[str, ...]
    dtype_bytes: int
    """Bytes per value of the base model and its activations: 2 (bf16, a GPU) or 4 (float32, a CPU)."""
    gradient_checkpointing: bool
    """policy.gradient_checkpointing: the activations `UpdateMemory.total_bytes` counts."""

    @property
    def sequence_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class UpdateMemory:
    """Bytes one update holds at its peak on one device, by what holds them."""

    weights_bytes: int
    """The frozen base model (policy dtype)."""
    adapter_bytes: int
    """The LoRA adapter's weights (float32)."""
    gradients_bytes: int
    """The adapter's gradients (float32), accumulated over the micro-batches of a pass."""
    optimizer_bytes: int
    """AdamW's two moments per adapter weight (float32)."""
    activations_bytes: int
    """What autograd saves for one micro-batch without gradient checkpointing."""
    activations_checkpointed_bytes: int
    """... with gradient checkpointing: each layer's input, plus one layer recomputed in the backward pass."""
    logits_chunk_bytes: int
    """The float32 logits of one LM-head chunk and their workspace (LOGITS_CHUNK_COPIES)."""
    gradient_checkpointing: bool
    """Which of the two activation figures the totals count."""

    @property
    def resident_bytes(self) -> int:
        """What stays between updates: the base, the adapter and AdamW's moments."""
        return self.weights_bytes + self.adapter_bytes + self.optimizer_bytes

    @property
    def update_bytes(self) -> int:
        """What an update adds while it runs: gradients, activations and the logits chunk."""
        activations = self.activations_checkpointed_bytes if self.gradient_checkpointing else self.activations_bytes
        return self.gradients_bytes + activations + self.logits_chunk_bytes

    @property
    def total_bytes(self) -> int:
        """Everything, as if every part peaked at once (an upper bound: the logits chunk's peak and a
        recomputed layer's come at different moments of the backward pass)."""
        return self.resident_bytes + self.update_bytes


def layer_saved_bytes_per_token(model: ModelShape, update: UpdateShape) -> int:
    """Bytes autograd saves per token in one decoder layer without checkpointing. Per token, with H the
    hidden size, Q = heads x head_dim, I the intermediate size, r the LoRA rank, b the dtype's bytes:

    - the layer input and the residual after attention (2 H): each RMSNorm keeps its input; in bf16 the
      norm computes in float32 and keeps a float32 copy instead (4 + 4 bytes per value, not b);
    - the two norms' outputs (2 H), inputs of the adapted projections;
    - q, k and v after the rotary embedding, each Q wide (a padded batch carries an attention mask, and
      transformers then repeats the key/value heads up to the query heads before SDPA), SDPA's output
      (Q) and its reshaped copy, o_proj's input (Q): 5 Q; SDPA's float32 log-sum-exp per head;
    - the attention mask SDPA converts to an additive float mask in each layer: T values per token;
    - the SwiGLU MLP: gate, SiLU(gate), up and their product (down_proj's input): 4 I;
    - per adapted projection, lora_A's float32 output (r); in bf16, peft also casts the projection's input
      to the adapter's float32 and keeps that copy.

    The frozen projections themselves save nothing of their own (their input gradient needs only the
    weight); the inputs above are kept by the adapter and the elementwise operations."""
    b, h, i = update.dtype_bytes, model.hidden_size, model.intermediate_size
    q = model.heads * model.head_dim
    norm_inputs = 2 * h * (b if b >= 4 else b + 4)
    attention = 5 * q * b + 4 * model.heads + update.sequence_tokens * b
    mlp = 4 * i * b
    lora = ADAPTER_BYTES * update.lora_rank * len(update.lora_targets)
    if b < ADAPTER_BYTES:
        shapes = model.projection_shapes()
        lora += ADAPTER_BYTES * sum(shapes[name][0] for name in update.lora_targets)
    return norm_inputs + 2 * h * b + attention + mlp + lora


def update_memory(model: ModelShape, update: UpdateShape) -> UpdateMemory:
    adapter = model.adapter_parameters(update.lora_rank, update.lora_targets) * ADAPTER_BYTES
    tokens = update.micro_batch_size * update.sequence_tokens
    layer = layer_saved_bytes_per_token(model, update)
    final_norm = model.hidden_size * max(update.dtype_bytes, ADAPTER_BYTES)  # its input (float32 copy in bf16)
    chunk = min(update.logprob_chunk_tokens, update.micro_batch_size * update.completion_tokens)
    return UpdateMemory(
        weights_bytes=model.parameters() * update.dtype_bytes,
        adapter_bytes=adapter,
        gradients_bytes=adapter,
        optimizer_bytes=2 * adapter,
        activations_bytes=tokens * (model.layers * layer + final_norm),
        activations_checkpointed_bytes=tokens
        * (model.layers * model.hidden_size * update.dtype_bytes + layer + final_norm),
        logits_chunk_bytes=LOGITS_CHUNK_COPIES * chunk * model.vocab_size * 4,
        gradient_checkpointing=update.gradient_checkpointing,
    )


def largest_micro_batch(model: ModelShape, update: UpdateShape, capacity_bytes: float, rows: int) -> int:
    """The largest micro_batch_size <= rows whose update fits `capacity_bytes` (0: not even one sequence).
    Memory grows with the micro-batch, so a bisection finds it."""
    low, high = 0, rows
    while low < high:
        middle = (low + high + 1) // 2
        fits = update_memory(model, replace(update, micro_batch_size=middle)).total_bytes <= capacity_bytes
        low, high = (middle, high) if fits else (low, middle - 1)
    return low


VLLM_SERVER_GPU_MEMORY_UTILIZATION: Final = 0.9
"""The vLLM server job's share of each of its GPUs (ops/slurm/vllm-server.sbatch --gpu-memory-utilization)."""


@dataclass(frozen=True)
class ServerMemory:
    """A vLLM server's memory: the base weights and the KV cache of every sequence of a step at once, split
    evenly over its tensor-parallel GPUs (vLLM shards the heads, the MLP and the vocabulary)."""

    weights_bytes: int
    kv_bytes_per_token: int
    """2 (key and value) x layers x kv_heads x head_dim x dtype bytes."""
    tokens: int
    """Tokens cached at once: sequences x (prompt + completion)."""
    utilization: float
    """The share of each GPU vLLM takes (gpu_memory_utilization)."""
    gpus: int
    """Tensor-parallel GPUs of the server (1: the in-process engine of the vllm backend)."""

    @property
    def kv_cache_bytes(self) -> int:
        return self.kv_bytes_per_token * self.tokens

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes

    @property
    def per_gpu_bytes(self) -> int:
        return math.ceil(self.total_bytes / self.gpus)


def server_memory(
    model: ModelShape, sequences: int, sequence_tokens: int, utilization: float, gpus: int = 1, dtype_bytes: int = 2
) -> ServerMemory:
    """For `sequences` concurrent sequences (prompts_per_step x group_size) of `sequence_tokens` each."""
    return ServerMemory(
        weights_bytes=model.parameters() * dtype_bytes,
        kv_bytes_per_token=2 * model.layers * model.kv_heads * model.head_dim * dtype_bytes,
        tokens=sequences * sequence_tokens,
        utilization=utilization,
        gpus=gpus,
    )
