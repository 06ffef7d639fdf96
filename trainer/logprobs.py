"""Per-token log-probabilities of a causal LM without its full logits: only completion positions go
through the LM head, a chunk of tokens at a time.

Why: at the seed's scale (64 sequences x 2,500 tokens x Qwen's 151,936-token vocabulary) the logits of a
whole batch are 49 GB in bf16 before autograd keeps anything. Here the decoder runs once per micro-batch
to its last hidden state (B, T, H); the rows and columns that predict a completion token are gathered
(N, H); and each chunk of at most `chunk_tokens` of them goes through the head under activation
checkpointing, so the (chunk, V) logits exist for one chunk at a time in the forward pass and again,
recomputed, in the backward pass. No (B, T, V) tensor exists at any point, with or without grad.

Works on any Hugging Face causal LM whose backbone takes `position_ids` (Qwen2, Llama, GPT-2, ...), wrapped
by peft or not: LoRA layers live inside the backbone, so switching the adapter off (the reference policy)
works the same way.
"""

from __future__ import annotations

from typing import Any, Final

import torch
from torch.utils.checkpoint import checkpoint

DEFAULT_CHUNK_TOKENS: Final = 1024
"""Completion tokens per LM-head chunk: (1024, 151,936) float32 logits are 0.6 GB, small beside a 14B
model's activations and large enough to keep the head's matmul efficient."""


def causal_lm_parts(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(backbone, head) of a Hugging Face causal LM, under a peft wrapper or not: the backbone maps token
    ids to the last hidden state (B, T, H); the head maps hidden states to logits."""
    unwrap = getattr(model, "get_base_model", None)  # peft's wrapper around the Hugging Face model
    lm: Any = unwrap() if unwrap is not None else model
    prefix = getattr(lm, "base_model_prefix", "")
    backbone = getattr(lm, prefix, None) if prefix else None
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if backbone is None or head is None:
        raise TypeError(
            f"{type(lm).__name__} is not a Hugging Face causal LM with a backbone and an output head "
            "(base_model_prefix / get_output_embeddings): load the policy with AutoModelForCausalLM"
        )
    return backbone, head


def token_log_probs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> torch.Tensor:
    """(B, T) float32 log-probability of each completion token of `input_ids` given the tokens before it,
    at `temperature`; 0 wherever `completion_mask` is 0 (prompt, padding, column 0).

    Position ids count only attended tokens, so a left-padded row gets the positions it had unpadded
    (the positions generation used). Top-p truncation is not applied: with top_p < 1, behaviour
    log-probs of the truncated distribution make ratios start slightly below 1."""
    if chunk_tokens < 1:
        raise ValueError(f"token_log_probs: chunk_tokens = {chunk_tokens} must be >= 1")
    backbone, head = causal_lm_parts(model)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
    hidden = backbone(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state  # (B, T, H)
    # Column t predicts token t + 1: the hidden states that predict a completion token.
    rows, columns = completion_mask[:, 1:].bool().nonzero(as_tuple=True)  # (N,), (N,)
    picked_hidden = hidden[rows, columns]  # (N, H)
    targets = input_ids[rows, columns + 1]  # (N,)
    pieces = [
        _chunk_log_probs(head, picked_hidden[start : start + chunk_tokens], targets[start : start + chunk_tokens],
                         temperature)
        for start in range(0, targets.numel(), chunk_tokens)
    ]  # fmt: skip
    # No completion token at all: an empty slice of the hidden states keeps the result on the autograd graph
    # (a backward through it must still reach the adapter, with zeros: DDP needs every rank's).
    picked = torch.cat(pieces) if pieces else picked_hidden.flatten()[:0].float()  # (N,)
    logp = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)  # (B, T)
    return logp.index_put((rows, columns + 1), picked)


def _chunk_log_probs(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float) -> Any:
    """(n,) log-probs of `targets` from (n, H) hidden states; under grad, the (n, V) logits are recomputed in
    the backward pass instead of kept (the log-softmax of every chunk would otherwise stay alive)."""
    if torch.is_grad_enabled():
        return checkpoint(_picked_log_softmax, head, hidden, targets, temperature, use_reentrant=False)
    return _picked_log_softmax(head, hidden, targets, temperature)


def _picked_log_softmax(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float
) -> torch.Tensor:
    logits = head(hidden).float() / temperature  # (n, V)
    picked: torch.Tensor = logits.gather(-1, targets[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)  # (n,)
    return picked


class PolicyLogProbs(torch.nn.Module):
    """`token_log_probs` of a policy as a module, so DistributedDataParallel can wrap it: DDP syncs the
    gradients of what its own forward ran, and the forward here is not the model's (no full logits)."""

    def __init__(self, policy: torch.nn.Module, temperature: float, chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> None:
        super().__init__()
        self.policy = policy
        self.temperature = temperature
        self.chunk_tokens = chunk_tokens

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, T) log-probs of the completion tokens (see token_log_probs)."""
        return token_log_probs(
            self.policy, input_ids, attention_mask, completion_mask, self.temperature, self.chunk_tokens
        )
